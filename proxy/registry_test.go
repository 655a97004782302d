package proxy

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// A logged-in session shows up in the snapshot with who it is and where
// it goes; Kick closes it without QUIT to the backend.
func TestSnapshotAndKick(t *testing.T) {
	be := newFakeBackend(t, "Subject: x\r\n\r\nhello\r\n")
	srv, addr := startProxy(t, be.addr(), nil)
	c := dialClient(t, addr)
	c.login()
	c.send("STAT\r\n")
	c.expect("+OK 1")

	snap := srv.Snapshot()
	if len(snap) != 1 {
		t.Fatalf("snapshot has %d sessions, want 1", len(snap))
	}
	si := snap[0]
	if si.User != "a" || si.BackendUser != "a" || si.Backend != "b" || si.BackendAddr != be.addr() ||
		si.State != "TRANSACTION" || si.Listener != "test" || si.Command != "" || si.TLS != "" {
		t.Fatalf("snapshot = %+v", si)
	}
	if si.BytesIn == 0 || si.BytesOut == 0 || !si.Client.Addr().IsLoopback() {
		t.Fatalf("snapshot counters or address wrong: %+v", si)
	}

	if n := srv.Kick(Match{User: "nobody"}); n != 0 {
		t.Fatalf("Kick(nobody) = %d", n)
	}
	if n := srv.Kick(Match{}); n != 0 {
		t.Fatalf("Kick(zero match) = %d", n)
	}
	if n := srv.Kick(Match{User: "A", Addr: netip.MustParsePrefix("127.0.0.0/8")}); n != 1 {
		t.Fatalf("Kick(a) = %d, want 1", n)
	}
	if end := be.waitEnd(); end != "closed" {
		t.Fatalf("backend connection ended by %q, want closed without QUIT", end)
	}
	if _, err := c.r.ReadString('\n'); err == nil {
		t.Fatal("client connection still open after kick")
	}
}

func TestMatch(t *testing.T) {
	si := SessionInfo{ID: "x-1", User: "Alice", BackendUser: "alice@example.org", Backend: "b", BackendAddr: "10.0.0.1:110",
		Client: netip.MustParseAddrPort("192.0.2.7:4000")}
	for _, tc := range []struct {
		m    Match
		want bool
	}{
		{Match{}, true},
		{Match{ID: "x-1"}, true},
		{Match{ID: "x-2"}, false},
		{Match{User: "alice"}, true},
		{Match{User: "ALICE@example.org"}, true},
		{Match{User: "bob"}, false},
		{Match{Addr: netip.MustParsePrefix("192.0.2.0/24")}, true},
		{Match{Addr: netip.MustParsePrefix("192.0.2.8/32")}, false},
		{Match{Backend: "10.0.0.1:110"}, true},
		{Match{Backend: "b", User: "bob"}, false},
	} {
		if got := tc.m.Matches(si); got != tc.want {
			t.Errorf("%+v.Matches = %v, want %v", tc.m, got, tc.want)
		}
	}
}

// A blocked user is refused like a wrong password before the backend sees
// the password; a blocked address cannot connect; an expired block is
// forgotten.
func TestBlock(t *testing.T) {
	be := newFakeBackend(t)
	srv, addr := startProxy(t, be.addr(), nil)

	srv.Block(Block{User: "A", Until: time.Now().Add(time.Hour)})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER a\r\n")
	c.expect("+OK")
	c.send("PASS secret\r\n")
	c.expect("-ERR [AUTH] authentication failed")
	for _, l := range be.received() {
		if strings.HasPrefix(l, "PASS") {
			t.Fatalf("backend received %q from a blocked user", l)
		}
	}
	if got := srv.Blocks(); len(got) != 1 || got[0].User != "a" {
		t.Fatalf("Blocks() = %+v", got)
	}

	srv.Block(Block{User: "a", Until: time.Now().Add(-time.Second)}) // expired: lifted
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	if got := srv.Blocks(); len(got) != 0 {
		t.Fatalf("Blocks() after expiry = %+v", got)
	}

	srv.Block(Block{Addr: netip.MustParsePrefix("127.0.0.1/32"), Until: time.Now().Add(time.Hour)})
	c2 := dialClient(t, addr)
	c2.expect("-ERR [SYS/PERM]")
}
