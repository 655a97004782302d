package audit

import (
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
)

// countingWriter counts the writes that reach the file.
type countingWriter struct {
	w      *os.File
	writes atomic.Int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.w.Write(p)
}

// TestBurstWrittenWithOneWrite: the records of a pipelined burst wait for
// the session's Flush and then go out with one write, still chained.
func TestBurstWrittenWithOneWrite(t *testing.T) {
	f, path := newTest(t, true)
	cw := &countingWriter{w: f.w.file}
	f.w.mu.Lock()
	f.w.out = cw
	f.w.mu.Unlock()
	for i := range 100 {
		f.recordCommand(&commandRecord{header: newHeader(EventCommand, nil, time.Now()), Seq: int64(i + 1), Verb: "NOOP", Status: "+OK"})
	}
	if n := cw.writes.Load(); n != 0 {
		t.Fatalf("%d writes before the end of the burst, want 0", n)
	}
	if recs := records(t, path); len(recs) != 0 {
		t.Fatalf("%d records in the file before the end of the burst", len(recs))
	}
	f.Flush(nil)
	if n := cw.writes.Load(); n != 1 {
		t.Fatalf("the burst took %d writes, want 1", n)
	}
	if recs := records(t, path); len(recs) != 100 {
		t.Fatalf("%d records after the burst, want 100", len(recs))
	}
	if _, err := check(t, path); err != nil {
		t.Fatalf("chain after a burst: %v", err)
	}
}

// TestImmediateRecordKeepsOrder: a record written at once takes the queued
// records with it, in order, so the chain stays in file order.
func TestImmediateRecordKeepsOrder(t *testing.T) {
	f, path := newTest(t, true)
	f.recordCommand(&commandRecord{header: newHeader(EventCommand, nil, time.Now()), Seq: 1, Verb: "NOOP", Status: "+OK"})
	f.record(&commandRecord{header: newHeader(EventCommand, nil, time.Now()), Seq: 2, Verb: "STAT", Status: "+OK"})
	recs := records(t, path)
	if len(recs) != 2 || recs[0]["verb"] != "NOOP" || recs[1]["verb"] != "STAT" {
		t.Fatalf("records %v, want NOOP then STAT", recs)
	}
	if _, err := check(t, path); err != nil {
		t.Fatal(err)
	}
}

// TestTornBurstRecorded: a burst's write cut short keeps the records
// written whole, loses (and counts) the others, and the next record names
// the torn octets in a chain_break, so the file verifies.
func TestTornBurstRecorded(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	file := f.w.file
	var lost atomic.Int64
	f.cfg.OnWriteError = func(error) { lost.Add(1) }
	f.w.mu.Lock()
	size := f.w.size
	f.w.mu.Unlock()
	for i := range 5 {
		f.recordCommand(&commandRecord{header: newHeader(EventCommand, nil, time.Now()), Seq: int64(i + 1), Verb: "NOOP", Status: "+OK"})
	}
	f.w.mu.Lock()
	second := f.w.pendRec[1].end
	f.w.out = &tearingWriter{w: file, n: second + 20} // two whole records, then part of the third
	f.w.mu.Unlock()
	f.Flush(nil)
	if n := lost.Load(); n != 3 {
		t.Fatalf("%d records counted lost, want 3", n)
	}
	f.w.mu.Lock()
	f.w.out = file
	f.w.mu.Unlock()
	f.SessionEnded(testSession("s2"), filters.SessionEnd{Reason: "quit"})
	rep, err := check(t, path)
	if err != nil || len(rep.Breaks) != 1 || rep.Breaks[0].Reason != ReasonTornWrite || rep.Breaks[0].Offset != size+int64(second) {
		t.Fatalf("Check = %v, %+v; want one torn-write break at %d", err, rep, size+int64(second))
	}
}
