package clamav

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// mailbox is a test backend of two messages, 1 infected and 2 clean, that
// records the commands it receives.
type mailbox struct {
	mu   sync.Mutex
	seen []string
}

func (m *mailbox) handler() filters.Handler {
	return filters.HandlerFunc(func(ctx context.Context, ex *filters.Exchange) error {
		m.mu.Lock()
		m.seen = append(m.seen, ex.Out.String())
		m.mu.Unlock()
		switch ex.Out.Verb {
		case "RETR", "TOP":
			msg := cleanMsg
			if ex.Out.Arg(0) == "1" {
				msg = infectedMsg
			}
			ex.Response = parser.OK("")
			ex.Body = newBackend(strings.NewReader(wire(msg))).pr.DotReader()
		default:
			ex.Response = parser.OK("")
		}
		return nil
	})
}

// commands returns what the backend received, and forgets it.
func (m *mailbox) commands() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := m.seen
	m.seen = nil
	return seen
}

// TestKeepReplaced checks keep_replaced: a DELE of a message the session
// found infected is refused with -ERR and never reaches the backend; other
// DELEs do, after a NOOP that orders them behind every earlier verdict.
// Without keep_replaced a DELE goes straight through.
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
			mb := &mailbox{}
			chain := h.f.Wrap(mb.handler())
			sess := &filters.Session{ID: "keep"}
			serve := func(cmd parser.Command) *filters.Exchange {
				t.Helper()
				ex := &filters.Exchange{Session: sess, Command: cmd, Out: cmd}
				if err := chain.Serve(context.Background(), ex); err != nil {
					t.Fatalf("%s: %v", cmd, err)
				}
				if ex.Body != nil {
					io.Copy(io.Discard, ex.Body)
				}
				return ex
			}
			if got := h.f.Exclusive(parser.NewCommand("DELE", "1"), sess); got != tc.wantRefuse {
				t.Errorf("Exclusive(DELE) = %v, want %v", got, tc.wantRefuse)
			}
			if h.f.Exclusive(parser.NewCommand("RETR", "1"), sess) {
				t.Error("Exclusive(RETR) = true")
			}
			serve(tc.fetch)
			serve(parser.NewCommand("RETR", "2"))
			mb.commands()

			ex := serve(parser.NewCommand("DELE", "1"))
			seen := mb.commands()
			if !tc.wantRefuse {
				if !ex.Response.IsOK() || strings.Join(seen, ",") != "DELE 1" {
					t.Fatalf("DELE 1 = %q, backend saw %q; want +OK and DELE 1 alone", ex.Response, seen)
				}
				return
			}
			if want := "-ERR message 1 was found infected and stays on the server"; ex.Response.String() != want {
				t.Errorf("DELE 1 = %q, want %q", ex.Response, want)
			}
			if strings.Join(seen, ",") != "NOOP" {
				t.Errorf("backend saw %q, want NOOP only", seen)
			}
			if !strings.Contains(h.logs.String(), "DELE refused") {
				t.Errorf("refusal not logged:\n%s", h.logs)
			}
			// The refusal holds for the session, also for "01".
			if ex := serve(parser.NewCommand("DELE", "01")); ex.Response.IsOK() {
				t.Error("DELE 01 of the kept message succeeded")
			}
			mb.commands()
			// A clean message is deleted as usual.
			ex = serve(parser.NewCommand("DELE", "2"))
			if seen := mb.commands(); !ex.Response.IsOK() || strings.Join(seen, ",") != "NOOP,DELE 2" {
				t.Errorf("DELE 2 = %q, backend saw %q; want +OK after NOOP,DELE 2", ex.Response, seen)
			}
			// Another session has its own set.
			other := &filters.Exchange{Session: &filters.Session{ID: "other"}, Command: parser.NewCommand("DELE", "1"), Out: parser.NewCommand("DELE", "1")}
			if err := chain.Serve(context.Background(), other); err != nil || !other.Response.IsOK() {
				t.Errorf("DELE 1 in another session = %q, %v", other.Response, err)
			}
		})
	}
}
