package audit

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// BenchmarkRecordSync measures the cost of one chained command record
// under each sync policy, on a file in $POPGATE_BENCH_DIR (default: the
// test's temporary directory; put it on the disk the audit trail lives on,
// since fsync on tmpfs costs nothing). Run with -cpu 1,8 to see records of
// concurrent sessions wait behind each other's fsync.
func BenchmarkRecordSync(b *testing.B) {
	for _, p := range []SyncPolicy{SyncRecord, SyncInterval, SyncNone} {
		b.Run(string(p), func(b *testing.B) {
			dir := os.Getenv("POPGATE_BENCH_DIR")
			if dir == "" {
				dir = b.TempDir()
			}
			tmp, err := os.MkdirTemp(dir, "audit-bench")
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { os.RemoveAll(tmp) })
			f, err := New(Config{Path: tmp + "/audit.log", Chain: true, Sync: p}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			s := testSession("bench")
			start := time.Now()
			rec := &commandRecord{Verb: "RETR", Args: "1", Status: "+OK", Bytes: 4096, Complete: true}
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					r := *rec
					r.header = newHeader(EventCommand, s, start)
					f.record(&r)
				}
			})
		})
	}
}

// BenchmarkPipelinedNOOPRecord measures what one pipelined NOOP costs the
// audit filter with chain = true: Exclusive, the Command side, the
// Response side with its command record (encoded, hashed and written to a
// file in $POPGATE_BENCH_DIR, default the test's temporary directory) and
// Finish, run through a filters.Chain as the session runs them. The issue's
// target is under 2 µs of CPU per record: see the cpu-ns/op metric.
func BenchmarkPipelinedNOOPRecord(b *testing.B) {
	dir := os.Getenv("POPGATE_BENCH_DIR")
	if dir == "" {
		dir = b.TempDir()
	}
	f, err := New(Config{Path: dir + "/audit-noop.log", Chain: true}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	defer os.Remove(dir + "/audit-noop.log")
	c := filters.NewChain(f)
	s := testSession("bench")
	f.SessionStarted(s)
	noop := parser.NewCommand("NOOP")
	ok := parser.OK("")
	ctx := context.Background()
	b.ReportAllocs()
	cpu0, measured := processCPU()
	for b.Loop() {
		ex := &filters.Exchange{Session: s, Command: noop, Out: noop, Started: time.Now()}
		if c.Exclusive(ex) {
			b.Fatal("NOOP ran alone")
		}
		n, err := c.Command(ctx, ex)
		if err != nil {
			b.Fatal(err)
		}
		ex.Response = ok
		if err := c.Response(ctx, ex, n); err != nil {
			b.Fatal(err)
		}
		c.Finish(ex)
	}
	// CPU time, user and system, is what the target counts;
	// ns/op also counts the time the benchmark waited for a CPU.
	if cpu1, ok := processCPU(); ok && measured {
		b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
