package spool

import (
	"errors"
	"sync"
)

// ErrBudget is returned by Write when the octets would take the Budget the
// Spool shares with others past its disk bound (the memory bound is never
// an error: the Spool moves to disk instead). Nothing of the write was
// stored, and the Spool stays usable.
var ErrBudget = errors.New("spool: overall spool budget exhausted")

// Budget bounds the octets that all the Spools created from it hold at
// once: in memory and on disk, each bound on its own. A Spool that would
// take the memory in use past the bound moves to its temporary file
// instead; one that would take the disk in use past the bound gets
// ErrBudget. Octets are counted from the moment they are stored until the
// Spool is closed, so Close every Spool.
//
// A Budget is safe for concurrent use. The nil *Budget bounds nothing.
type Budget struct {
	mu           sync.Mutex
	memory, disk int64 // the bounds
	memUsed      int64 // memory buffers' capacity, in octets
	diskUsed     int64 // octets in temporary files
}

// NewBudget returns a Budget of memory octets in memory and disk octets on
// disk. A bound of 0 (or less) allows nothing there: with memory 0 every
// Spool goes straight to disk, with disk 0 a Spool may not outgrow memory.
func NewBudget(memory, disk int64) *Budget {
	return &Budget{memory: max(memory, 0), disk: max(disk, 0)}
}

// SetLimits changes the bounds (on a configuration reload). Octets already
// held stay where they are; while they exceed a new bound, no more are
// taken there.
func (b *Budget) SetLimits(memory, disk int64) {
	b.mu.Lock()
	b.memory, b.disk = max(memory, 0), max(disk, 0)
	b.mu.Unlock()
}

// Limits returns the bounds.
func (b *Budget) Limits() (memory, disk int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memory, b.disk
}

// Used returns the octets held now, in memory and on disk.
func (b *Budget) Used() (memory, disk int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.memUsed, b.diskUsed
}

// New returns an empty Spool like the package's New whose octets count
// against b.
func (b *Budget) New(dir string, memLimit, maxSize int64) *Spool {
	s := New(dir, memLimit, maxSize)
	s.budget = b
	return s
}

// takeMemory reserves n octets of memory and reports whether they fitted.
func (b *Budget) takeMemory(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.memory-b.memUsed {
		return false
	}
	b.memUsed += n
	return true
}

// takeDisk reserves n octets of disk and reports whether they fitted.
func (b *Budget) takeDisk(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.disk-b.diskUsed {
		return false
	}
	b.diskUsed += n
	return true
}

// give returns octets of memory and disk taken earlier.
func (b *Budget) give(memory, disk int64) {
	if b == nil || memory == 0 && disk == 0 {
		return
	}
	b.mu.Lock()
	b.memUsed -= memory
	b.diskUsed -= disk
	b.mu.Unlock()
}
