package policy

import (
	"bufio"
	"bytes"
	"io"

	"github.com/popgate/popgate/parser"
)

// capaBuffer bounds the part of a CAPA line held at once. Capability lines
// are short (RFC 2449 section 6); a longer line is still passed or dropped
// whole, in pieces, decided on its first piece.
const capaBuffer = 4096

// capaFilter streams a decoded CAPA body and drops the lines whose
// capability tag (the first word, RFC 2449 section 6) hide reports true
// for. Memory is constant; nothing is held back beyond one line.
type capaFilter struct {
	src       io.Reader
	br        *bufio.Reader
	hide      func(tag string) bool
	pending   []byte // the rest of a kept piece, not yet returned
	lineStart bool   // the next piece starts a line
	dropping  bool   // the current line is being dropped
	err       error  // the error to return once pending is empty
}

func newCapaFilter(r io.Reader, hide func(tag string) bool) *capaFilter {
	return &capaFilter{src: r, br: bufio.NewReaderSize(r, capaBuffer), hide: hide, lineStart: true}
}

// Read returns the kept lines.
func (c *capaFilter) Read(p []byte) (int, error) {
	for len(c.pending) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		piece, err := c.br.ReadSlice('\n')
		switch err {
		case nil, bufio.ErrBufferFull:
		default:
			c.err = err
		}
		if len(piece) == 0 {
			continue
		}
		if c.lineStart {
			c.dropping = c.hide(capaTag(piece))
		}
		c.lineStart = piece[len(piece)-1] == '\n'
		if !c.dropping {
			// piece points into br's buffer; it is consumed before the
			// next ReadSlice.
			c.pending = piece
		}
	}
	n := copy(p, c.pending)
	c.pending = c.pending[n:]
	return n, nil
}

// Close closes the filtered body when it is an io.Closer; the session
// closes every body it is done with.
func (c *capaFilter) Close() error {
	if cl, ok := c.src.(io.Closer); ok {
		return cl.Close()
	}
	return nil
}

// capaTag returns the tag of a capability line piece, upper-cased
// (parser.CapaTag; tags are case-insensitive, RFC 2449 section 6).
func capaTag(line []byte) string {
	return parser.CapaTag(string(bytes.TrimRight(line, "\r\n")))
}
