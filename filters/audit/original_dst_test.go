package audit

import (
	"net"
	"testing"

	"github.com/popgate/popgate/filters"
)

// An intercepted session's records carry the destination the client
// meant to reach as original_dst, next to client, in every record; an
// ordinary session's records have no such field.
func TestOriginalDestinationInEveryRecord(t *testing.T) {
	f, path := newTest(t, true)
	s := testSession("s1")
	s.OriginalDest = &net.TCPAddr{IP: net.ParseIP("203.0.113.25"), Port: 110}
	f.SessionStarted(s)
	plain := testSession("s2")
	f.SessionStarted(plain)
	if _, _, err := run(t, f.with(&backend{answer: mailbox}), s, "NOOP"); err != nil {
		t.Fatal(err)
	}
	f.SessionEnded(s, filters.SessionEnd{Reason: "quit"})

	recs := records(t, path)
	var intercepted int
	for _, r := range recs {
		dst, has := r["original_dst"]
		switch r["session"] {
		case "s1":
			intercepted++
			if dst != "203.0.113.25:110" {
				t.Errorf("%s record of the intercepted session: original_dst = %v, want 203.0.113.25:110", r["event"], dst)
			}
		case "s2":
			if has {
				t.Errorf("%s record of an ordinary session carries original_dst %v", r["event"], dst)
			}
		}
	}
	if intercepted < 3 { // session_start, command, session_end
		t.Fatalf("got %d records of the intercepted session, want at least 3: %v", intercepted, recs)
	}
}
