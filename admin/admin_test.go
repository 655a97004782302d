package admin

import (
	"context"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/proxy"
)

// fakeProxy records what the admin interface asked of it.
type fakeProxy struct {
	mu       sync.Mutex
	sessions []proxy.SessionInfo
	kicked   []proxy.Match
	blocks   []proxy.Block
}

func (f *fakeProxy) Snapshot() []proxy.SessionInfo { return f.sessions }
func (f *fakeProxy) Kick(m proxy.Match) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.kicked = append(f.kicked, m)
	n := 0
	for _, si := range f.sessions {
		if m.Matches(si) {
			n++
		}
	}
	return n
}
func (f *fakeProxy) Block(b proxy.Block) { f.mu.Lock(); f.blocks = append(f.blocks, b); f.mu.Unlock() }
func (f *fakeProxy) Blocks() []proxy.Block {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proxy.Block(nil), f.blocks...)
}

func start(t *testing.T, p Proxy, rec Recorder) (*Server, string) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), SocketName)
	s, err := Start(Options{Socket: sock, Address: "127.0.0.1:0", Token: "s3cret"}, p, rec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, sock
}

func TestSocketListsAndKicks(t *testing.T) {
	fp := &fakeProxy{sessions: []proxy.SessionInfo{
		{ID: "a-1", User: "alice", BackendUser: "alice@x", Backend: "b1", Client: netip.MustParseAddrPort("192.0.2.1:1000")},
		{ID: "a-2", User: "bob", Backend: "b2", Client: netip.MustParseAddrPort("198.51.100.1:1000")},
	}}
	var recs []audit.AdminAction
	_, sock := start(t, fp, func(a audit.AdminAction) { recs = append(recs, a) })
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %o, want 600", fi.Mode().Perm())
	}
	c, err := NewClient([]string{filepath.Join(t.TempDir(), "absent.sock"), sock}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	got, err := c.Sessions(ctx, proxy.Match{Backend: "b2"})
	if err != nil || len(got) != 1 || got[0].ID != "a-2" {
		t.Fatalf("Sessions(backend b2) = %+v, %v", got, err)
	}
	m, _ := ParseMatch("", "192.0.2.0/24", "")
	if got, err = c.Sessions(ctx, m); err != nil || len(got) != 1 || got[0].ID != "a-1" {
		t.Fatalf("Sessions(addr) = %+v, %v", got, err)
	}
	res, err := c.Kick(ctx, KickRequest{ID: "a-1", Block: "1h"})
	if err != nil || res.Kicked != 1 || len(res.Blocks) != 1 || res.Blocks[0].User != "alice@x" {
		t.Fatalf("Kick = %+v, %v", res, err)
	}
	if len(recs) != 2 || recs[0].Action != "block" || recs[1].Action != "kick" || recs[1].Via != "unix" || recs[1].Sessions != 1 {
		t.Fatalf("audit records = %+v", recs)
	}
	if _, err := c.Kick(ctx, KickRequest{User: "x", Addr: "192.0.2.1"}); err == nil {
		t.Fatal("a kick with two selectors was accepted")
	}
	if _, err := c.Kick(ctx, KickRequest{User: "x", Block: "forever"}); err == nil {
		t.Fatal("a bad block duration was accepted")
	}
}

func TestTCPNeedsToken(t *testing.T) {
	s, _ := start(t, &fakeProxy{}, nil)
	url := "http://" + s.Addr().String() + "/v1/sessions"
	for _, tc := range []struct {
		auth string
		want int
	}{
		{"", http.StatusUnauthorized},
		{"Bearer wrong", http.StatusUnauthorized},
		{"Bearer s3cre", http.StatusUnauthorized},
		{"s3cret", http.StatusUnauthorized},
		{"Bearer s3cret", http.StatusOK},
	} {
		req, _ := http.NewRequest("GET", url, nil)
		if tc.auth != "" {
			req.Header.Set("Authorization", tc.auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("Authorization %q: status %d, want %d", tc.auth, resp.StatusCode, tc.want)
		}
	}
}

func TestStaleSocketReplacedLiveOneNot(t *testing.T) {
	_, sock := start(t, &fakeProxy{}, nil)
	if _, err := Start(Options{Socket: sock}, &fakeProxy{}, nil, nil); err == nil {
		t.Fatal("a second server took over a live socket")
	}
	dir := t.TempDir()
	stale := filepath.Join(dir, SocketName)
	s1, err := Start(Options{Socket: stale}, &fakeProxy{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Simulate a crash: the file stays, nobody listens.
	s1.lns[0].(interface{ SetUnlinkOnClose(bool) }).SetUnlinkOnClose(false)
	s1.Close()
	s2, err := Start(Options{Socket: stale}, &fakeProxy{}, nil, nil)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	s2.Close()
}
