package httpapi

import (
	"context"
	"errors"
	"log/slog"

	"storefront/internal/shop"
)

// The statuses the API answers with.
const (
	statusOK                  = 200
	statusBadRequest          = 400
	statusNotFound            = 404
	statusMethodNotAllowed    = 405
	statusInternalServerError = 500
	statusServiceUnavailable  = 503
)

// statusOf is the one place a domain error code becomes an HTTP status.
func statusOf(code string) int {
	switch code {
	case shop.ENOTFOUND:
		return statusNotFound
	case shop.EINVALID:
		return statusBadRequest
	case shop.EUNAVAILABLE:
		return statusServiceUnavailable
	default:
		return statusInternalServerError
	}
}

// fail answers with the error model: {"error","code","request_id"}. The
// message is the domain's caller-safe text; internal causes are logged
// with the request id and never sent.
func (e *exchange) fail(err error) {
	code := shop.ErrorCode(err)
	status := statusOf(code)
	msg := shop.ErrorMessage(err)
	switch {
	case status >= 500 && code != shop.EUNAVAILABLE:
		e.s.logger.Error("request failed", "request_id", string(e.rid),
			"method", string(e.x.Method()), "path", string(e.x.Path()), "err", err)
		msg = "internal error"
	case code == shop.EUNAVAILABLE:
		var se *shop.Error
		if errors.As(err, &se) && se.Err != nil && e.s.logger.Enabled(context.Background(), slog.LevelDebug) {
			e.s.logger.Debug("dependency unavailable", "request_id", string(e.rid), "err", se.Err)
		}
	}
	e.writeError(status, msg)
}

// writeError answers with status and the error model's body.
func (e *exchange) writeError(status int, msg string) {
	if status == statusServiceUnavailable {
		e.x.AddHeader(headerRetryAfter, retryAfterSeconds)
	}
	buf := e.s.bufs.get()
	buf.b = appendError(buf.b[:0], msg, status, e.rid)
	e.finish(status, buf.b)
	e.s.bufs.put(buf)
}
