package parser

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrBodyOpen is returned by Writer when a line or a new body is written
// while a body from DotWriter has not been closed. The Writer never ends a
// body on the caller's behalf, so a body cut short is never terminated
// and never looks complete (RFC 1939 section 3).
var ErrBodyOpen = errors.New("parser: body still open")

// Writer writes POP3 lines and bodies to a buffered stream. None of its
// methods flush: the caller decides when bytes go out, with Flush. The zero
// value with W set is ready to use. A Writer is not safe for concurrent use.
type Writer struct {
	// W is the stream.
	W *bufio.Writer

	dot *dotWriter // body being written, until its Close
}

// NewWriter returns a Writer on w.
func NewWriter(w *bufio.Writer) *Writer {
	return &Writer{W: w}
}

// WriteLine writes s followed by CRLF. It refuses s holding a CR, an LF or
// a NUL with ErrBadLine, and writes nothing then.
func (w *Writer) WriteLine(s string) error {
	if w.dot != nil {
		return ErrBodyOpen
	}
	if strings.ContainsAny(s, "\r\n\x00") {
		return ErrBadLine
	}
	w.W.WriteString(s)
	_, err := w.W.WriteString("\r\n") // bufio.Writer errors are sticky
	return err
}

// WriteCommand writes c as c.String() followed by CRLF, after checking that
// the line would parse back to c: the keyword is 1 to MaxVerbLength ASCII
// letters, digits or '-', arguments are non-empty and hold no space (PASS
// takes one argument that may hold spaces), and no control character
// appears. CR, LF and NUL give ErrBadLine, other faults ErrBadCommand;
// nothing is written then.
func (w *Writer) WriteCommand(c Command) error {
	if w.dot != nil {
		return ErrBodyOpen
	}
	if err := checkCommand(c); err != nil {
		return err
	}
	bw := w.W
	bw.WriteString(c.Verb)
	for _, a := range c.Args {
		bw.WriteByte(' ')
		bw.WriteString(a)
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// checkCommand reports why c would not survive ParseCommand(c.String()).
func checkCommand(c Command) error {
	if len(c.Verb) == 0 || len(c.Verb) > MaxVerbLength {
		return fmt.Errorf("%w: bad keyword length", ErrBadCommand)
	}
	if err := checkText(c.Verb); err != nil {
		return err
	}
	for i := 0; i < len(c.Verb); i++ {
		if !isKeywordByte(c.Verb[i]) {
			return fmt.Errorf("%w: bad keyword", ErrBadCommand)
		}
	}
	isPass := strings.EqualFold(c.Verb, "PASS")
	if isPass && len(c.Args) > 1 {
		return fmt.Errorf("%w: PASS takes one argument", ErrBadCommand)
	}
	for _, a := range c.Args {
		if err := checkText(a); err != nil {
			return err
		}
		if a == "" {
			return fmt.Errorf("%w: empty argument", ErrBadCommand)
		}
		if !isPass && strings.IndexByte(a, ' ') >= 0 {
			return fmt.Errorf("%w: space in argument", ErrBadCommand)
		}
	}
	return nil
}

// checkText refuses CR, LF and NUL with ErrBadLine and any other control
// character (including TAB) with ErrBadCommand, as ParseCommand does.
func checkText(s string) error {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\r' || c == '\n' || c == 0:
			return ErrBadLine
		case c < 0x20 || c == 0x7f:
			return fmt.Errorf("%w: control character 0x%02x", ErrBadCommand, c)
		}
	}
	return nil
}

func isKeywordByte(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-'
}

// WriteResponse writes r as r.String() followed by CRLF. It refuses an
// unknown Status, a continuation with a Code, and a Code holding ']' with
// ErrBadResponse, and CR, LF or NUL anywhere with ErrBadLine; nothing is
// written then.
func (w *Writer) WriteResponse(r Response) error {
	if w.dot != nil {
		return ErrBodyOpen
	}
	switch r.Status {
	case StatusOK, StatusErr:
	case StatusContinue:
		if r.Code != "" {
			return fmt.Errorf("%w: continuation with a response code", ErrBadResponse)
		}
	default:
		return fmt.Errorf("%w: unknown status %d", ErrBadResponse, r.Status)
	}
	if strings.ContainsAny(r.Code, "\r\n\x00") || strings.ContainsAny(r.Text, "\r\n\x00") {
		return ErrBadLine
	}
	if strings.IndexByte(r.Code, ']') >= 0 {
		return fmt.Errorf("%w: ']' in response code", ErrBadResponse)
	}
	bw := w.W
	bw.WriteString(r.Status.String())
	if r.Status == StatusContinue {
		bw.WriteByte(' ')
		bw.WriteString(r.Text)
	} else {
		if r.Code != "" {
			bw.WriteString(" [")
			bw.WriteString(r.Code)
			bw.WriteByte(']')
		}
		if r.Text != "" {
			bw.WriteByte(' ')
			bw.WriteString(r.Text)
		}
	}
	_, err := bw.WriteString("\r\n")
	return err
}

// DotWriter returns a writer for a multi-line body (RFC 1939 section 3).
// Bytes written are dot-stuffed: a '.' is added before every line that
// starts with '.', at the start of the body and after every CRLF, even when
// the CRLF and the '.' arrive in different writes; nothing else changes.
// Close ends the body: it adds CRLF if the body is not empty and does not
// end with CRLF, then writes ".\r\n"; an empty body is exactly ".\r\n".
//
// Until Close, every other write on the Writer fails with ErrBodyOpen. A
// body whose write failed is never terminated: Close returns the error.
func (w *Writer) DotWriter() io.WriteCloser {
	if w.dot != nil {
		return &dotWriter{err: ErrBodyOpen}
	}
	d := &dotWriter{w: w, lineStart: true}
	w.dot = d
	return d
}

// StuffedWriter is DotWriter for a body that is already dot-stuffed, as
// Reader.StuffedReader returns it: bytes are written unchanged, and Close
// terminates the body as DotWriter's does. A proxy relays a body this way
// without decoding and re-encoding it.
func (w *Writer) StuffedWriter() io.WriteCloser {
	d := w.DotWriter().(*dotWriter)
	d.stuffed = true
	return d
}

// Flush writes any buffered data to the underlying writer.
func (w *Writer) Flush() error {
	return w.W.Flush()
}

// Buffered returns the number of bytes written and not yet flushed.
func (w *Writer) Buffered() int {
	return w.W.Buffered()
}
