package parser

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxCommandLine is the longest command line accepted by default, in
// octets including CRLF (RFC 2449 section 4).
const DefaultMaxCommandLine = 255

// DefaultMaxResponseLine is a bound for server status lines, in octets
// including CRLF. RFC 2449 section 4 allows 512; real servers sometimes
// send more, so this is a generous bound over it.
const DefaultMaxResponseLine = 4096

// ErrLineTooLong is returned by Reader for a line longer than its MaxLine.
// The line has been consumed through its CRLF; the next read starts at the
// following line.
var ErrLineTooLong = errors.New("parser: line too long")

// ErrBadLine is returned by Reader for a line that holds a bare CR, a bare
// LF or a NUL, and by Writer for text that would produce one. A Reader has
// consumed the whole line through its CRLF; the next read starts at the
// following line.
var ErrBadLine = errors.New("parser: line contains a bare CR, a bare LF or a NUL")

// Reader reads POP3 lines and bodies from a buffered stream. The zero value
// with R set is ready to use. A Reader is not safe for concurrent use.
type Reader struct {
	// R is the stream. Data buffered in R belongs to the Reader: use
	// Buffered and Discard rather than reading R directly.
	R *bufio.Reader
	// MaxLine is the longest line accepted, in octets including CRLF;
	// zero or less means DefaultMaxCommandLine. Use
	// DefaultMaxResponseLine when reading from a server.
	MaxLine int

	dot *dotReader // body handed out by DotReader, if any
	buf []byte     // assembles a line that spans bufio's buffer
}

// NewReader returns a Reader on r accepting lines of at most maxLine octets
// including CRLF (zero or less means DefaultMaxCommandLine).
func NewReader(r *bufio.Reader, maxLine int) *Reader {
	return &Reader{R: r, MaxLine: maxLine}
}

func (r *Reader) maxLine() int {
	if r.MaxLine <= 0 {
		return DefaultMaxCommandLine
	}
	return r.MaxLine
}

// ReadLine reads one line and returns it without its CRLF. The slice points
// into the Reader's buffers and is valid only until the next call on the
// Reader.
//
// Only CRLF ends a line. A line that holds a bare CR, a bare LF or a NUL is
// consumed through its CRLF and refused with ErrBadLine; a line longer than
// MaxLine is consumed through its CRLF in constant memory and refused with
// ErrLineTooLong (which wins when both apply). In both cases the Reader
// stays usable. At the end of the stream ReadLine returns io.EOF if no byte
// of a new line was read and io.ErrUnexpectedEOF otherwise. Other errors
// come from the underlying reader unchanged; after them the position in the
// stream is undefined.
//
// A body left unfinished by DotReader is drained first; if that fails,
// ReadLine returns the drain's error.
func (r *Reader) ReadLine() ([]byte, error) {
	if err := r.finishBody(); err != nil {
		return nil, err
	}
	max := r.maxLine()
	seg, err := r.R.ReadSlice('\n')
	// Fast path: the whole line sits in bufio's buffer.
	if n := len(seg); err == nil && n >= 2 && n <= max && seg[n-2] == '\r' {
		line := seg[:n-2]
		if clean(line) {
			return line, nil
		}
		return nil, ErrBadLine
	}
	return r.readLineSlow(seg, err, max)
}

// readLineSlow finishes a line that did not fit the fast path: seg and err
// are the result of the first ReadSlice. It appends to r.buf only while the
// line is within max, so memory stays bounded by max whatever the input.
func (r *Reader) readLineSlow(seg []byte, err error, max int) ([]byte, error) {
	r.buf = r.buf[:0]
	n := 0          // octets of this line consumed so far
	prevCR := false // the last octet consumed was CR
	for {
		if len(seg) > 0 {
			n += len(seg)
			if n <= max {
				r.buf = append(r.buf, seg...)
			}
			if err == nil { // seg ends with LF
				l := len(seg)
				if l >= 2 && seg[l-2] == '\r' || l == 1 && prevCR {
					if n > max {
						return nil, ErrLineTooLong
					}
					line := r.buf[:n-2]
					if !clean(line) {
						return nil, ErrBadLine
					}
					return line, nil
				}
			}
			prevCR = seg[len(seg)-1] == '\r'
		}
		switch {
		case err == nil || err == bufio.ErrBufferFull:
		case err == io.EOF && n == 0:
			return nil, io.EOF
		case err == io.EOF:
			return nil, io.ErrUnexpectedEOF
		default:
			return nil, err
		}
		seg, err = r.R.ReadSlice('\n')
	}
}

// clean reports whether line holds no CR, LF or NUL.
func clean(line []byte) bool {
	return bytes.IndexByte(line, '\r') < 0 &&
		bytes.IndexByte(line, '\n') < 0 &&
		bytes.IndexByte(line, 0) < 0
}

// ReadCommand reads one line and parses it as a client command. Errors of
// ReadLine are returned as they are; a line that is not a command gives an
// error wrapping ErrBadCommand, and the Reader stays usable.
func (r *Reader) ReadCommand() (Command, error) {
	line, err := r.ReadLine()
	if err != nil {
		return Command{}, err
	}
	return ParseCommand(line)
}

// ReadResponse reads one line and parses it as a server status line. Errors
// of ReadLine are returned as they are; a line that is not a status line
// gives an error wrapping ErrBadResponse. Whether a body follows is for
// HasBody to say; read it with DotReader.
func (r *Reader) ReadResponse() (Response, error) {
	line, err := r.ReadLine()
	if err != nil {
		return Response{}, err
	}
	return ParseResponse(line)
}

// DotReader returns a reader for the multi-line body that follows a +OK
// response for which HasBody is true. It yields the body decoded: CRLF kept
// byte-exact, the stuffing "." removed at line starts, the terminating
// ".\r\n" consumed and not returned. It returns io.EOF after the terminator
// and io.ErrUnexpectedEOF if the stream ends before it. Lines of any length
// stream in constant memory. The returned reader also implements
// io.WriterTo, which io.Copy uses to avoid a copy.
//
// The body is valid until the next call on the Reader: ReadLine,
// ReadCommand, ReadResponse and DotReader first drain what is left of it,
// and Discard abandons it (its reads then fail with io.ErrUnexpectedEOF).
func (r *Reader) DotReader() io.Reader {
	err := r.finishBody()
	d := &dotReader{r: r, lineStart: true, err: err}
	r.dot = d
	return d
}

// StuffedReader is DotReader without the decoding: it returns the body as
// it is on the wire, dot-stuffing kept, up to and not including the
// terminating ".\r\n", which it consumes. Framing, errors and lifetime are
// DotReader's. Write it on with Writer.StuffedWriter to relay a body
// byte for byte without decoding and re-encoding it.
func (r *Reader) StuffedReader() io.Reader {
	d := r.DotReader().(*dotReader)
	d.stuffed = true
	return d
}

// finishBody drains the body handed out by DotReader, if any.
func (r *Reader) finishBody() error {
	d := r.dot
	if d == nil {
		return nil
	}
	if err := d.drain(); err != nil {
		return err // stays r.dot: every later read fails the same way
	}
	r.dot = nil
	return nil
}

// Buffered returns the number of bytes buffered and not yet read: a caller
// can flush its replies only when Buffered is zero, so that pipelined
// commands are answered in one write.
func (r *Reader) Buffered() int {
	return r.R.Buffered()
}

// Discard drops every byte buffered and returns how many there were. Call
// it when the stream changes hands, as after STLS (RFC 2595 section 4):
// bytes a client pipelined before the TLS handshake must never be read as
// if they had come over TLS (command injection). A body in progress is
// abandoned.
func (r *Reader) Discard() int {
	if d := r.dot; d != nil {
		if d.err == nil && !d.done {
			d.err = io.ErrUnexpectedEOF
		}
		r.dot = nil
	}
	n, _ := r.R.Discard(r.R.Buffered())
	return n
}
