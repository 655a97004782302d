package parser

import (
	"bytes"
	"errors"
)

// errBodyClosed is returned by a body's Write after its Close.
var errBodyClosed = errors.New("parser: write to a closed body")

// dotWriter dot-stuffs one multi-line body. Like dotReader it searches for
// "\r\n." and writes everything between two such places in one call, so a
// body costs a few operations per write, not per line.
type dotWriter struct {
	w         *Writer
	lineStart bool  // the next byte starts a line
	afterCR   bool  // the last byte written was CR
	wrote     bool  // the body is not empty
	closed    bool  // Close has run
	stuffed   bool  // the bytes are stuffed already (StuffedWriter)
	err       error // sticky error; a body with one is never terminated
}

// Write implements io.Writer.
func (d *dotWriter) Write(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	if d.closed {
		return 0, errBodyClosed
	}
	if len(p) > 0 {
		d.wrote = true
	}
	bw := d.w.W
	if d.stuffed {
		// Already stuffed: no scan, only the line-end state for Close.
		n, err := bw.Write(p)
		if err != nil {
			d.err = err
			return n, err
		}
		if k := len(p); k > 0 {
			last := p[k-1]
			d.lineStart = last == '\n' && (k >= 2 && p[k-2] == '\r' || k == 1 && d.afterCR)
			d.afterCR = last == '\r'
		}
		return n, nil
	}
	n := 0
	for len(p) > 0 {
		if d.lineStart && p[0] == '.' && !d.stuffed {
			if err := bw.WriteByte('.'); err != nil {
				d.err = err
				return n, err
			}
		}
		k := len(p)
		if d.afterCR && p[0] == '\n' {
			k = 1 // a CRLF split across two writes
		} else if i := bytes.Index(p, crlfDot); i >= 0 {
			k = i + 2
		}
		seg := p[:k]
		m, err := bw.Write(seg)
		n += m
		if err != nil {
			d.err = err
			return n, err
		}
		last := seg[k-1]
		d.lineStart = last == '\n' && (k >= 2 && seg[k-2] == '\r' || k == 1 && d.afterCR)
		d.afterCR = last == '\r'
		p = p[k:]
	}
	return n, nil
}

// Close implements io.Closer: it ends the body with ".\r\n", after a CRLF
// if the body is not empty and did not end with one. A second Close does
// nothing. If a write failed, Close returns that error and writes nothing.
func (d *dotWriter) Close() error {
	if d.err != nil {
		return d.err
	}
	if d.closed {
		return nil
	}
	d.closed = true
	d.w.dot = nil
	bw := d.w.W
	if d.wrote && !d.lineStart {
		bw.WriteString("\r\n")
	}
	_, err := bw.WriteString(".\r\n") // bufio.Writer errors are sticky
	return err
}
