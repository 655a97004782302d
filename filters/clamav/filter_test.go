package clamav

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// testHeader is the header section of the test messages, with a folded
// Subject.
const testHeader = "Date: Mon, 3 Nov 2025 10:00:00 +0100\r\n" +
	"From: Alice Example <alice@example.org>\r\n" +
	"To: bob@example.org\r\n" +
	"Subject: quarterly\r\n report\r\n" +
	"Message-ID: <1234@example.org>\r\n" +
	"Received: from somewhere\r\n"

var (
	cleanMsg    = testHeader + "\r\nHello Bob,\r\n.a line starting with a dot\r\n..\r\nbye\r\n"
	infectedMsg = testHeader + "\r\nattachment:\r\n" + testMarker + "\r\n"
)

func TestCleanDelivered(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		for _, cmd := range []parser.Command{retr, parser.NewCommand("TOP", "1", "10")} {
			t.Run(network+"/"+cmd.Verb, func(t *testing.T) {
				fc := startFake(t, network, modeScan)
				h := newHarness(t, Config{Address: fc.addr})
				be := newBackend(strings.NewReader(wire(cleanMsg)))
				resp := parser.OK("120 octets")
				r := h.run(t, cmd, resp, be)
				if r.err != nil || r.bodyErr != nil {
					t.Fatalf("Serve = %v, body error %v", r.err, r.bodyErr)
				}
				if string(r.body) != cleanMsg {
					t.Errorf("body = %q, want the message unchanged", r.body)
				}
				if r.ex.Response != resp {
					t.Errorf("response = %v, want %v unchanged", r.ex.Response, resp)
				}
				if _, ok := r.ex.Body.(io.Closer); !ok {
					t.Error("spooled Body does not implement io.Closer")
				}
				be.assertDrained(t)
				ev := verdictOf(t, r.ex)
				if !ev.Scanned || ev.Action != ActionDeliver || ev.Err != nil || !ev.Clean || ev.Virus != "" ||
					ev.Size != int64(len(cleanMsg)) {
					t.Errorf("verdict = %+v", ev)
				}
				if rec := fc.scans()[0]; rec.sum != sha256.Sum256([]byte(cleanMsg)) || rec.bytes != ev.Size {
					t.Errorf("clamd did not receive the decoded message: %+v", rec)
				}
			})
		}
	}
}

func TestAddHeader(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	h := newHarness(t, Config{Address: fc.addr, AddHeader: true})
	r := h.run(t, retr, parser.OK("120 octets"), newBackend(strings.NewReader(wire(cleanMsg))))
	if r.err != nil || string(r.body) != ScannedHeader+cleanMsg {
		t.Fatalf("Serve = %v, body = %q", r.err, r.body)
	}
	if want := parser.OK("154 octets"); r.ex.Response != want {
		t.Errorf("response = %v, want %v", r.ex.Response, want)
	}
}

func TestInfected(t *testing.T) {
	t.Run("replace", func(t *testing.T) {
		fc := startFake(t, "tcp", modeScan)
		h := newHarness(t, Config{Address: fc.addr})
		be := newBackend(strings.NewReader(wire(infectedMsg)))
		r := h.run(t, retr, parser.OK("200 octets"), be)
		if r.err != nil || r.bodyErr != nil {
			t.Fatalf("Serve = %v, body error %v", r.err, r.bodyErr)
		}
		be.assertDrained(t)
		if bytes.Contains(r.body, []byte(testMarker)) {
			t.Fatal("the infected content reached the client")
		}
		checkNotice(t, r.body, testVirus)
		if want := parser.OK(strconv.Itoa(len(r.body)) + " octets"); r.ex.Response != want {
			t.Errorf("response = %v, want %v", r.ex.Response, want)
		}
		ev := verdictOf(t, r.ex)
		if ev.Action != ActionReplace || ev.Err != nil || ev.Clean || ev.Virus != testVirus {
			t.Errorf("verdict = %+v", ev)
		}
		if !strings.Contains(h.logs.String(), "[INFO]  virus found") {
			t.Errorf("no Info log for the virus:\n%s", h.logs)
		}
	})
	t.Run("reject", func(t *testing.T) {
		fc := startFake(t, "unix", modeScan)
		h := newHarness(t, Config{Address: fc.addr, OnInfected: "reject"})
		be := newBackend(strings.NewReader(wire(infectedMsg)))
		r := h.run(t, retr, parser.OK(""), be)
		if r.err != nil || r.ex.Body != nil {
			t.Fatalf("Serve = %v, Body = %v", r.err, r.ex.Body)
		}
		if want := "-ERR [SYS/PERM] message rejected by virus scanner"; r.ex.Response.String() != want {
			t.Errorf("response = %q, want %q", r.ex.Response, want)
		}
		be.assertDrained(t)
		if ev := verdictOf(t, r.ex); ev.Action != ActionReject || ev.Virus != testVirus {
			t.Errorf("verdict = %+v", ev)
		}
	})
}

// unavailable is the response for a message that could not be scanned.
const unavailable = "-ERR [SYS/TEMP] virus scanner unavailable, try again later"

func TestScannerFailures(t *testing.T) {
	closedAddr := func(t *testing.T) string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln.Close()
		return "tcp://" + ln.Addr().String()
	}
	bigMsg := testHeader + "\r\n" + strings.Repeat("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n", 32<<10)
	for _, tc := range []struct {
		name    string
		address func(t *testing.T) string
		msg     string
		timeout time.Duration
		is      error // the event's error, if it should match
	}{
		{"error-reply", func(t *testing.T) string { return startFake(t, "tcp", modeError).addr }, cleanMsg, 0, nil},
		{"size-limit-mid-stream", func(t *testing.T) string { return startFake(t, "tcp", modeSizeLimit).addr }, bigMsg, 0, ErrSizeLimit},
		{"silent-past-timeout", func(t *testing.T) string { return startFake(t, "unix", modeSilent).addr }, cleanMsg, 200 * time.Millisecond, os.ErrDeadlineExceeded},
		{"stalled", func(t *testing.T) string { return startFake(t, "tcp", modeStall).addr }, bigMsg, 200 * time.Millisecond, os.ErrDeadlineExceeded},
		{"unreachable-tcp", closedAddr, cleanMsg, 0, nil},
		{"unreachable-unix", func(t *testing.T) string { return "unix://" + t.TempDir() + "/absent.sock" }, cleanMsg, 0, os.ErrNotExist},
	} {
		for _, onError := range []string{"reject", "pass"} {
			t.Run(tc.name+"/"+onError, func(t *testing.T) {
				h := newHarness(t, Config{Address: tc.address(t), OnError: onError, Timeout: tc.timeout})
				be := newBackend(strings.NewReader(wire(tc.msg)))
				start := time.Now()
				r := h.run(t, retr, parser.OK(""), be)
				if r.err != nil {
					t.Fatalf("Serve = %v; a scanner failure must not end the session", r.err)
				}
				if d := time.Since(start); d > 10*time.Second {
					t.Errorf("exchange took %v", d)
				}
				ev := verdictOf(t, r.ex)
				if ev.Err == nil || tc.is != nil && !errors.Is(ev.Err, tc.is) {
					t.Errorf("verdict error = %v, want %v", ev.Err, tc.is)
				}
				if onError == "reject" {
					be.assertDrained(t)
					if r.ex.Response.String() != unavailable || r.ex.Body != nil {
						t.Errorf("response = %q, Body %v; want %q", r.ex.Response, r.ex.Body, unavailable)
					}
					if ev.Action != ActionTempFail {
						t.Errorf("action = %v", ev.Action)
					}
					return
				}
				if r.bodyErr != nil || string(r.body) != tc.msg {
					t.Errorf("body differs from the original (%d octets, %v)", len(r.body), r.bodyErr)
				}
				be.assertDrained(t)
				if ev.Action != ActionPass {
					t.Errorf("action = %v", ev.Action)
				}
				if !strings.Contains(h.logs.String(), "[WARN]  message not scanned") {
					t.Errorf("no warning logged:\n%s", h.logs)
				}
			})
		}
	}
}

func TestOverMaxSize(t *testing.T) {
	msg := testHeader + "\r\n" + strings.Repeat(".dotted line of text, stuffed on the wire\r\n", 1000)
	t.Run("reject", func(t *testing.T) {
		fc := startFake(t, "tcp", modeScan)
		h := newHarness(t, Config{Address: fc.addr, MaxSize: 4096})
		be := newBackend(strings.NewReader(wire(msg)))
		r := h.run(t, retr, parser.OK(""), be)
		if r.err != nil || r.ex.Response.String() != unavailable || r.ex.Body != nil {
			t.Fatalf("Serve = %v, response %q", r.err, r.ex.Response)
		}
		be.assertDrained(t)
		ev := verdictOf(t, r.ex)
		if !errors.Is(ev.Err, ErrTooBig) || ev.Scanned || ev.Action != ActionTempFail || ev.Size != int64(len(msg)) {
			t.Errorf("verdict = %+v", ev)
		}
		// audit tells a skip for size by this method, without
		// importing clamav.
		var o interface{ Oversize() bool }
		if !errors.As(ev.Err, &o) || !o.Oversize() {
			t.Errorf("verdict error %v has no Oversize method", ev.Err)
		}
		if recs := fc.waitScans(t, 1); len(recs) != 1 || recs[0].ended || recs[0].bytes > 4096 {
			t.Errorf("clamd records = %+v, want one aborted stream of at most 4096 octets", recs)
		}
	})
	t.Run("pass", func(t *testing.T) {
		fc := startFake(t, "unix", modeScan)
		h := newHarness(t, Config{Address: fc.addr, MaxSize: 4096, OnError: "pass", SpoolMemory: 1000})
		// Small reads: the body is cut into many, so the rest of it
		// comes straight from the backend after the spooled prefix.
		be := newBackendSize(strings.NewReader(wire(msg)), 512)
		r := h.run(t, retr, parser.OK(""), be)
		if r.err != nil || r.bodyErr != nil {
			t.Fatalf("Serve = %v, body error %v", r.err, r.bodyErr)
		}
		if string(r.body) != msg {
			t.Fatalf("body differs: %d octets, want %d", len(r.body), len(msg))
		}
		be.assertDrained(t)
		ev := verdictOf(t, r.ex)
		if !errors.Is(ev.Err, ErrTooBig) || ev.Action != ActionPass || ev.Size <= 4096 || ev.Size >= int64(len(msg)) {
			t.Errorf("verdict = %+v", ev)
		}
	})
	t.Run("pass-truncated", func(t *testing.T) {
		fc := startFake(t, "tcp", modeScan)
		h := newHarness(t, Config{Address: fc.addr, MaxSize: 4096, OnError: "pass"})
		w := wire(msg)
		be := newBackendSize(strings.NewReader(w[:len(w)-len(".\r\n"+afterBody+"\r\n")-10]), 512)
		r := h.run(t, retr, parser.OK(""), be)
		if r.err != nil {
			t.Fatalf("Serve = %v", r.err)
		}
		if !errors.Is(r.bodyErr, io.ErrUnexpectedEOF) {
			t.Fatalf("reading the passed body: %v, want io.ErrUnexpectedEOF", r.bodyErr)
		}
	})
}

func TestTruncatedBody(t *testing.T) {
	for _, mode := range []fakeMode{modeScan, modeError} {
		for _, onError := range []string{"reject", "pass"} {
			fc := startFake(t, "tcp", mode)
			h := newHarness(t, Config{Address: fc.addr, OnError: onError, SpoolMemory: 100})
			w := wire(cleanMsg)
			be := newBackend(strings.NewReader(w[:len(w)-len(".\r\n"+afterBody+"\r\n")]))
			r := h.run(t, retr, parser.OK(""), be)
			if !errors.Is(r.err, io.ErrUnexpectedEOF) {
				t.Errorf("mode %d, on_error %s: Serve = %v, want io.ErrUnexpectedEOF", mode, onError, r.err)
			}
			if r.ex.Body != nil {
				t.Errorf("mode %d, on_error %s: a Body was left for a truncated message", mode, onError)
			}
			if r.ex.Verdict != nil {
				t.Errorf("verdict reported for a truncated message: %+v", r.ex.Verdict)
			}
		}
	}
}

func TestSpoolFailure(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	for _, onError := range []string{"reject", "pass"} {
		h := newHarness(t, Config{Address: fc.addr, OnError: onError, SpoolMemory: 16,
			SpoolDir: t.TempDir() + "/absent"})
		be := newBackend(strings.NewReader(wire(cleanMsg)))
		r := h.run(t, retr, parser.OK(""), be)
		if r.err != nil || r.ex.Response.String() != unavailable || r.ex.Body != nil {
			t.Fatalf("on_error %s: Serve = %v, response %q", onError, r.err, r.ex.Response)
		}
		be.assertDrained(t)
		if ev := verdictOf(t, r.ex); !errors.Is(ev.Err, os.ErrNotExist) || ev.Action != ActionTempFail {
			t.Errorf("on_error %s: event = %+v", onError, ev)
		}
		if !strings.Contains(h.logs.String(), "[ERROR] cannot spool message") {
			t.Errorf("on_error %s: no error logged:\n%s", onError, h.logs)
		}
	}
}

func TestOtherCommandsPassThrough(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	h := newHarness(t, Config{Address: fc.addr})
	list := "1 120\r\n2 200\r\n"
	be := newBackend(strings.NewReader(wire(list)))
	r := h.run(t, parser.NewCommand("LIST"), parser.OK("2 messages"), be)
	if r.err != nil || string(r.body) != list {
		t.Fatalf("LIST: Serve = %v, body %q", r.err, r.body)
	}
	if _, ok := r.ex.Body.(io.Closer); ok {
		t.Error("LIST body was replaced")
	}
	// -ERR answers to RETR carry no body and are left alone.
	r = h.run(t, retr, parser.Err("", "no such message"), newBackend(strings.NewReader("")))
	if r.err != nil || r.ex.Response.String() != "-ERR no such message" || r.ex.Body != nil {
		t.Fatalf("RETR -ERR: Serve = %v, response %q", r.err, r.ex.Response)
	}
	if n := len(fc.scans()); n != 0 {
		t.Errorf("clamd saw %d scans, want none", n)
	}
	if r.ex.Verdict != nil {
		t.Errorf("verdict on an unscanned answer: %+v", r.ex.Verdict)
	}
}

func TestSpoolRemovedAfterExchange(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	dir := t.TempDir()
	h := newHarness(t, Config{Address: fc.addr, SpoolDir: dir, SpoolMemory: 10})
	msg := cleanMsg + strings.Repeat("more\r\n", 1000)
	ex, err := h.serve(retr, parser.OK(""), newBackend(strings.NewReader(wire(msg))))
	if err != nil {
		t.Fatal(err)
	}
	// The session goes away without reading: Close releases the spool.
	c := ex.Body.(io.Closer)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := ex.Body.Read(make([]byte, 10)); err == nil {
		t.Error("Body readable after Close")
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 {
		t.Errorf("spool dir not empty: %v", des)
	}
}

func TestNewValidates(t *testing.T) {
	for _, cfg := range []Config{
		{Address: "127.0.0.1:3310"},
		{Address: "tcp://127.0.0.1:3310", OnInfected: "drop"},
		{Address: "tcp://127.0.0.1:3310", OnError: "ignore"},
		{Address: "tcp://127.0.0.1:3310", MaxSize: -1},
		{Address: "tcp://127.0.0.1:3310", Timeout: -time.Second},
	} {
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
	f, err := New(Config{Address: "unix:///run/clamav/clamd.ctl"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := f.Config()
	if got.OnInfected != "replace" || got.OnError != "reject" || got.MaxSize != DefaultMaxSize ||
		got.Timeout != DefaultScanTimeout || got.SpoolMemory != DefaultSpoolMemory || got.AddHeader {
		t.Errorf("defaults = %+v", got)
	}
	if f.Name() != "clamav" {
		t.Errorf("Name = %q", f.Name())
	}
}

// closeTracker is a backend body that records its Close.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

// TestBackendBodyClosed checks that the filter closes the body it
// replaces (filters.ResponseFilter): at once when it read it whole, and
// with the delivered body when that reads on from it (on_error "pass" past
// max_size).
func TestBackendBodyClosed(t *testing.T) {
	big := testHeader + "\r\n" + strings.Repeat("a line of text\r\n", 1000)
	for _, tc := range []struct {
		name, msg string
		cfg       Config
		atOnce    bool // closed before the client reads
	}{
		{"clean", cleanMsg, Config{}, true},
		{"replaced", infectedMsg, Config{}, true},
		{"rejected", infectedMsg, Config{OnInfected: "reject"}, true},
		{"passed-rest", big, Config{MaxSize: 4096, OnError: "pass"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := startFake(t, "tcp", modeScan)
			tc.cfg.Address = fc.addr
			h := newHarness(t, tc.cfg)
			be := newBackendSize(strings.NewReader(wire(tc.msg)), 512)
			ex := filtertest.Exchange(&filters.Session{ID: "test"}, retr)
			n, err := h.chain.Command(t.Context(), ex)
			if err != nil {
				t.Fatal(err)
			}
			src := &closeTracker{Reader: be.pr.DotReader()}
			ex.Response, ex.Body = parser.OK(""), src
			if err := h.chain.Response(t.Context(), ex, n); err != nil {
				t.Fatal(err)
			}
			if src.closed != tc.atOnce {
				t.Errorf("backend body closed = %v before the client read, want %v", src.closed, tc.atOnce)
			}
			if ex.Body != nil {
				got, err := io.ReadAll(ex.Body)
				if err != nil || tc.name == "passed-rest" && string(got) != tc.msg {
					t.Errorf("body: %d octets, %v", len(got), err)
				}
				if c, ok := ex.Body.(io.Closer); ok {
					c.Close()
				}
			}
			if !src.closed {
				t.Error("backend body never closed")
			}
		})
	}
}
