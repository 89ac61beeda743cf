package shop

import (
	"errors"
	"fmt"
)

// Error codes. They name what went wrong from the caller's point of view;
// the HTTP adapter maps each to one status code in one place.
const (
	ENOTFOUND    = "not_found"   // the record does not exist or is deleted
	EINVALID     = "invalid"     // the request is malformed
	EUNAVAILABLE = "unavailable" // a dependency cannot answer in time; retry later
	EINTERNAL    = "internal"    // a bug or an unexpected failure
)

// Error is the one error type of the domain. Message is safe to show to a
// caller; internal detail belongs in Err, which is logged and never sent.
type Error struct {
	Code    string
	Message string
	Err     error // underlying cause, may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted, caller-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an *Error carrying err as its internal cause.
func Wrap(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error, and "" for nil.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := err.(*Error); ok { // the usual case, without errors.As's allocation
		return e.Code
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the caller-safe message of err. Errors that are not
// an *Error say only "internal error": their text may hold internals.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if e, ok := err.(*Error); ok {
		return e.Message
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
