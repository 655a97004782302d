//go:build integration

package clamav

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/parser"
)

// Benchmarks against the real clamd, for reporting:
//
//	go test -tags integration -run '^$' -bench Integration -benchtime 20x ./filters/clamav/
//
// ScanOnly is clamd alone on 10 MiB held in memory. ScanWhileReceiving is
// the filter: a 10 MiB RETR body decoded from the wire, spooled and
// streamed to clamd at once, then read back. ReceiveThenScan is the naive
// alternative: spool the whole body, then scan the spool. "wait-ms" is the
// time from the last octet of the body to the verdict: the latency a
// client sees added.

// benchLines makes a body of 10 MiB.
const benchLines = 10 << 20 / 76

func BenchmarkIntegrationScanOnly10MiB(b *testing.B) {
	c := newTestClient(b, clamdAddrs(b)["tcp"], time.Minute)
	body, err := io.ReadAll(io.LimitReader(newLineWire(benchLines), newLineWire(benchLines).left))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	var wait time.Duration
	for b.Loop() {
		v, err := c.Scan(context.Background(), &sliceReader{b: body})
		if err != nil || !v.Clean {
			b.Fatalf("Scan = %+v, %v", v, err)
		}
		wait += v.Wait
	}
	b.ReportMetric(float64(wait.Milliseconds())/float64(b.N), "wait-ms")
}

func BenchmarkIntegrationScanWhileReceiving10MiB(b *testing.B) {
	h := newHarness(b, Config{Address: clamdAddrs(b)["tcp"]})
	b.SetBytes(newLineWire(benchLines).left)
	buf := make([]byte, 64<<10)
	var wait time.Duration
	for b.Loop() {
		be := newBackend(newLineWire(benchLines))
		ex, err := h.serve(retr, parser.OK(""), be)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{ex.Body}, buf); err != nil {
			b.Fatal(err)
		}
		ex.Body.(io.Closer).Close()
		if ev := ex.Verdict; ev == nil || ev.Action != ActionDeliver {
			b.Fatalf("verdict = %+v", ev)
		}
		wait += ex.Verdict.Wait
	}
	b.ReportMetric(float64(wait.Milliseconds())/float64(b.N), "wait-ms")
}

func BenchmarkIntegrationReceiveThenScan10MiB(b *testing.B) {
	c := newTestClient(b, clamdAddrs(b)["tcp"], time.Minute)
	dir := b.TempDir()
	b.SetBytes(newLineWire(benchLines).left)
	buf := make([]byte, 64<<10)
	var wait time.Duration
	for b.Loop() {
		be := newBackend(newLineWire(benchLines))
		body := be.handlerBody()
		sp := spool.New(dir, DefaultSpoolMemory, 0)
		if _, err := io.CopyBuffer(sp, struct{ io.Reader }{body}, buf); err != nil {
			b.Fatal(err)
		}
		last := time.Now()
		r, err := sp.Reader()
		if err != nil {
			b.Fatal(err)
		}
		v, err := c.Scan(context.Background(), r)
		if err != nil || !v.Clean {
			b.Fatalf("Scan = %+v, %v", v, err)
		}
		wait += time.Since(last)
		r, _ = sp.Reader()
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r}, buf); err != nil {
			b.Fatal(err)
		}
		sp.Close()
	}
	b.ReportMetric(float64(wait.Milliseconds())/float64(b.N), "wait-ms")
}

// handlerBody returns the backend's body as the session would get it.
func (be *backend) handlerBody() io.Reader {
	be.body = be.pr.DotReader()
	return be.body
}

// sliceReader reads b without implementing io.WriterTo, so the copy into
// a Stream goes through Write like the filter's.
type sliceReader struct{ b []byte }

func (r *sliceReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}
