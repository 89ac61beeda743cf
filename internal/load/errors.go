package load

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// Error kinds, the keys of Interval.Errors.
const (
	ErrConnectRefused = "connect_refused" // nothing listens at the target
	ErrTimeout        = "timeout"         // no complete response within --timeout
	ErrReset          = "reset"           // the peer reset the connection (or the write hit a closed socket)
	ErrEOF            = "eof"             // the peer closed the connection before a complete response
	ErrDNS            = "dns"             // the target's host name did not resolve
	ErrProtocol       = "protocol"        // the response was not valid HTTP/1.1
	ErrUnsent         = "unsent"          // due by the end of the run but never left: no connection came free in time
	ErrLocal          = "local"           // loadgen's own machine ran out: file descriptors, local ports, buffers
	ErrOther          = "other"
)

// errorKinds lists every kind in a fixed order so that counters can live in
// an array instead of a map on the hot path.
var errorKinds = [...]string{ErrConnectRefused, ErrTimeout, ErrReset, ErrEOF, ErrDNS, ErrProtocol, ErrUnsent, ErrLocal, ErrOther}

type errorKind uint8

const (
	kindConnectRefused errorKind = iota
	kindTimeout
	kindReset
	kindEOF
	kindDNS
	kindProtocol
	kindUnsent
	kindLocal
	kindOther
	numErrorKinds
)

func (k errorKind) String() string { return errorKinds[k] }

// protocolError reports a response that could not be parsed.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return "malformed response: " + e.msg }

// ClassifyError names the kind of a request error, one of the Err* constants.
func ClassifyError(err error) string { return classify(err).String() }

func classify(err error) errorKind {
	var (
		dnsErr  *net.DNSError
		protErr *protocolError
		netErr  net.Error
	)
	switch {
	case err == nil:
		return kindOther
	case errors.As(err, &dnsErr):
		return kindDNS
	case errors.Is(err, syscall.ECONNREFUSED):
		return kindConnectRefused
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded):
		return kindTimeout
	case errors.As(err, &netErr) && netErr.Timeout():
		return kindTimeout
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return kindReset
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return kindEOF
	case errors.As(err, &protErr):
		return kindProtocol
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE), errors.Is(err, syscall.EADDRNOTAVAIL),
		errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		// Not the target's doing: the generator's own limits.
		return kindLocal
	}
	return kindOther
}
