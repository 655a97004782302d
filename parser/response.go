package parser

import (
	"errors"
	"fmt"
	"strings"
)

// ErrBadResponse is returned for a line that is not a POP3 status line.
var ErrBadResponse = errors.New("parser: malformed response")

// Status is the kind of a server response line.
type Status uint8

// The statuses a POP3 server may answer with.
const (
	StatusOK       Status = iota + 1 // "+OK"
	StatusErr                        // "-ERR"
	StatusContinue                   // "+ " SASL continuation (RFC 5034)
)

// String returns the status indicator as it is written on the wire.
func (s Status) String() string {
	switch s {
	case StatusOK:
		return "+OK"
	case StatusErr:
		return "-ERR"
	case StatusContinue:
		return "+"
	}
	return "?"
}

// Response codes of RFC 2449 section 8 and RFC 3206.
const (
	CodeInUse      = "IN-USE"
	CodeLoginDelay = "LOGIN-DELAY"
	CodeSysTemp    = "SYS/TEMP"
	CodeSysPerm    = "SYS/PERM"
	CodeAuth       = "AUTH"
)

// Response is one server status line: +OK, -ERR or a SASL continuation.
type Response struct {
	Status Status
	// Code is the RFC 2449 extended response code without brackets, such as
	// "SYS/TEMP"; empty when the line carries none. Continuations have none.
	Code string
	// Text is the human-readable rest of the line (for a continuation, the
	// base64 challenge).
	Text string
}

// OK returns a +OK response with text.
func OK(text string) Response { return Response{Status: StatusOK, Text: text} }

// Err returns a -ERR response with an optional response code and text.
func Err(code, text string) Response { return Response{Status: StatusErr, Code: code, Text: text} }

// Continue returns a SASL continuation carrying a base64 challenge.
func Continue(challenge string) Response { return Response{Status: StatusContinue, Text: challenge} }

// IsOK reports whether the response is +OK.
func (r Response) IsOK() bool { return r.Status == StatusOK }

// ParseResponse parses a status line without its CRLF.
func ParseResponse(line []byte) (Response, error) {
	s := string(line)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return Response{}, fmt.Errorf("%w: control character 0x%02x", ErrBadResponse, c)
		}
	}
	var r Response
	var rest string
	switch {
	case strings.HasPrefix(s, "+OK"):
		r.Status, rest = StatusOK, s[3:]
	case strings.HasPrefix(s, "-ERR"):
		r.Status, rest = StatusErr, s[4:]
	case s == "+":
		return Response{Status: StatusContinue}, nil
	case strings.HasPrefix(s, "+ "):
		return Response{Status: StatusContinue, Text: s[2:]}, nil
	default:
		return Response{}, fmt.Errorf("%w: %.20q", ErrBadResponse, s)
	}
	if rest == "" {
		return r, nil
	}
	if rest[0] != ' ' {
		return Response{}, fmt.Errorf("%w: no space after status", ErrBadResponse)
	}
	rest = rest[1:]
	// RFC 2449 section 8: resp-code = "[" resp-level *("/" resp-level) "]"
	// with non-empty levels; "[]" or an unclosed "[" is plain text.
	if strings.HasPrefix(rest, "[") {
		if end := strings.IndexByte(rest, ']'); end > 1 {
			r.Code = rest[1:end]
			rest = strings.TrimPrefix(rest[end+1:], " ")
		}
	}
	r.Text = rest
	return r, nil
}

// String returns the wire form of the response without its CRLF.
func (r Response) String() string {
	var b strings.Builder
	b.WriteString(r.Status.String())
	if r.Status == StatusContinue {
		b.WriteByte(' ')
		b.WriteString(r.Text)
		return b.String()
	}
	if r.Code != "" {
		b.WriteString(" [")
		b.WriteString(r.Code)
		b.WriteByte(']')
	}
	if r.Text != "" {
		b.WriteByte(' ')
		b.WriteString(r.Text)
	}
	return b.String()
}

// HasBody reports whether a response to cmd is followed by a multi-line
// body. Only +OK answers carry one: to RETR and TOP (RFC 1939), CAPA
// (RFC 2449), LIST and UIDL without an argument (RFC 1939), and AUTH without
// an argument, which lists mechanisms (RFC 1734 practice). This is the one
// place where framing is decided.
func HasBody(cmd Command, r Response) bool {
	if r.Status != StatusOK {
		return false
	}
	switch cmd.Verb {
	case "RETR", "TOP", "CAPA":
		return true
	case "LIST", "UIDL", "AUTH":
		return len(cmd.Args) == 0
	}
	return false
}
