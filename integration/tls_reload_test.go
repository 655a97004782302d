//go:build integration

package integration

// Certificate reload on SIGHUP: new handshakes get the new certificate,
// sessions established before keep working, and a broken certificate file
// keeps the last good certificate in use.

import (
	"bytes"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestTLSReloadSIGHUP replaces the certificate files, sends SIGHUP and
// checks that new handshakes get the new certificate while sessions
// established before keep working; a broken file on a later SIGHUP keeps
// the last good certificate.
func TestTLSReloadSIGHUP(t *testing.T) {
	pki := tlsNewPKI(t)
	crt, key := pki.issue(t, tlsPopName)
	stls, pops := freePort(t), freePort(t)
	cfg := tlsHeader(t) + tlsListener("stls", stls, "starttls", "on-accept") +
		tlsListener("pops", pops, "implicit", "on-accept") + tlsBackendA(t) + tlsStaticBlock([2]string{crt, key})
	p := startPopgate(t, cfg, stls, pops)

	old := dialPOPS(t, pops, pki.client(tlsPopName))
	oldFP := tlsFingerprint(tlsLeaf(t, old))
	if err := old.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	oldSTLS := dialPOP(t, stls)
	if err := oldSTLS.StartTLS(pki.client(tlsPopName)); err != nil {
		t.Fatal(err)
	}

	pki.issueTo(t, tlsPopName, crt, key)
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded", 10*time.Second)
	if !strings.Contains(p.Logs(), "certificates reloaded") {
		t.Errorf("no 'certificates reloaded' in the log")
	}

	for _, got := range []*popClient{dialPOPS(t, pops, pki.client(tlsPopName)), tlsSTLS(t, stls, pki)} {
		if fp := tlsFingerprint(tlsLeaf(t, got)); fp == oldFP {
			t.Errorf("a handshake after SIGHUP still got the old certificate %s", fp)
		}
	}
	newFP := tlsFingerprint(tlsLeaf(t, dialPOPS(t, pops, pki.client(tlsPopName))))

	// A broken certificate file is refused on SIGHUP; the last good
	// certificate stays in use.
	if err := os.WriteFile(crt, []byte("-----BEGIN CERTIFICATE-----\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "reloading certificates failed", 10*time.Second)
	if fp := tlsFingerprint(tlsLeaf(t, dialPOPS(t, pops, pki.client(tlsPopName)))); fp != newFP {
		t.Errorf("after a failed reload popgate serves %s, want the last good certificate %s", fp, newFP)
	}

	// The sessions from before the reloads go on.
	want := tlsAliceMessages(t)
	body, err := old.Multi("RETR 3")
	if err != nil || !bytes.Equal(body, want[2]) {
		t.Errorf("RETR 3 on the session from before SIGHUP: %v, %d octets", err, len(body))
	}
	if _, err := old.Cmd("QUIT"); err != nil {
		t.Errorf("QUIT on the session from before SIGHUP: %v", err)
	}
	tlsRetrAll(t, oldSTLS)
}

// tlsSTLS connects to addr and upgrades with STLS for tlsPopName.
func tlsSTLS(t *testing.T, addr string, pki *tlsPKI) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.StartTLS(pki.client(tlsPopName)); err != nil {
		t.Fatal(err)
	}
	return c
}
