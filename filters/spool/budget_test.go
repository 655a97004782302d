package spool

import (
	"bytes"
	"errors"
	"sync"
	"testing"
)

// checkUsed fails the test unless b holds mem and disk octets.
func checkUsed(t *testing.T, b *Budget, mem, disk int64) {
	t.Helper()
	if m, d := b.Used(); m != mem || d != disk {
		t.Fatalf("budget holds %d in memory and %d on disk, want %d and %d", m, d, mem, disk)
	}
}

// TestBudgetMemoryThenDiskThenRefusal fills a shared budget: a second spool
// finds the memory taken by the first and goes to disk; a third finds the
// disk taken and is refused with ErrBudget, storing nothing; closing the
// others gives the octets back.
func TestBudgetMemoryThenDiskThenRefusal(t *testing.T) {
	dir := t.TempDir()
	b := NewBudget(1000, 1500)

	first := b.New(dir, 1000, 0)
	defer first.Close()
	if _, err := first.Write(pattern(1000)); err != nil {
		t.Fatalf("first Write: %v", err)
	}
	if first.OnDisk() {
		t.Fatal("first spool went to disk with the memory budget free")
	}
	checkUsed(t, b, 1000, 0)

	// Memory is used up: the second spool holds its octets on disk,
	// although its own memory limit would allow them.
	second := b.New(dir, 1000, 0)
	defer second.Close()
	want := pattern(600)
	if _, err := second.Write(want[:100]); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	if !second.OnDisk() {
		t.Fatal("second spool stayed in memory past the memory budget")
	}
	if _, err := second.Write(want[100:]); err != nil {
		t.Fatalf("second Write: %v", err)
	}
	checkUsed(t, b, 1000, 600)

	// The disk has 900 octets left: 1000 do not fit.
	third := b.New(dir, 1000, 0)
	defer third.Close()
	if _, err := third.Write(pattern(100)); err != nil {
		t.Fatalf("third Write within the disk left: %v", err)
	}
	n, err := third.Write(pattern(1000))
	if n != 0 || !errors.Is(err, ErrBudget) {
		t.Fatalf("third Write past the budget = %d, %v; want 0, ErrBudget", n, err)
	}
	if third.Size() != 100 {
		t.Errorf("third Size = %d after a refused Write, want 100", third.Size())
	}
	// Not sticky: the spool is still usable.
	if _, err := third.Write(pattern(10)); err != nil {
		t.Errorf("Write after ErrBudget: %v", err)
	}
	checkUsed(t, b, 1000, 710)

	if got := readAll(t, second); !bytes.Equal(got, want) {
		t.Error("second spool's content differs")
	}
	first.Close()
	second.Close()
	third.Close()
	checkUsed(t, b, 0, 0)

	// Everything given back: a full message fits again, in memory.
	again := b.New(dir, 1000, 0)
	defer again.Close()
	if _, err := again.Write(pattern(1000)); err != nil || again.OnDisk() {
		t.Fatalf("Write after release = %v, on disk %v", err, again.OnDisk())
	}
}

// TestBudgetMovesMemoryToDisk checks that a spool that moves to disk gives
// its memory back and takes disk for the octets it moved.
func TestBudgetMovesMemoryToDisk(t *testing.T) {
	b := NewBudget(1<<20, 1<<20)
	s := b.New(t.TempDir(), 100, 0)
	defer s.Close()
	want := pattern(300)
	if _, err := s.Write(want[:80]); err != nil {
		t.Fatal(err)
	}
	if m, _ := b.Used(); m == 0 || m > 100 {
		t.Fatalf("memory used = %d, want 1..100", m)
	}
	if _, err := s.Write(want[80:]); err != nil {
		t.Fatal(err)
	}
	checkUsed(t, b, 0, 300)
	if got := readAll(t, s); !bytes.Equal(got, want) {
		t.Fatal("content differs")
	}
	s.Close()
	checkUsed(t, b, 0, 0)
}

// TestBudgetNoDisk: with a disk bound of 0 a spool may not outgrow memory.
func TestBudgetNoDisk(t *testing.T) {
	b := NewBudget(1000, 0)
	s := b.New(t.TempDir(), 100, 0)
	defer s.Close()
	if _, err := s.Write(pattern(100)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(pattern(1)); !errors.Is(err, ErrBudget) {
		t.Fatalf("Write past memory with no disk = %v, want ErrBudget", err)
	}
	if s.OnDisk() {
		t.Error("spool created a file with no disk budget")
	}
}

// TestBudgetSetLimits: a lowered bound refuses new octets while those held
// exceed it.
func TestBudgetSetLimits(t *testing.T) {
	b := NewBudget(0, 1000)
	s := b.New(t.TempDir(), 0, 0)
	defer s.Close()
	if _, err := s.Write(pattern(800)); err != nil {
		t.Fatal(err)
	}
	b.SetLimits(0, 500)
	if _, err := s.Write(pattern(1)); !errors.Is(err, ErrBudget) {
		t.Fatalf("Write over a lowered bound = %v, want ErrBudget", err)
	}
	if m, d := b.Limits(); m != 0 || d != 500 {
		t.Errorf("Limits = %d, %d", m, d)
	}
}

// TestBudgetConcurrent runs many spools against one budget; the race
// detector checks the accounting, and the budget ends empty.
func TestBudgetConcurrent(t *testing.T) {
	b := NewBudget(64<<10, 256<<10)
	dir := t.TempDir()
	var wg sync.WaitGroup
	for i := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := b.New(dir, 8<<10, 0)
			defer s.Close()
			for range 8 {
				if _, err := s.Write(pattern(1000 + i)); err != nil && !errors.Is(err, ErrBudget) {
					t.Error(err)
					return
				}
			}
			if m, d := b.Used(); m > 64<<10 || d > 256<<10 {
				t.Errorf("budget exceeded: %d in memory, %d on disk", m, d)
			}
		}()
	}
	wg.Wait()
	checkUsed(t, b, 0, 0)
}

// TestNilBudget: spools made without a budget are bounded by nothing more.
func TestNilBudget(t *testing.T) {
	var b *Budget
	s := b.New(t.TempDir(), 10, 0)
	defer s.Close()
	if _, err := s.Write(pattern(1000)); err != nil {
		t.Fatal(err)
	}
}
