package clamav

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/parser"
)

// TestSpoolBudget checks the overall spool budget a filter shares: a
// message finds the memory taken and spools to disk; with the disk taken
// too it is not scanned, and follows on_error (never delivered as complete
// under reject); the octets come back when a delivered body is closed.
func TestSpoolBudget(t *testing.T) {
	msg := testHeader + "\r\n" + strings.Repeat("a line of a message of some length\r\n", 200) // 7 KiB or so
	t.Run("memory-then-disk", func(t *testing.T) {
		fc := startFake(t, "tcp", modeScan)
		budget := spool.NewBudget(1024, 1<<20)
		h := newHarness(t, Config{Address: fc.addr, Spool: budget, SpoolMemory: 1 << 20})
		ex, err := h.serve(retr, parser.OK(""), newBackend(strings.NewReader(wire(msg))))
		if err != nil || !ex.Response.IsOK() {
			t.Fatalf("Serve = %v, response %q", err, ex.Response)
		}
		if mem, disk := budget.Used(); mem != 0 || disk != int64(len(msg)) {
			t.Errorf("held body uses %d in memory and %d on disk; want 0 and %d", mem, disk, len(msg))
		}
		body, err := io.ReadAll(ex.Body)
		if err != nil || string(body) != msg {
			t.Fatalf("body = %d octets, %v", len(body), err)
		}
		if mem, disk := budget.Used(); mem != 0 || disk != 0 {
			t.Errorf("after delivery the budget holds %d and %d", mem, disk)
		}
	})
	for _, onError := range []string{"reject", "pass"} {
		t.Run("exhausted/"+onError, func(t *testing.T) {
			fc := startFake(t, "tcp", modeScan)
			budget := spool.NewBudget(1024, 4096)
			h := newHarness(t, Config{Address: fc.addr, OnError: onError, Spool: budget})
			// A first message, delivered but not yet read by the
			// client, holds 3000 octets of the budget's disk.
			first := testHeader + "\r\n" + strings.Repeat("x", 3000-len(testHeader)-4) + "\r\n"
			held, err := h.serve(retr, parser.OK(""), newBackend(strings.NewReader(wire(first))))
			if err != nil || !held.Response.IsOK() {
				t.Fatalf("first: Serve = %v, response %q", err, held.Response)
			}
			defer held.Body.(io.Closer).Close()

			be := newBackend(strings.NewReader(wire(infectedMsg + strings.Repeat("more text\r\n", 300))))
			r := h.run(t, parser.NewCommand("RETR", "2"), parser.OK(""), be)
			if r.err != nil {
				t.Fatalf("Serve = %v", r.err)
			}
			be.assertDrained(t)
			ev := verdictOf(t, r.ex)
			if !errors.Is(ev.Err, spool.ErrBudget) {
				t.Errorf("event error = %v, want spool.ErrBudget", ev.Err)
			}
			if onError == "reject" {
				if r.ex.Response.String() != unavailable || r.ex.Body != nil {
					t.Errorf("response = %q, Body %v; want %q", r.ex.Response, r.ex.Body, unavailable)
				}
				if ev.Action != ActionTempFail {
					t.Errorf("action = %v", ev.Action)
				}
			} else {
				want := infectedMsg + strings.Repeat("more text\r\n", 300)
				if r.bodyErr != nil || string(r.body) != want {
					t.Errorf("body = %d octets (%v), want the %d octets unscanned", len(r.body), r.bodyErr, len(want))
				}
				if ev.Action != ActionPass {
					t.Errorf("action = %v", ev.Action)
				}
			}
			if !strings.Contains(h.logs.String(), "spool budget exhausted") {
				t.Errorf("exhausted budget not logged:\n%s", h.logs)
			}
			if _, disk := budget.Used(); disk != 3000 {
				t.Errorf("budget disk in use = %d, want only the held body's 3000", disk)
			}
		})
	}
}
