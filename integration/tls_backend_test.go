//go:build integration

package integration

// TLS towards backends: STLS and implicit TLS to Dovecot A, and backends
// that fail TLS (the wrong-name Dovecot C, a fake server without STLS)
// and so never see credentials.

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestTLSBackendDovecot logs in through popgate to Dovecot A over STLS
// and over implicit TLS, verified against DOVECOT_CA for "localhost", and
// checks RETR byte for byte and that Dovecot saw a TLS login.
func TestTLSBackendDovecot(t *testing.T) {
	for _, tc := range []struct{ name, mode, addrKey, connect, user string }{
		{"starttls-on-accept", "starttls", "POP3_ADDR", "on-accept", "load913"},
		{"starttls-after-auth", "starttls", "POP3_ADDR", "after-auth", "load914"},
		{"implicit-on-accept", "implicit", "POP3S_ADDR", "on-accept", "load915"},
		{"implicit-after-auth", "implicit", "POP3S_ADDR", "after-auth", "load916"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := freePort(t)
			cfg := tlsHeader(t) + tlsListener("plain", addr, "none", tc.connect) + fmt.Sprintf(`backend "a" {
  address     = %q
  tls         = %q
  ca_file     = %q
  server_name = "localhost"
}
`, envValue(t, tc.addrKey), tc.mode, envValue(t, "DOVECOT_CA"))
			startPopgate(t, cfg, addr)
			tlsRetrAll(t, dialPOP(t, addr))

			// Dovecot logs ", TLS," for a login over TLS (", secured," for
			// plaintext on loopback). A user of its own keeps the line ours.
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			c := dialPOP(t, addr)
			if err := c.Login(tc.user, itPassword(t, "a", tc.user)); err != nil {
				t.Fatalf("login %s: %v", tc.user, err)
			}
			text := w.Wait(t, "user=<"+tc.user+">", 10*time.Second)
			for _, line := range strings.Split(text, "\n") {
				if strings.Contains(line, "Login: user=<"+tc.user+">") && !strings.Contains(line, ", TLS,") {
					t.Errorf("Dovecot's login line lacks TLS: %s", line)
				}
			}
		})
	}
}

// tlsFakeNoSTLS is a POP3 server that refuses STLS and records every line
// it receives, on every connection.
type tlsFakeNoSTLS struct {
	Addr  string
	mu    sync.Mutex
	lines []string
	conns sync.WaitGroup
}

// tlsStartFakeNoSTLS serves on a loopback port until the test ends.
func tlsStartFakeNoSTLS(t *testing.T) *tlsFakeNoSTLS {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &tlsFakeNoSTLS{Addr: ln.Addr().String()}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.conns.Add(1)
			go f.serve(conn)
		}
	}()
	return f
}

func (f *tlsFakeNoSTLS) serve(conn net.Conn) {
	defer f.conns.Done()
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	fmt.Fprintf(conn, "+OK fake POP3 server without STLS\r\n")
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if line != "" {
			f.mu.Lock()
			f.lines = append(f.lines, line)
			f.mu.Unlock()
		}
		if err != nil {
			return
		}
		switch strings.ToUpper(strings.TrimSpace(line)) {
		case "STLS":
			fmt.Fprintf(conn, "-ERR STLS not supported here\r\n")
		case "QUIT":
			fmt.Fprintf(conn, "+OK bye\r\n")
			return
		default:
			fmt.Fprintf(conn, "+OK\r\n")
		}
	}
}

// Lines waits until popgate has closed every connection and returns what
// they received.
func (f *tlsFakeNoSTLS) Lines(t *testing.T) []string {
	t.Helper()
	done := make(chan struct{})
	go func() { f.conns.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatalf("fake backend: popgate kept a connection open")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.lines...)
}

// TestTLSBackendRefused checks that backends failing TLS get no
// credentials and the client gets -ERR [SYS/TEMP]: Dovecot C with a
// certificate for the wrong name (implicit and STLS), and a fake server
// that answers STLS with -ERR.
func TestTLSBackendRefused(t *testing.T) {
	const user = "tlsprobe" // unknown everywhere: Dovecot would log its name if it ever saw it
	for _, tc := range []struct{ name, mode, addr string }{
		{"wrong-name-implicit", "implicit", envValue(t, "POP3S_WRONG_ADDR")},
		{"wrong-name-starttls", "starttls", envValue(t, "POP3_WRONG_ADDR")},
		{"no-stls", "starttls", ""},
	} {
		for _, connect := range []string{"on-accept", "after-auth"} {
			t.Run(tc.name+"/"+connect, func(t *testing.T) {
				var fake *tlsFakeNoSTLS
				backendAddr := tc.addr
				if backendAddr == "" {
					fake = tlsStartFakeNoSTLS(t)
					backendAddr = fake.Addr
				}
				addr := freePort(t)
				cfg := tlsHeader(t) + tlsListener("plain", addr, "none", connect) + fmt.Sprintf(`backend "a" {
  address     = %q
  tls         = %q
  ca_file     = %q
  server_name = "localhost"
}
`, backendAddr, tc.mode, envValue(t, "DOVECOT_CA"))
				p := startPopgate(t, cfg, addr)
				w := watchLog(t, envValue(t, "DOVECOTC_LOG"))
				conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
				if err != nil {
					t.Fatal(err)
				}
				c := newPopClient(conn)
				t.Cleanup(func() { c.Close() })
				c.Timeout = 20 * time.Second
				first, err := c.ReadLine()
				if err != nil {
					t.Fatalf("greeting: %v", err)
				}
				final := first
				if connect == "after-auth" {
					if !strings.HasPrefix(first, "+OK") {
						t.Fatalf("after-auth greeting %q", first)
					}
					c.Cmd("USER " + user)
					final, _ = c.Cmd("PASS secret-" + user)
				}
				if !strings.HasPrefix(final, "-ERR [SYS/TEMP]") {
					t.Errorf("client got %q, want -ERR [SYS/TEMP]", final)
				}
				p.WaitLog(t, "backend unavailable", 10*time.Second)
				if fake != nil {
					// One connection per session (the harness's readiness
					// probe makes one too, in on-accept mode): STLS only.
					got := fake.Lines(t)
					if len(got) == 0 {
						t.Errorf("fake backend received nothing")
					}
					for _, l := range got {
						if l != "STLS\r\n" {
							t.Errorf("fake backend received %q, want only STLS lines: %q", l, got)
						}
					}
					return
				}
				text := w.Wait(t, "Disconnected", 10*time.Second)
				if strings.Contains(text, user) {
					t.Errorf("Dovecot C saw the login name:\n%s", text)
				}
				if !strings.Contains(text, "no auth attempts") {
					t.Errorf("Dovecot C did not log a session without auth attempts:\n%s", text)
				}
			})
		}
	}
}
