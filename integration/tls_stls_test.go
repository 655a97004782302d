//go:build integration

package integration

// STLS at popgate's listeners: the rules of RFC 2595 (STLS once and only
// in AUTHORIZATION, CAPA recomputed, plaintext pipelined after STLS never
// executed, knowledge from before TLS discarded) and require_tls.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestTLSSTLSRules checks RFC 2595 on both connect modes: STLS once and
// only in AUTHORIZATION, CAPA recomputed, plaintext pipelined after STLS
// never executed, and a USER given before STLS forgotten.
func TestTLSSTLSRules(t *testing.T) {
	pki, _, addrs := tlsSTLSConfig(t, false, "")
	pw := itPassword(t, "a", "alice")
	for i, mode := range []string{"on-accept", "after-auth"} {
		addr := addrs[i]
		t.Run(mode+"/once", func(t *testing.T) {
			c := dialPOP(t, addr)
			if _, ok := tlsCapa(t, c)["STLS"]; !ok {
				t.Errorf("CAPA before STLS lacks STLS")
			}
			if err := c.StartTLS(pki.client(tlsPopName)); err != nil {
				t.Fatal(err)
			}
			caps := tlsCapa(t, c)
			if _, ok := caps["STLS"]; ok {
				t.Errorf("CAPA after STLS still offers STLS")
			}
			if _, ok := caps["USER"]; !ok {
				t.Errorf("CAPA after STLS lacks USER: %v", caps)
			}
			if line, err := c.Cmd("STLS"); err == nil || !strings.HasPrefix(line, "-ERR") {
				t.Errorf("second STLS answered %q, want -ERR", line)
			}
			if err := c.Login("alice", pw); err != nil {
				t.Fatalf("login after STLS: %v", err)
			}
			if line, err := c.Cmd("STLS"); err == nil || !strings.HasPrefix(line, "-ERR") {
				t.Errorf("STLS in TRANSACTION answered %q, want -ERR", line)
			}
			body, err := c.Multi("RETR 2")
			if err != nil || !bytes.Equal(body, tlsAliceMessages(t)[1]) {
				t.Errorf("RETR 2 after refused STLS: %v, %d octets", err, len(body))
			}
		})
		t.Run(mode+"/after-login", func(t *testing.T) {
			c := dialPOP(t, addr)
			if err := c.Login("alice", pw); err != nil {
				t.Fatalf("plaintext login (require_tls = false): %v", err)
			}
			if line, err := c.Cmd("STLS"); err == nil || !strings.HasPrefix(line, "-ERR") {
				t.Errorf("STLS after login answered %q, want -ERR", line)
			}
			if _, err := c.Cmd("NOOP"); err != nil {
				t.Errorf("NOOP after refused STLS: %v", err)
			}
		})
		t.Run(mode+"/injection", func(t *testing.T) {
			// What PASS gets from a session that never saw USER.
			ref := dialPOP(t, addr)
			if err := ref.StartTLS(pki.client(tlsPopName)); err != nil {
				t.Fatal(err)
			}
			want, _ := ref.Cmd("PASS " + pw)
			if !strings.HasPrefix(want, "-ERR") {
				t.Fatalf("PASS without USER answered %q", want)
			}

			c := dialPOP(t, addr)
			if err := c.Write([]byte("STLS\r\nUSER alice\r\n")); err != nil {
				t.Fatal(err)
			}
			if line, err := c.ReadLine(); err != nil || !strings.HasPrefix(line, "+OK") {
				t.Fatalf("STLS: %q, %v", line, err)
			}
			if err := tlsHandshake(c, pki.client(tlsPopName)); err != nil {
				t.Fatalf("handshake after STLS with pipelined USER: %v", err)
			}
			got, err := c.Cmd("PASS " + pw)
			if err == nil {
				t.Fatalf("PASS after STLS with injected plaintext USER logged in: %q", got)
			}
			if got != want {
				t.Errorf("PASS after injection answered %q; without any USER it is %q", got, want)
			}
			if mode == "after-auth" && !strings.Contains(got, "USER first") {
				t.Errorf("PASS after injection answered %q, want ... USER first", got)
			}
		})
		t.Run(mode+"/user-forgotten", func(t *testing.T) {
			tlsCheckUserForgotten(t, pki, addr, pw)
		})
	}
	t.Run("implicit/no-stls", func(t *testing.T) {
		c := dialPOPS(t, addrs[2], pki.client(tlsPopName))
		if _, ok := tlsCapa(t, c)["STLS"]; ok {
			t.Errorf("CAPA on implicit TLS offers STLS")
		}
		if line, err := c.Cmd("STLS"); err == nil || !strings.HasPrefix(line, "-ERR") {
			t.Errorf("STLS on implicit TLS answered %q, want -ERR", line)
		}
	})
}

// tlsCheckUserForgotten: USER in plaintext, STLS, then PASS must fail
// (RFC 2595 section 4: the server MUST discard any knowledge obtained
// from the client before the TLS negotiation).
func tlsCheckUserForgotten(t *testing.T, pki *tlsPKI, addr, pw string) {
	t.Helper()
	c := dialPOP(t, addr)
	if _, err := c.Cmd("USER alice"); err != nil {
		t.Fatal(err)
	}
	if err := c.StartTLS(pki.client(tlsPopName)); err != nil {
		t.Fatal(err)
	}
	if line, err := c.Cmd("PASS " + pw); err == nil {
		t.Fatal("the USER sent before STLS still counts after STLS: PASS answered " + line)
	}
	if err := c.Login("alice", pw); err != nil {
		t.Errorf("a fresh USER/PASS after STLS: %v", err)
	}
}

// tlsHandshake upgrades c after an STLS +OK the caller has read.
func tlsHandshake(c *popClient, cfg *tls.Config) error {
	if n := c.R.Buffered(); n != 0 {
		return fmt.Errorf("%d bytes after +OK before the handshake", n)
	}
	tc := tls.Client(c.Conn, cfg)
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("handshake: %w", err)
	}
	c.Conn = tc
	c.R = bufio.NewReaderSize(tc, 64<<10)
	return nil
}

// TestTLSRequireTLS checks require_tls = true on both connect modes:
// before STLS CAPA offers STLS and no login method, and every login
// command gets -ERR [AUTH]; after STLS everything works.
func TestTLSRequireTLS(t *testing.T) {
	// Five refusals in a row: more than the default max_errors allows.
	pki, _, addrs := tlsSTLSConfig(t, true, "limits {\n  max_errors = 10\n}\n")
	pw := itPassword(t, "a", "alice")
	for i, mode := range []string{"on-accept", "after-auth"} {
		t.Run(mode, func(t *testing.T) {
			c := dialPOP(t, addrs[i])
			caps := tlsCapa(t, c)
			if _, ok := caps["STLS"]; !ok {
				t.Errorf("CAPA before STLS lacks STLS: %v", caps)
			}
			for _, name := range []string{"USER", "SASL"} {
				if line, ok := caps[name]; ok {
					t.Errorf("CAPA before STLS offers %q", line)
				}
			}
			for _, cmd := range []string{"USER alice", "PASS " + pw, "APOP alice 0123456789abcdef0123456789abcdef", "AUTH PLAIN", "AUTH"} {
				line, err := c.Cmd(cmd)
				if err == nil || !strings.HasPrefix(line, "-ERR [AUTH]") {
					verb, _, _ := strings.Cut(cmd, " ")
					t.Errorf("%s before STLS answered %q, want -ERR [AUTH]", verb, line)
				}
			}
			if err := c.StartTLS(pki.client(tlsPopName)); err != nil {
				t.Fatal(err)
			}
			caps = tlsCapa(t, c)
			if _, ok := caps["USER"]; !ok {
				t.Errorf("CAPA after STLS lacks USER: %v", caps)
			}
			if _, ok := caps["SASL"]; !ok {
				t.Errorf("CAPA after STLS lacks SASL: %v", caps)
			}
			tlsRetrAll(t, c)
		})
	}
}
