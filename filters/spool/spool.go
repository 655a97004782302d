package spool

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrTooLarge is returned by Write when the octets written would exceed the
// Spool's maxSize. The part that still fitted was kept.
var ErrTooLarge = errors.New("spool: size limit exceeded")

// ErrClosed is returned by operations on a closed Spool.
var ErrClosed = errors.New("spool: closed")

// errSealed is returned by Write after Reader was called.
var errSealed = errors.New("spool: write after Reader")

// fileBufferSize is the write buffer in front of the temporary file, so that
// small writes do not each cost a system call.
const fileBufferSize = 32 << 10

// filePattern names temporary files, for os.CreateTemp.
const filePattern = "popgate-spool-*"

// Spool stores octets in memory up to a bound and then in a temporary file.
// Create one with New, Write the octets, call Reader to read them back and
// Close when done. The zero value is not usable.
type Spool struct {
	dir      string
	memLimit int64
	maxSize  int64

	mem    []byte        // the octets while they fit in memory
	file   *os.File      // the temporary file once memLimit was crossed
	name   string        // the file's name if it could not be unlinked early
	w      *bufio.Writer // buffers writes to file until Reader
	size   int64         // octets stored
	err    error         // sticky I/O error
	sealed bool          // Reader was called: no more writes
	closed bool

	// budget, when not nil, is shared with other Spools; memHeld and
	// diskHeld are the octets taken from it, given back by spill (memory)
	// and Close.
	budget   *Budget
	memHeld  int64
	diskHeld int64

	// create makes the temporary file and unlinkEarly unlinks it while
	// open; tests replace them.
	create      func(dir string) (*os.File, error)
	unlinkEarly func(name string) error
}

// New returns an empty Spool that keeps up to memLimit octets in memory
// and moves to a temporary file in dir (os.TempDir when dir is empty) when
// more are written. memLimit <= 0 sends every octet to the file. maxSize
// bounds the total octets stored, in memory and on disk together; maxSize
// <= 0 means no bound. No file is created until one is needed.
func New(dir string, memLimit, maxSize int64) *Spool {
	if memLimit < 0 {
		memLimit = 0
	}
	if maxSize > 0 && memLimit > maxSize {
		memLimit = maxSize
	}
	return &Spool{dir: dir, memLimit: memLimit, maxSize: maxSize, create: createTemp, unlinkEarly: os.Remove}
}

// createTemp creates a temporary file in dir; spill unlinks it.
func createTemp(dir string) (*os.File, error) {
	return os.CreateTemp(dir, filePattern)
}

// Write stores p. When p would take the Spool past maxSize, Write stores
// the part that fits and returns its length with ErrTooLarge. When p does
// not fit in the Budget's disk bound, Write stores nothing and returns
// ErrBudget. Any other error is an I/O error of the temporary file; it is
// sticky.
func (s *Spool) Write(p []byte) (int, error) {
	switch {
	case s.closed:
		return 0, ErrClosed
	case s.sealed:
		return 0, errSealed
	case s.err != nil:
		return 0, s.err
	}
	tooLarge := false
	if s.maxSize > 0 && int64(len(p)) > s.maxSize-s.size {
		p = p[:s.maxSize-s.size]
		tooLarge = true
	}
	n, err := s.write(p)
	s.size += int64(n)
	if errors.Is(err, ErrBudget) {
		return n, err
	}
	if err != nil {
		s.err = err
		return n, err
	}
	if tooLarge {
		return n, ErrTooLarge
	}
	return n, nil
}

// write stores p in memory or in the file, moving to the file when p does
// not fit in memory: in memLimit, or in what the budget has left.
func (s *Spool) write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if s.file == nil && int64(len(s.mem))+int64(len(p)) <= s.memLimit && s.appendMem(p) {
		return len(p), nil
	}
	need := int64(len(p))
	if s.file == nil {
		need += int64(len(s.mem)) // moves to the file too
	}
	if !s.budget.takeDisk(need) {
		return 0, ErrBudget
	}
	s.diskHeld += need
	if s.file == nil {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	n, err := s.w.Write(p)
	if err != nil {
		return n, fmt.Errorf("spool: writing temporary file: %w", err)
	}
	return n, nil
}

// appendMem appends p to the memory buffer, growing it geometrically but
// never beyond memLimit, so memory use is bounded by memLimit itself. It
// reports false, storing nothing, when the budget has no memory left for
// the growth.
func (s *Spool) appendMem(p []byte) bool {
	need := len(s.mem) + len(p)
	if need > cap(s.mem) {
		c := max(2*cap(s.mem), need, 512)
		if int64(c) > s.memLimit {
			c = int(s.memLimit)
		}
		if !s.budget.takeMemory(int64(c - cap(s.mem))) {
			c = need // the least that will do
			if !s.budget.takeMemory(int64(c - cap(s.mem))) {
				return false
			}
		}
		s.memHeld += int64(c - cap(s.mem))
		grown := make([]byte, len(s.mem), c)
		copy(grown, s.mem)
		s.mem = grown
	}
	s.mem = append(s.mem, p...)
	return true
}

// spill creates the temporary file and moves the memory buffer into it.
func (s *Spool) spill() error {
	f, err := s.create(s.dir)
	if err != nil {
		return fmt.Errorf("spool: creating temporary file: %w", err)
	}
	// Unlink at once: the file then lives exactly as long as its
	// descriptor, even if this process dies. Where that is not possible
	// (Windows), Close removes it by name.
	if f.Name() != "" && !isDevice(f) {
		if err := s.unlinkEarly(f.Name()); err != nil {
			s.name = f.Name()
		}
	}
	s.file = f
	s.w = bufio.NewWriterSize(f, fileBufferSize)
	if len(s.mem) > 0 {
		if _, err := s.w.Write(s.mem); err != nil {
			return fmt.Errorf("spool: writing temporary file: %w", err)
		}
	}
	s.mem = nil
	s.budget.give(s.memHeld, 0)
	s.memHeld = 0
	return nil
}

// isDevice reports whether f is not a regular file (tests spool to
// /dev/full, which must not be removed).
func isDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && !fi.Mode().IsRegular()
}

// Size returns the number of octets stored.
func (s *Spool) Size() int64 { return s.size }

// OnDisk reports whether the Spool moved to a temporary file.
func (s *Spool) OnDisk() bool { return s.file != nil }

// Reader returns a reader of everything written, from the first octet. It
// seals the Spool: later writes fail. Each call returns a new, independent
// reader; readers are valid until Close. Reader returns the sticky I/O
// error, if any, since the octets stored would then be incomplete.
func (s *Spool) Reader() (io.Reader, error) {
	switch {
	case s.closed:
		return nil, ErrClosed
	case s.err != nil:
		return nil, s.err
	}
	s.sealed = true
	if s.file == nil {
		return bytes.NewReader(s.mem), nil
	}
	if s.w != nil {
		if err := s.w.Flush(); err != nil {
			s.err = fmt.Errorf("spool: writing temporary file: %w", err)
			return nil, s.err
		}
		s.w = nil
	}
	return io.NewSectionReader(s.file, 0, s.size), nil
}

// Close releases the memory and closes the temporary file, which is then
// gone from the disk. Readers returned earlier fail after Close. Close is
// idempotent; it returns the error of closing or removing the file.
func (s *Spool) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	s.mem, s.w = nil, nil
	s.budget.give(s.memHeld, s.diskHeld)
	s.memHeld, s.diskHeld = 0, 0
	if s.file == nil {
		return nil
	}
	err := s.file.Close()
	if err != nil {
		err = fmt.Errorf("spool: closing temporary file: %w", err)
	}
	if s.name != "" {
		if rerr := os.Remove(s.name); rerr != nil && err == nil {
			err = fmt.Errorf("spool: removing temporary file: %w", rerr)
		}
	}
	return err
}
