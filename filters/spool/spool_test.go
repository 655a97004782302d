package spool

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// pattern returns n deterministic, non-repeating-looking octets.
func pattern(n int) []byte {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	p := make([]byte, n)
	for i := range p {
		p[i] = byte(r.Uint32())
	}
	return p
}

// readAll reads the spool back and fails the test on error.
func readAll(t *testing.T, s *Spool) []byte {
	t.Helper()
	r, err := s.Reader()
	if err != nil {
		t.Fatalf("Reader: %v", err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	return got
}

// entries lists dir.
func entries(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

func TestMemoryOnly(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 100, 0)
	t.Cleanup(func() { s.Close() })
	want := pattern(100)
	for _, part := range [][]byte{want[:1], want[1:60], want[60:]} {
		if n, err := s.Write(part); n != len(part) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	if s.OnDisk() {
		t.Fatal("spool moved to disk below its memory limit")
	}
	if cap(s.mem) > 100 {
		t.Errorf("memory buffer capacity %d exceeds the limit 100", cap(s.mem))
	}
	if got := readAll(t, s); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	if s.Size() != 100 {
		t.Errorf("Size = %d, want 100", s.Size())
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("files in spool dir: %v", names)
	}
}

func TestCrossMemoryBound(t *testing.T) {
	for _, tc := range []struct {
		name     string
		memLimit int64
		size     int
		step     int
	}{
		{"one-byte-writes", 1000, 5000, 1},
		{"odd-writes", 4096, 300000, 777},
		{"one-big-write", 10, 200000, 200000},
		{"no-memory", 0, 70000, 1024},
		{"exactly-at-limit", 1000, 1000, 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := New(dir, tc.memLimit, 0)
			t.Cleanup(func() { s.Close() })
			want := pattern(tc.size)
			for off := 0; off < len(want); off += tc.step {
				end := min(off+tc.step, len(want))
				if n, err := s.Write(want[off:end]); n != end-off || err != nil {
					t.Fatalf("Write at %d = %d, %v", off, n, err)
				}
				if cap(s.mem) > int(tc.memLimit) {
					t.Fatalf("memory buffer capacity %d exceeds the limit %d", cap(s.mem), tc.memLimit)
				}
			}
			wantDisk := int64(tc.size) > tc.memLimit
			if s.OnDisk() != wantDisk {
				t.Fatalf("OnDisk = %v, want %v", s.OnDisk(), wantDisk)
			}
			if got := readAll(t, s); !bytes.Equal(got, want) {
				t.Fatalf("content differs: got %d octets, want %d", len(got), len(want))
			}
			// A second reader starts again from the beginning.
			if got := readAll(t, s); !bytes.Equal(got, want) {
				t.Fatal("second reader differs")
			}
			if s.Size() != int64(tc.size) {
				t.Errorf("Size = %d, want %d", s.Size(), tc.size)
			}
		})
	}
}

func TestMaxSize(t *testing.T) {
	for _, memLimit := range []int64{10, 1 << 20} {
		s := New(t.TempDir(), memLimit, 100)
		t.Cleanup(func() { s.Close() })
		want := pattern(150)
		if n, err := s.Write(want[:60]); n != 60 || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
		n, err := s.Write(want[60:])
		if n != 40 || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Write past max = %d, %v; want 40, ErrTooLarge", n, err)
		}
		if n, err := s.Write(want[100:101]); n != 0 || !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Write at max = %d, %v; want 0, ErrTooLarge", n, err)
		}
		// What fitted is kept and readable.
		if got := readAll(t, s); !bytes.Equal(got, want[:100]) {
			t.Fatalf("memLimit %d: content differs", memLimit)
		}
	}
}

func TestTempFileRemoved(t *testing.T) {
	dir := t.TempDir()
	s := New(dir, 16, 0)
	if _, err := s.Write(pattern(1000)); err != nil {
		t.Fatal(err)
	}
	if !s.OnDisk() {
		t.Fatal("spool did not move to disk")
	}
	// Unlinked at creation: nothing is visible, even before Close.
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("files in spool dir while open: %v", names)
	}
	r, err := s.Reader()
	if err != nil {
		t.Fatal(err)
	}
	f := s.file
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Errorf("file descriptor still open after Close: %v", err)
	}
	if _, err := io.ReadAll(r); err == nil {
		t.Error("reader still works after Close")
	}
	if _, err := s.Reader(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reader after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("files left in spool dir: %v", names)
	}
}

func TestRemovedByNameWhenNotUnlinked(t *testing.T) {
	// Simulate a system where an open file cannot be unlinked (Windows).
	dir := t.TempDir()
	s := New(dir, 0, 0)
	s.unlinkEarly = func(string) error { return errors.New("not supported") }
	if _, err := s.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if names := entries(t, dir); len(names) != 1 {
		t.Fatalf("spool dir holds %v, want the temporary file", names)
	}
	if got := readAll(t, s); string(got) != "abc" {
		t.Fatalf("content = %q", got)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if names := entries(t, dir); len(names) != 0 {
		t.Errorf("files left in spool dir: %v", names)
	}
}

func TestBadDirectory(t *testing.T) {
	base := t.TempDir()
	file := filepath.Join(base, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	readOnly := filepath.Join(base, "ro")
	if err := os.Mkdir(readOnly, 0o500); err != nil {
		t.Fatal(err)
	}
	// Root ignores directory permissions; sysfs refuses new files even to
	// root (EACCES, or EROFS where it is mounted read-only).
	if os.Geteuid() == 0 {
		readOnly = "/sys"
	}
	for _, tc := range []struct {
		name string
		dir  string
		is   []error
	}{
		{"absent", filepath.Join(base, "absent"), []error{fs.ErrNotExist}},
		{"not-a-directory", file, []error{syscall.ENOTDIR}},
		{"read-only", readOnly, []error{fs.ErrPermission, syscall.EROFS}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := os.Stat(tc.dir); tc.name == "read-only" && err != nil {
				t.Skipf("no read-only directory: %v", err)
			}
			s := New(tc.dir, 4, 0)
			t.Cleanup(func() { s.Close() })
			if _, err := s.Write([]byte("abc")); err != nil {
				t.Fatalf("Write within the memory limit failed: %v", err)
			}
			n, err := s.Write([]byte("defgh"))
			if n != 0 || !isAny(err, tc.is) {
				t.Fatalf("Write past memory = %d, %v; want 0 and %v", n, err, tc.is)
			}
			// The error is sticky, and reading back refuses the
			// incomplete content.
			if _, err2 := s.Write([]byte("x")); err2 == nil {
				t.Error("Write after an I/O error succeeded")
			}
			if _, err2 := s.Reader(); !isAny(err2, tc.is) {
				t.Errorf("Reader after an I/O error = %v", err2)
			}
		})
	}
}

func TestDiskFull(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	full := func(string) (*os.File, error) { return os.OpenFile("/dev/full", os.O_RDWR, 0) }

	t.Run("large-write", func(t *testing.T) {
		s := New("", 0, 0)
		s.create = full
		t.Cleanup(func() { s.Close() })
		if _, err := s.Write(pattern(fileBufferSize * 2)); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Write = %v, want ENOSPC", err)
		}
	})
	t.Run("buffered-until-reader", func(t *testing.T) {
		s := New("", 0, 0)
		s.create = full
		t.Cleanup(func() { s.Close() })
		if _, err := s.Write([]byte("small")); err != nil {
			t.Fatalf("buffered Write failed early: %v", err)
		}
		if _, err := s.Reader(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Reader = %v, want ENOSPC", err)
		}
		if _, err := s.Reader(); !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("second Reader = %v, want the sticky ENOSPC", err)
		}
	})
}

func TestWriteAfterReader(t *testing.T) {
	s := New("", 100, 0)
	t.Cleanup(func() { s.Close() })
	if _, err := s.Write([]byte("abc")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reader(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("d")); err == nil {
		t.Fatal("Write after Reader succeeded")
	}
	if got := readAll(t, s); string(got) != "abc" {
		t.Fatalf("content = %q", got)
	}
}

func TestEmpty(t *testing.T) {
	s := New("", 0, 0)
	t.Cleanup(func() { s.Close() })
	if n, err := s.Write(nil); n != 0 || err != nil {
		t.Fatalf("Write(nil) = %d, %v", n, err)
	}
	if s.OnDisk() {
		t.Error("empty write created a file")
	}
	if got := readAll(t, s); len(got) != 0 {
		t.Fatalf("content = %q", got)
	}
}

// isAny reports whether err is one of targets.
func isAny(err error, targets []error) bool {
	for _, target := range targets {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}
