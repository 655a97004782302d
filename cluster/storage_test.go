package cluster

import (
	"errors"
	"io/fs"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

func TestStorageConformance(t *testing.T) {
	r := startRedis(t)
	s := NewStorage(newTestClient(t, r, "a"))
	if _, err := s.Load(bg, "certificates/x/x.crt"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v, want fs.ErrNotExist", err)
	}
	files := map[string]string{
		"certificates/ca/example.com/example.com.crt": "CERT",
		"certificates/ca/example.com/example.com.key": "KEY",
		"certificates/ca/other.org/other.org.crt":     "CERT2",
		"acme/ca/users/a@b/a.json":                    "{}",
	}
	before := time.Now().Add(-time.Second)
	for k, v := range files {
		if err := s.Store(bg, k, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range files {
		got, err := s.Load(bg, k)
		if err != nil || string(got) != v {
			t.Fatalf("Load(%q) = %q, %v; want %q", k, got, err, v)
		}
	}
	if err := s.Store(bg, "acme/ca/users/a@b/a.json", []byte(`{"v":2}`)); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Load(bg, "acme/ca/users/a@b/a.json"); string(got) != `{"v":2}` {
		t.Fatalf("Store did not overwrite: %q", got)
	}
	ki, err := s.Stat(bg, "certificates/ca/example.com/example.com.key")
	if err != nil || !ki.IsTerminal || ki.Size != 3 || ki.Modified.Before(before) {
		t.Fatalf("Stat of a file = %+v, %v", ki, err)
	}
	if ki, err := s.Stat(bg, "certificates/ca"); err != nil || ki.IsTerminal {
		t.Fatalf("Stat of a directory = %+v, %v; want a non-terminal key", ki, err)
	}
	if _, err := s.Stat(bg, "certificates/c"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Stat of a mere name prefix: %v, want fs.ErrNotExist", err)
	}
	if !s.Exists(bg, "certificates") || s.Exists(bg, "nothing") {
		t.Fatal("Exists is wrong for a directory or a missing key")
	}
	got, err := s.List(bg, "certificates/ca", false)
	slices.Sort(got)
	if err != nil || !slices.Equal(got, []string{"certificates/ca/example.com", "certificates/ca/other.org"}) {
		t.Fatalf("List non-recursive = %q, %v", got, err)
	}
	got, _ = s.List(bg, "certificates", true)
	for _, want := range []string{"certificates/ca", "certificates/ca/example.com", "certificates/ca/example.com/example.com.crt", "certificates/ca/other.org/other.org.crt"} {
		if !slices.Contains(got, want) {
			t.Fatalf("List recursive = %q, lacks %q", got, want)
		}
	}
	if _, err := s.List(bg, "nothing", true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("List of a missing directory: %v, want fs.ErrNotExist", err)
	}
	if err := s.Delete(bg, "certificates/ca/example.com"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(bg, "certificates/ca/example.com/example.com.crt") || !s.Exists(bg, "certificates/ca/other.org/other.org.crt") {
		t.Fatal("Delete of a directory removed the wrong keys")
	}
	if err := s.Delete(bg, "no/such/key"); err != nil {
		t.Fatalf("Delete of a missing key: %v, want nil", err)
	}
	// A second instance sees the same keys.
	s2 := NewStorage(newTestClient(t, r, "b"))
	if v, err := s2.Load(bg, "certificates/ca/other.org/other.org.crt"); err != nil || string(v) != "CERT2" {
		t.Fatalf("another instance loads %q, %v", v, err)
	}
}

func TestStorageLockExclusion(t *testing.T) {
	r := startRedis(t)
	a := NewStorage(newTestClient(t, r, "a"))
	b := NewStorage(newTestClient(t, r, "b"))
	if err := a.Lock(bg, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.TryLock(bg, "issue_cert_example.com"); ok || err != nil {
		t.Fatalf("TryLock of a held lock = %v, %v; want false", ok, err)
	}
	if err := b.Unlock(bg, "issue_cert_example.com"); err == nil {
		t.Fatal("Unlock by an instance that does not hold the lock succeeded")
	}
	var got atomic.Bool
	done := make(chan error, 1)
	go func() {
		err := b.Lock(bg, "issue_cert_example.com")
		got.Store(true)
		done <- err
	}()
	// b must still be waiting: a's lock is held and renewed.
	select {
	case err := <-done:
		t.Fatalf("b took a held lock: %v", err)
	case <-time.After(2 * lockPoll):
	}
	if err := a.Unlock(bg, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b did not get the lock after a released it")
	}
	if err := b.Unlock(bg, "issue_cert_example.com"); err != nil {
		t.Fatal(err)
	}
}

func TestStorageLockLeaseRenewedAndExpiresAfterCrash(t *testing.T) {
	r := startRedis(t)
	a := NewStorage(newTestClient(t, r, "a"))
	b := NewStorage(newTestClient(t, r, "b"))
	a.LockTTL, b.LockTTL = 600*time.Millisecond, 600*time.Millisecond
	if ok, err := a.TryLock(bg, "renew"); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	// Held well past its TTL while the holder lives: renewed.
	time.Sleep(3 * a.LockTTL)
	if ok, _ := b.TryLock(bg, "renew"); ok {
		t.Fatal("a live holder's lock expired")
	}
	// The holder "crashes": it stops renewing and never unlocks.
	a.abandon()
	start := time.Now()
	if err := b.Lock(bg, "renew"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > a.LockTTL+2*lockPoll {
		t.Fatalf("the crashed holder's lock took %v to expire, TTL %v", d, a.LockTTL)
	}
	// The crashed instance's late unlock must not release b's lock.
	if err := a.Unlock(bg, "renew"); err == nil {
		t.Fatal("the old holder's unlock succeeded")
	}
	if ok, _ := a.TryLock(bg, "renew"); ok {
		t.Fatal("the lock was free while b holds it")
	}
}

func TestStorageUnlockChecksToken(t *testing.T) {
	r := startRedis(t)
	a := NewStorage(newTestClient(t, r, "a"))
	b := NewStorage(newTestClient(t, r, "b"))
	a.LockTTL = 300 * time.Millisecond
	if ok, err := a.TryLock(bg, "paused"); !ok || err != nil {
		t.Fatalf("TryLock = %v, %v", ok, err)
	}
	// a pauses (a long GC, a frozen VM): its lease runs out while it
	// still believes it holds the lock, and b takes the lock over.
	a.locks.mu.Lock()
	h := a.locks.held["paused"]
	a.locks.mu.Unlock()
	h.end()
	if err := b.Lock(bg, "paused"); err != nil {
		t.Fatal(err)
	}
	// a wakes up and unlocks: the script sees another token and refuses.
	if err := a.Unlock(bg, "paused"); !errors.Is(err, errLockNotHeld) {
		t.Fatalf("a stale holder's Unlock = %v, want errLockNotHeld", err)
	}
	if ok, _ := a.TryLock(bg, "paused"); ok {
		t.Fatal("a stale holder's Unlock released the new holder's lock")
	}
	if err := b.Unlock(bg, "paused"); err != nil {
		t.Fatal(err)
	}
}
