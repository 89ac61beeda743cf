package httpapi

import (
	"context"
	"errors"
	"log/slog"

	"github.com/valyala/fasthttp"

	"storefront/internal/shop"
)

// statusOf is the one place a domain error code becomes an HTTP status.
func statusOf(code string) int {
	switch code {
	case shop.ENOTFOUND:
		return fasthttp.StatusNotFound
	case shop.EINVALID:
		return fasthttp.StatusBadRequest
	case shop.EUNAVAILABLE:
		return fasthttp.StatusServiceUnavailable
	default:
		return fasthttp.StatusInternalServerError
	}
}

// fail answers with the error model: {"error","code","request_id"}. The
// message is the domain's caller-safe text; internal causes are logged
// with the request id and never sent.
func (s *Server) fail(ctx *fasthttp.RequestCtx, err error) {
	code := shop.ErrorCode(err)
	status := statusOf(code)
	msg := shop.ErrorMessage(err)
	switch {
	case status >= 500 && code != shop.EUNAVAILABLE:
		s.logger.Error("request failed", "request_id", string(ctx.Response.Header.PeekBytes(headerRequestID)),
			"method", string(ctx.Method()), "path", string(ctx.Path()), "err", err)
		msg = "internal error"
	case code == shop.EUNAVAILABLE:
		var se *shop.Error
		if errors.As(err, &se) && se.Err != nil && s.logger.Enabled(context.Background(), slog.LevelDebug) {
			s.logger.Debug("dependency unavailable", "request_id", string(ctx.Response.Header.PeekBytes(headerRequestID)), "err", se.Err)
		}
	}
	s.writeError(ctx, status, msg)
}

// writeError writes an error response with the given status and message.
func (s *Server) writeError(ctx *fasthttp.RequestCtx, status int, msg string) {
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.SetBytesKV(headerRetryAfter, retryAfterSeconds)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentTypeBytes(contentTypeJSON)
	buf := s.bufs.get()
	buf.b = appendError(buf.b[:0], msg, status, ctx.Response.Header.PeekBytes(headerRequestID))
	ctx.SetBody(buf.b)
	s.bufs.put(buf)
}
