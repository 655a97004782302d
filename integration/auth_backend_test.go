//go:build integration

package integration

// Backend logins: popgate logs in to Dovecot by APOP or SASL PLAIN, seen
// on the wire through a recording relay (authTap).

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// authTap is a TCP relay in front of a backend that records what popgate
// sends to it, so a test can see the backend login on the wire.
type authTap struct {
	Addr string
	mu   sync.Mutex
	sent []byte
}

// authStartTap relays a free loopback port to target until cleanup.
func authStartTap(t *testing.T, target string) *authTap {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tap := &authTap{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				in.Close()
				continue
			}
			conns.Store(in, true)
			conns.Store(out, true)
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(io.MultiWriter(out, tapWriter{tap}), in)
				out.Close()
			}()
			go func() {
				defer wg.Done()
				io.Copy(in, out)
				in.Close()
			}()
		}
	}()
	return tap
}

type tapWriter struct{ tap *authTap }

func (w tapWriter) Write(p []byte) (int, error) {
	w.tap.mu.Lock()
	w.tap.sent = append(w.tap.sent, p...)
	w.tap.mu.Unlock()
	return len(p), nil
}

// Sent returns everything popgate sent through the tap so far.
func (tap *authTap) Sent() string {
	tap.mu.Lock()
	defer tap.mu.Unlock()
	return string(tap.sent)
}

func TestAuthBackendLogin(t *testing.T) {
	apopTap, plainTap := authStartTap(t, envValue(t, "POP3_ADDR")), authStartTap(t, envValue(t, "POP3_ADDR"))
	la, lp := freePort(t), freePort(t)
	r := authStart(t, fmt.Sprintf(`
listener "la" {
  address = %q
  connect = "after-auth"
  backend = "apop"
}
listener "lp" {
  address = %q
  connect = "after-auth"
  backend = "plain"
}
backend "apop" {
  address        = %q
  login          = "apop"
  forward_client = "xclient"
}
backend "plain" {
  address        = %q
  login          = "sasl-plain"
  forward_client = "xclient"
}
`, la, lp, apopTap.Addr, plainTap.Addr), la, lp)
	pw := itPassword(t, "a", "alice")
	plainBlob := base64.StdEncoding.EncodeToString([]byte("\x00alice\x00" + pw))
	r.secret(pw, plainBlob)
	dlog := envValue(t, "DOVECOT_LOG")

	for _, tc := range []struct {
		name, addr, method string
		tap                *authTap
		wire               string // must be on the backend wire
	}{
		{"apop", la, "APOP", apopTap, "\r\nAPOP alice "},
		{"sasl-plain", lp, "PLAIN", plainTap, "\r\nAUTH PLAIN " + plainBlob + "\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ip := authIP()
			w := watchLog(t, dlog)
			c := authDial(t, tc.addr, ip)
			if err := c.Login("alice", pw); err != nil {
				t.Fatal(err)
			}
			if n := authStat(t, c); n != 6 {
				t.Errorf("alice has %d messages, want 6", n)
			}
			w.Wait(t, authLoginLine("alice", tc.method, ip), 10*time.Second)
			sent := tc.tap.Sent()
			if !strings.Contains(sent, "XCLIENT ADDR="+ip+" ") || !strings.Contains(sent, tc.wire) {
				t.Errorf("backend wire lacks XCLIENT and %q:\n%q", tc.wire, sent)
			}
			if strings.Contains(sent, "USER ") || strings.Contains(sent, "PASS ") {
				t.Errorf("backend login %s used USER/PASS:\n%q", tc.name, sent)
			}
			if tc.name == "apop" && strings.Contains(sent, pw) {
				t.Errorf("login = apop sent the password itself to the backend:\n%q", sent)
			}
		})
	}
}
