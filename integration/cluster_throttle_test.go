//go:build integration

package integration

// Two popgate instances sharing one private Redis: failed logins through
// one instance slow down the next guess through the other, and
// max_sessions_per_user counts the sessions of both.

import (
	"strings"
	"testing"
	"time"
)

func TestClusterThrottleAcrossInstances(t *testing.T) {
	r := startRedis(t)
	fake := fakePOP3(t)
	a := clusterStart(t, "pg-a", r, fake, "")
	b := clusterStart(t, "pg-b", r, fake, "")
	const user = "cluster-guess"
	// Through A: the first failure waits 0.5 s, the second 1 s.
	first := failLogin(t, a.Addr, user)
	failLogin(t, a.Addr, user)
	if n := r.Cli("GET", "popgate:fail:user:"+user); n != "2" {
		t.Fatalf("Redis counts %q failures for %s after two through A, want 2", n, user)
	}
	// Through B: the third failure in a row waits 2 s, because B starts
	// from A's count. On its own B would wait 0.5 s, as A did first.
	third := failLogin(t, b.Addr, user)
	if third-first < 1200*time.Millisecond {
		t.Fatalf("B answered the third failure after %v, the first through A after %v: B's delay does not reflect A's failures", third, first)
	}
	if n := r.Cli("GET", "popgate:fail:user:"+user); n != "3" {
		t.Fatalf("Redis counts %q failures after the one through B, want 3", n)
	}
	if ttl := r.Cli("PTTL", "popgate:fail:user:"+user); strings.HasPrefix(ttl, "-") {
		t.Fatalf("the failure counter has no expiry (PTTL %s)", ttl)
	}
	// A successful login forgets the user's failures across the cluster.
	okLogin(t, b.Addr, user, fakePassword)
	if n := r.Cli("EXISTS", "popgate:fail:user:"+user); n != "0" {
		t.Fatalf("a successful login left the user's failure counter (EXISTS %s)", n)
	}
	if third < 1900*time.Millisecond {
		t.Fatalf("the third failure in a row waited %v, want the doubling delay's 2s", third)
	}
}

func TestClusterMaxSessionsPerUser(t *testing.T) {
	r := startRedis(t)
	limits := "limits {\n  max_sessions_per_user = 1\n}\n"
	// A backend of the test's own: Dovecot, shared with every other
	// test, may itself refuse a user's extra sessions.
	fake := fakePOP3(t)
	a := clusterStart(t, "pg-a", r, fake, limits)
	b := clusterStart(t, "pg-b", r, fake, limits)
	held := dialPOP(t, a.Addr)
	if err := held.Login("bob", fakePassword); err != nil {
		t.Fatalf("first session: %v", err)
	}
	if n := r.Cli("ZCARD", "popgate:sessions:bob"); n != "1" {
		t.Fatalf("%s session leases for bob in Redis, want 1", n)
	}
	c := dialPOP(t, b.Addr)
	if _, err := c.Cmd("USER bob"); err != nil {
		t.Fatal(err)
	}
	_, err := c.Cmd("PASS " + fakePassword)
	if err == nil || !strings.HasPrefix(err.Error(), "server said: -ERR [IN-USE]") {
		t.Fatalf("a second session of bob through B: %v, want -ERR [IN-USE]", err)
	}
	if _, err := held.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for r.Cli("ZCARD", "popgate:sessions:bob") != "0" {
		if time.Now().After(deadline) {
			t.Fatal("the lease of a session that ended was not released")
		}
		time.Sleep(20 * time.Millisecond)
	}
	okLogin(t, b.Addr, "bob", fakePassword)
}
