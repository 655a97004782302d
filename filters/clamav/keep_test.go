package clamav

import (
	"context"
	"strings"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// mailbox answers like a backend of two messages, 1 infected and 2 clean.
func mailbox(cmd parser.Command) (parser.Response, string) {
	switch cmd.Verb {
	case "RETR", "TOP":
		if cmd.Arg(0) == "1" {
			return parser.OK(""), infectedMsg
		}
		return parser.OK(""), cleanMsg
	}
	return parser.OK(""), ""
}

// sent returns the commands b received, and forgets them.
func sent(b *filtertest.Calls) string {
	var s []string
	for _, c := range b.Sent {
		s = append(s, c.String())
	}
	b.Sent = nil
	return strings.Join(s, ",")
}

// TestKeepReplaced checks keep_replaced: a DELE of a message the session
// found infected is refused with -ERR and never reaches the backend; other
// DELEs do, alone. DELE is exclusive, so that the session lets every
// earlier verdict in before the DELE is decided; no NOOP round trip is
// made any more. Without keep_replaced a DELE goes straight through and
// is not exclusive.
func TestKeepReplaced(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        Config
		fetch      parser.Command
		wantRefuse bool
	}{
		{"replace-retr", Config{KeepReplaced: true}, parser.NewCommand("RETR", "1"), true},
		{"replace-top", Config{KeepReplaced: true}, parser.NewCommand("TOP", "1", "5"), true},
		{"reject", Config{KeepReplaced: true, OnInfected: "reject"}, parser.NewCommand("RETR", "1"), true},
		{"off", Config{}, parser.NewCommand("RETR", "1"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fc := startFake(t, "tcp", modeScan)
			tc.cfg.Address = fc.addr
			h := newHarness(t, tc.cfg)
			mb := &filtertest.Calls{B: mailbox}
			sess := &filters.Session{ID: "keep"}
			serve := func(s *filters.Session, cmd parser.Command) *filters.Exchange {
				t.Helper()
				ex := filtertest.Exchange(s, cmd)
				err := filtertest.Run(context.Background(), h.chain, ex, mb.Answer)
				filtertest.Finish(h.chain, ex, err)
				if err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				return ex
			}
			if got := h.chain.Exclusive(filtertest.Exchange(sess, parser.NewCommand("DELE", "1"))); got != tc.wantRefuse {
				t.Errorf("Exclusive(DELE) = %v, want %v", got, tc.wantRefuse)
			}
			if h.chain.Exclusive(filtertest.Exchange(sess, parser.NewCommand("RETR", "1"))) {
				t.Error("Exclusive(RETR) = true")
			}
			if ex := serve(sess, tc.fetch); ex.Verdict == nil || ex.Verdict.Clean {
				t.Fatalf("%s: verdict %+v, want infected", tc.fetch, ex.Verdict)
			}
			serve(sess, parser.NewCommand("RETR", "2"))
			sent(mb)

			ex := serve(sess, parser.NewCommand("DELE", "1"))
			seen := sent(mb)
			if !tc.wantRefuse {
				if !ex.Response.IsOK() || seen != "DELE 1" {
					t.Fatalf("DELE 1 = %q, backend saw %q; want +OK and DELE 1 alone", ex.Response, seen)
				}
				return
			}
			if want := "-ERR message 1 was found infected and stays on the server"; ex.Response.String() != want {
				t.Errorf("DELE 1 = %q, want %q", ex.Response, want)
			}
			if seen != "" {
				t.Errorf("backend saw %q, want nothing", seen)
			}
			if !strings.Contains(h.logs.String(), "DELE refused") {
				t.Errorf("refusal not logged:\n%s", h.logs)
			}
			// The refusal holds for the session, also for "01".
			if ex := serve(sess, parser.NewCommand("DELE", "01")); ex.Response.IsOK() {
				t.Error("DELE 01 of the kept message succeeded")
			}
			sent(mb)
			// A clean message is deleted as usual.
			ex = serve(sess, parser.NewCommand("DELE", "2"))
			if seen := sent(mb); !ex.Response.IsOK() || seen != "DELE 2" {
				t.Errorf("DELE 2 = %q, backend saw %q; want +OK after DELE 2 alone", ex.Response, seen)
			}
			// Another session has its own set.
			if ex := serve(&filters.Session{ID: "other"}, parser.NewCommand("DELE", "1")); !ex.Response.IsOK() {
				t.Errorf("DELE 1 in another session = %q", ex.Response)
			}
		})
	}
}

// TestKeepReplacedOuterRewrite checks that a DELE an outer filter turned
// into another command is not refused: the filter decides on what the
// backend would receive.
func TestKeepReplacedOuterRewrite(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	h := newHarness(t, Config{Address: fc.addr, KeepReplaced: true})
	mb := &filtertest.Calls{B: mailbox}
	sess := &filters.Session{ID: "keep"}
	ex := filtertest.Exchange(sess, parser.NewCommand("RETR", "1"))
	if err := filtertest.Run(context.Background(), h.chain, ex, mb.Answer); err != nil {
		t.Fatal(err)
	}
	filtertest.Finish(h.chain, ex, nil)
	ex = filtertest.Exchange(sess, parser.NewCommand("DELE", "1"))
	ex.Out = parser.NewCommand("NOOP")
	if err := h.f.Command(context.Background(), ex); err != nil || ex.Response.Status != 0 {
		t.Errorf("DELE 1 sent as NOOP: answered %q, %v; want it passed on", ex.Response, err)
	}
}

// TestKeepReplacedConcurrentSides checks that a session's kept set may be
// read by the Command side of a DELE while the Response side of an earlier
// RETR still scans (go test -race): only DELE is exclusive, and a DELE of
// another message may be read while a RETR is answered.
func TestKeepReplacedConcurrentSides(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	h := newHarness(t, Config{Address: fc.addr, KeepReplaced: true})
	sess := &filters.Session{ID: "keep"}
	done := make(chan error, 1)
	go func() {
		for _, n := range []string{"1", "3", "5"} {
			be := newBackend(strings.NewReader(wire(infectedMsg)))
			ex, err := h.serveCtx(context.Background(), sess, parser.NewCommand("RETR", n), parser.OK(""), be)
			if err != nil {
				done <- err
				return
			}
			filtertest.Finish(h.chain, ex, nil)
		}
		done <- nil
	}()
	for _, n := range []string{"2", "4", "6"} {
		ex := filtertest.Exchange(sess, parser.NewCommand("DELE", n))
		if err := h.f.Command(context.Background(), ex); err != nil || ex.Response.Status != 0 {
			t.Errorf("DELE %s: answered %q, %v", n, ex.Response, err)
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"1", "3", "5"} {
		ex := filtertest.Exchange(sess, parser.NewCommand("DELE", n))
		if h.f.Command(context.Background(), ex); ex.Response.IsOK() || ex.Response.Status == 0 {
			t.Errorf("DELE %s of a kept message: %q", n, ex.Response)
		}
	}
}
