package audit

import (
	"os"
	"testing"
	"time"
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
