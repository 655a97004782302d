package parser

import "errors"

// Error is an error that has a wire form: a -ERR response with an optional
// RFC 2449/3206 response code and a short text safe to show the client. It
// wraps the internal cause, which goes to logs only.
type Error struct {
	Code string // response code without brackets, or ""
	Text string // short text for the client
	Err  error  // internal cause; may be nil
}

// NewError returns an Error with the given code, client text and cause.
func NewError(code, text string, cause error) *Error {
	return &Error{Code: code, Text: text, Err: cause}
}

// Error implements error; it includes the cause for logs.
func (e *Error) Error() string {
	s := e.Response().String()
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Response returns the -ERR line the client sees.
func (e *Error) Response() Response { return Err(e.Code, e.Text) }

// ErrorResponse maps any error to the -ERR response the client sees. It is
// the one place where errors become wire text: an *Error anywhere in the
// chain gives its own code and text, anything else a generic
// "-ERR [SYS/TEMP]" that reveals nothing internal.
func ErrorResponse(err error) Response {
	var pe *Error
	if errors.As(err, &pe) {
		return pe.Response()
	}
	return Err(CodeSysTemp, "internal error, try again later")
}
