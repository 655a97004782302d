package clamav

import (
	"crypto/sha256"
	"io"
	"os"
	"runtime"
	"testing"

	"github.com/popgate/popgate/parser"
)

// lineWire yields a body of n lines of a 76-octet line, as a backend sends
// it (with terminator and afterBody), without holding it in memory.
type lineWire struct {
	line []byte
	left int64 // body octets still to yield
	pos  int   // position in line
	tail []byte
}

func newLineWire(lines int64) *lineWire {
	line := []byte("The quick brown fox jumps over the lazy dog, again and again and again....\r\n")
	return &lineWire{line: line, left: lines * int64(len(line)), tail: []byte(".\r\n" + afterBody + "\r\n")}
}

func (w *lineWire) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) && w.left > 0 {
		c := copy(p[n:min(len(p), n+int(min(w.left, int64(len(p)))))], w.line[w.pos:])
		w.pos = (w.pos + c) % len(w.line)
		w.left -= int64(c)
		n += c
	}
	if n < len(p) && len(w.tail) > 0 {
		c := copy(p[n:], w.tail)
		w.tail = w.tail[c:]
		n += c
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// hashOf returns the SHA-256 of lines lines of lineWire's body.
func hashOf(lines int64) [32]byte {
	h := sha256.New()
	w := newLineWire(lines)
	w.tail = nil
	io.Copy(h, w)
	return [32]byte(h.Sum(nil))
}

func TestPeakMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 50 MiB")
	}
	const lines = 50 << 20 / 76 // 50 MiB
	fc := startFake(t, "tcp", modeScan)
	dir := t.TempDir()
	h := newHarness(t, Config{Address: fc.addr, SpoolDir: dir, SpoolMemory: 1 << 20, MaxSize: 64 << 20})
	be := newBackend(newLineWire(lines))
	want := hashOf(lines)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	ex, err := h.serve(retr, parser.OK(""), be)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.New()
	// Hide WriterTo/ReaderFrom so the copy goes through one small buffer.
	if _, err := io.CopyBuffer(struct{ io.Writer }{sum}, struct{ io.Reader }{ex.Body}, make([]byte, 32<<10)); err != nil {
		t.Fatal(err)
	}
	ex.Body.(io.Closer).Close()
	runtime.ReadMemStats(&after)

	if [32]byte(sum.Sum(nil)) != want {
		t.Fatal("delivered body differs")
	}
	be.assertDrained(t)
	size := newLineWire(lines).left
	if rec := fc.scans(); len(rec) != 1 || rec[0].bytes != size || rec[0].sum != want {
		t.Errorf("clamd did not receive the whole body: %+v, want %d octets", rec, size)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("50 MiB body: %d KiB allocated in total, heap in use %+d KiB",
		alloc>>10, (int64(after.HeapInuse)-int64(before.HeapInuse))>>10)
	if alloc > 6<<20 {
		t.Errorf("scanning a 50 MiB body allocated %d KiB; memory must stay flat", alloc>>10)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("spool dir not empty: %v", des)
	}
}
