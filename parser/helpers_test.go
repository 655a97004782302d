package parser

import (
	"bufio"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// readMode is one way of feeding a test stream to a Reader. Every reader
// test runs in each mode: whole, one byte at a time, half reads, data
// together with EOF, and a bufio buffer small enough that lines and bodies
// span several fills.
type readMode struct {
	name string
	wrap func(io.Reader) io.Reader
	size int // bufio.Reader size
}

func identity(r io.Reader) io.Reader { return r }

var readModes = []readMode{
	{"whole", identity, 4096},
	{"onebyte", iotest.OneByteReader, 4096},
	{"half", iotest.HalfReader, 4096},
	{"dataerr", iotest.DataErrReader, 4096},
	{"smallbuf", identity, 16},
	{"onebyte-smallbuf", iotest.OneByteReader, 16},
}

// newTestReader returns a Reader over input fed as mode says.
func newTestReader(mode readMode, input string, maxLine int) *Reader {
	return NewReader(bufio.NewReaderSize(mode.wrap(strings.NewReader(input)), mode.size), maxLine)
}

// forEachMode runs f as a subtest once per read mode.
func forEachMode(t *testing.T, f func(t *testing.T, m readMode)) {
	t.Helper()
	for _, m := range readModes {
		t.Run(m.name, func(t *testing.T) { f(t, m) })
	}
}

// repeatReader yields n copies of b, then io.EOF, without holding them.
type repeatReader struct {
	b byte
	n int64
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > r.n {
		p = p[:r.n]
	}
	for i := range p {
		p[i] = r.b
	}
	r.n -= int64(len(p))
	return len(p), nil
}

// failWriter fails every write after the first ok bytes.
type failWriter struct {
	ok  int
	err error
}

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) <= w.ok {
		w.ok -= len(p)
		return len(p), nil
	}
	n := w.ok
	w.ok = 0
	return n, w.err
}
