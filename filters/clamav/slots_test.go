package clamav

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// startedReader closes started on its first Read: the filter reads the
// body only once it holds a scan slot and has dialed clamd.
type startedReader struct {
	r       io.Reader
	started chan struct{}
	once    sync.Once
}

func (s *startedReader) Read(p []byte) (int, error) {
	s.once.Do(func() { close(s.started) })
	return s.r.Read(p)
}

// heldScan is a RETR in progress whose backend body does not arrive until
// finish: it holds a scan slot all that time.
type heldScan struct {
	pw   *io.PipeWriter
	done chan result
}

// holdScan starts a RETR through h whose body waits for finish, and
// returns once the scan holds its slot.
func holdScan(t *testing.T, h *harness) *heldScan {
	t.Helper()
	pr, pw := io.Pipe()
	sr := &startedReader{r: pr, started: make(chan struct{})}
	hs := &heldScan{pw: pw, done: make(chan result, 1)}
	go func() {
		ex, err := h.serveCtx(context.Background(), &filters.Session{ID: "held"}, retr, parser.OK(""), newBackend(sr))
		r := result{ex: ex, err: err}
		if err == nil && ex.Body != nil {
			r.body, r.bodyErr = io.ReadAll(ex.Body)
		}
		hs.done <- r
	}()
	select {
	case <-sr.started:
	case <-time.After(10 * time.Second):
		t.Fatal("held scan never started reading its body")
	}
	t.Cleanup(func() { pw.CloseWithError(errors.New("test over")) })
	return hs
}

// finish sends the held message and waits for its result.
func (hs *heldScan) finish(t *testing.T) result {
	t.Helper()
	go func() {
		io.WriteString(hs.pw, wire(cleanMsg))
		hs.pw.Close()
	}()
	select {
	case r := <-hs.done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("held scan did not finish")
		return result{}
	}
}

// TestScanSlots checks max_concurrent_scans: with N scans running, scan
// N+1 waits up to scan_wait for a slot, then follows on_error; it gets the
// slot if one comes free in time, and stops waiting when the session ends.
// clamd never serves more than N streams at once.
func TestScanSlots(t *testing.T) {
	const n = 2
	setup := func(t *testing.T, onError string, wait time.Duration) (*fakeClamd, *harness, []*heldScan) {
		fc := startFake(t, "tcp", modeScan)
		h := newHarness(t, Config{Address: fc.addr, OnError: onError, MaxConcurrentScans: n, ScanWait: wait})
		var held []*heldScan
		for range n {
			held = append(held, holdScan(t, h))
		}
		return fc, h, held
	}
	// finishAll completes the held scans, which must be clean.
	finishAll := func(t *testing.T, held []*heldScan) {
		t.Helper()
		for _, hs := range held {
			if r := hs.finish(t); r.err != nil || string(r.body) != cleanMsg {
				t.Errorf("held scan: Serve = %v, body %q", r.err, r.body)
			}
		}
	}

	t.Run("reject-after-scan-wait", func(t *testing.T) {
		const wait = 300 * time.Millisecond
		fc, h, held := setup(t, "reject", wait)
		be := newBackend(strings.NewReader(wire(cleanMsg)))
		start := time.Now()
		r := h.run(t, retr, parser.OK(""), be)
		if d := time.Since(start); d < wait {
			t.Errorf("scan %d was refused after %v, before scan_wait %v", n+1, d, wait)
		}
		if r.err != nil || r.ex.Response.String() != unavailable || r.ex.Body != nil {
			t.Fatalf("Serve = %v, response %q; want %q", r.err, r.ex.Response, unavailable)
		}
		be.assertDrained(t)
		ev := verdictOf(t, r.ex)
		if !errors.Is(ev.Err, ErrBusy) || ev.Action != ActionTempFail {
			t.Errorf("verdict = %+v, want ErrBusy and tempfail", ev)
		}
		finishAll(t, held)
		if got := len(fc.waitScans(t, n)); got != n {
			t.Errorf("clamd saw %d scans, want %d", got, n)
		}
		if m := fc.mostAtOnce(); m > n {
			t.Errorf("clamd served %d scans at once, bound is %d", m, n)
		}
	})

	t.Run("pass-after-scan-wait", func(t *testing.T) {
		fc, h, held := setup(t, "pass", 100*time.Millisecond)
		be := newBackend(strings.NewReader(wire(infectedMsg)))
		r := h.run(t, retr, parser.OK(""), be)
		if r.err != nil || r.bodyErr != nil || string(r.body) != infectedMsg {
			t.Fatalf("Serve = %v, body %q (%v); want the message delivered unscanned", r.err, r.body, r.bodyErr)
		}
		be.assertDrained(t)
		ev := verdictOf(t, r.ex)
		if !errors.Is(ev.Err, ErrBusy) || ev.Action != ActionPass {
			t.Errorf("verdict = %+v, want ErrBusy and pass", ev)
		}
		if !strings.Contains(h.logs.String(), "[WARN]  message not scanned") {
			t.Errorf("unscanned delivery not logged:\n%s", h.logs)
		}
		finishAll(t, held)
		if m := fc.mostAtOnce(); m > n {
			t.Errorf("clamd served %d scans at once, bound is %d", m, n)
		}
	})

	t.Run("slot-comes-free", func(t *testing.T) {
		fc, h, held := setup(t, "reject", time.Minute)
		third := make(chan result, 1)
		go func() { third <- h.run(t, retr, parser.OK(""), newBackend(strings.NewReader(wire(infectedMsg)))) }()
		if r := held[0].finish(t); r.err != nil {
			t.Fatal(r.err)
		}
		var r result
		select {
		case r = <-third:
		case <-time.After(10 * time.Second):
			t.Fatal("the waiting scan never got the freed slot")
		}
		if r.err != nil || !r.ex.Response.IsOK() {
			t.Fatalf("Serve = %v, response %q", r.err, r.ex.Response)
		}
		checkNotice(t, r.body, testVirus)
		held[1].finish(t)
		fc.waitScans(t, n+1)
		if m := fc.mostAtOnce(); m > n {
			t.Errorf("clamd served %d scans at once, bound is %d", m, n)
		}
	})

	t.Run("session-ends-while-waiting", func(t *testing.T) {
		_, h, held := setup(t, "pass", time.Minute)
		ctx, cancel := context.WithCancel(context.Background())
		be := newBackend(strings.NewReader(wire(cleanMsg)))
		done := make(chan *filters.Exchange, 1)
		go func() {
			ex, _ := h.serveCtx(ctx, &filters.Session{ID: "gone"}, retr, parser.OK(""), be)
			done <- ex
		}()
		cancel()
		var ex *filters.Exchange
		select {
		case ex = <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("a scan waiting for a slot ignored the end of its session")
		}
		if ev := verdictOf(t, ex); !errors.Is(ev.Err, context.Canceled) {
			t.Errorf("verdict error = %v, want context.Canceled", ev.Err)
		}
		finishAll(t, held)
	})
}

// TestScanSlotDefaults checks the documented defaults.
func TestScanSlotDefaults(t *testing.T) {
	f, err := New(Config{Address: "tcp://127.0.0.1:3310"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c := f.Config(); c.MaxConcurrentScans != 10 || c.ScanWait != 10*time.Second || cap(f.slots) != 10 {
		t.Errorf("defaults: max_concurrent_scans %d, scan_wait %v, slots %d", c.MaxConcurrentScans, c.ScanWait, cap(f.slots))
	}
	for _, c := range []Config{{MaxConcurrentScans: -1}, {ScanWait: -time.Second}} {
		c.Address = "tcp://127.0.0.1:3310"
		if _, err := New(c, nil); err == nil {
			t.Errorf("New(%+v) accepted a negative value", c)
		}
	}
}
