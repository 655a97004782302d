package parser

import (
	"bytes"
	"io"
	"math"
)

// crlfDot is the only place in a body where the decoder has work to do: a
// line that starts with the termination octet (RFC 1939 section 3).
var crlfDot = []byte("\r\n.")

// dotReader decodes one multi-line body straight out of the bufio.Reader's
// buffer. It never reads line by line: it searches the buffered bytes for
// "\r\n." and hands out everything before it in one piece, so a body costs
// a few operations per buffer fill, not per line, and any line length works
// in constant memory.
type dotReader struct {
	r         *Reader
	lineStart bool  // the next byte starts a line (start of body or after CRLF)
	afterCR   bool  // the last byte handed out was CR
	done      bool  // the terminator has been consumed
	stuffed   bool  // hand out the stuffing dots too (StuffedReader)
	err       error // sticky error
}

// Read implements io.Reader. It returns what is buffered without blocking
// once it has some bytes for p.
func (d *dotReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		seg, err := d.next(len(p)-n, n == 0)
		n += copy(p[n:], seg)
		if err != nil {
			return n, err
		}
		if seg == nil {
			break // nothing more without blocking
		}
	}
	return n, nil
}

// WriteTo implements io.WriterTo: it writes the decoded body to w straight
// from the bufio.Reader's buffer, without copying it first.
func (d *dotReader) WriteTo(w io.Writer) (int64, error) {
	var n int64
	for {
		seg, err := d.next(math.MaxInt, true)
		if len(seg) > 0 {
			m, werr := w.Write(seg)
			n += int64(m)
			if werr != nil {
				return n, werr
			}
		}
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// drain consumes the rest of the body; it returns nil once the terminator
// has been read.
func (d *dotReader) drain() error {
	for {
		_, err := d.next(math.MaxInt, true)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// next returns the next run of decoded body bytes, at most max long, as a
// slice of the bufio.Reader's buffer valid until the next read from it. At
// the terminator it returns io.EOF. If block is false and nothing is
// buffered it returns nil, nil rather than wait for the stream.
func (d *dotReader) next(max int, block bool) ([]byte, error) {
	if d.done {
		return nil, io.EOF
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.r.dot != d {
		// The Reader has moved on without draining this body, which only
		// Discard does; treat it as cut short.
		d.err = io.ErrUnexpectedEOF
		return nil, d.err
	}
	br := d.r.R
	for {
		b, _ := br.Peek(br.Buffered()) // never blocks
		if d.lineStart {
			if len(b) == 0 || len(b) < 3 && b[0] == '.' {
				// A line start needs up to three octets to decide
				// between data, stuffing and the terminator.
				if !block {
					return nil, nil
				}
				need := 1
				if len(b) > 0 {
					need = 3
				}
				if _, err := br.Peek(need); err != nil {
					return nil, d.fail(err)
				}
				continue
			}
			if b[0] == '.' {
				if b[1] == '\r' && b[2] == '\n' {
					br.Discard(3)
					d.done = true
					if d.r.dot == d {
						d.r.dot = nil
					}
					return nil, io.EOF
				}
				// ".." and ".x" alike lose their first octet, unless
				// the body is read as it is on the wire.
				if !d.stuffed {
					br.Discard(1)
					b = b[1:]
				}
			}
			d.lineStart = false
			if len(b) == 0 {
				continue
			}
		} else if len(b) == 0 {
			if !block {
				return nil, nil
			}
			if _, err := br.Peek(1); err != nil {
				return nil, d.fail(err)
			}
			continue
		}

		// Hand out everything up to the next line that starts with ".".
		k := len(b)
		if d.afterCR && b[0] == '\n' {
			k = 1 // a CRLF split across two fills
		} else if i := bytes.Index(b, crlfDot); i >= 0 {
			k = i + 2
		}
		if k > max {
			k = max
		}
		seg := b[:k]
		last := seg[k-1]
		d.lineStart = last == '\n' && (k >= 2 && seg[k-2] == '\r' || k == 1 && d.afterCR)
		d.afterCR = last == '\r'
		br.Discard(k)
		return seg, nil
	}
}

// fail records a read error: the end of the stream before the terminator
// is io.ErrUnexpectedEOF, never a clean end of body.
func (d *dotReader) fail(err error) error {
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	d.err = err
	return err
}
