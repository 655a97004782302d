//go:build integration

package integration

// ACME through the real binary against the real Pebble: the certificate
// popgate serves for pop.popgate.test must chain to the root Pebble
// issues under, for Go's verifier and for curl, and must come back from
// storage after a restart.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tlsPebbleRoot fetches the root Pebble issues under (regenerated at every
// Pebble start) from PEBBLE_MGMT/roots/0, over HTTPS verified with
// PEBBLE_CA. It returns the pool and a PEM file holding the root.
func tlsPebbleRoot(t *testing.T) (*x509.CertPool, string) {
	t.Helper()
	apiCA, err := os.ReadFile(envValue(t, "PEBBLE_CA"))
	if err != nil {
		t.Fatal(err)
	}
	apiRoots := x509.NewCertPool()
	if !apiRoots.AppendCertsFromPEM(apiCA) {
		t.Fatalf("PEBBLE_CA holds no certificate")
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: apiRoots}},
	}
	resp, err := client.Get(envValue(t, "PEBBLE_MGMT") + "/roots/0")
	if err != nil {
		t.Fatalf("fetching Pebble's root: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching Pebble's root: %s, %v", resp.Status, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(body) {
		t.Fatalf("Pebble's /roots/0 holds no certificate: %q", body)
	}
	file := filepath.Join(t.TempDir(), "pebble-root.pem")
	if err := os.WriteFile(file, body, 0o600); err != nil {
		t.Fatal(err)
	}
	return pool, file
}

// tlsPort returns the port of a "host:port" address.
func tlsPort(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

// TestTLSACME obtains a certificate for pop.popgate.test from Pebble
// (profile "default": 90 days) and checks it on implicit TLS and STLS,
// with curl, and after a restart from the same storage.
func TestTLSACME(t *testing.T) {
	storage, state := t.TempDir(), t.TempDir()
	pops, stls := freePort(t), freePort(t)
	cfg := fmt.Sprintf(`state_dir = %q
listener "pops" {
  address = %q
  tls     = "implicit"
  backend = "a"
}
listener "stls" {
  address = %q
  tls     = "starttls"
  backend = "a"
}
backend "a" {
  address = %q
}
tls {
  acme {
    domains       = [%q]
    email         = "postmaster@popgate.test"
    directory     = %q
    ca_file       = %q
    storage       = %q
    profile       = "default"
    http_port     = %s
    tls_alpn_port = %s
    listen_host   = "127.0.0.1"
  }
}
`, state, pops, stls, envValue(t, "POP3_ADDR"), tlsPopName, envValue(t, "PEBBLE_DIR"), envValue(t, "PEBBLE_CA"),
		storage, tlsPort(freePort(t)), tlsPort(freePort(t)))

	p := startPopgate(t, cfg, pops, stls)
	roots, rootFile := tlsPebbleRoot(t)
	verify := &tls.Config{RootCAs: roots, ServerName: tlsPopName, MinVersion: tls.VersionTLS12}

	c := dialPOPS(t, pops, verify)
	leaf := tlsLeaf(t, c)
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != tlsPopName {
		t.Errorf("ACME certificate names %v, want [%s]", leaf.DNSNames, tlsPopName)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 30*24*time.Hour {
		t.Errorf("ACME certificate lives %v; profile \"default\" gives 90 days (\"shortlived\" 6)", life)
	}
	// The chain is Pebble's: verify it explicitly with the intermediates
	// popgate sent and only Pebble's root.
	inter := x509.NewCertPool()
	for _, ic := range tlsState(t, c).PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tlsPopName, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("ACME certificate does not chain to Pebble's root: %v", err)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: tlsPopName, Intermediates: inter}); err == nil {
		t.Errorf("ACME certificate verifies against the system roots; it should only chain to Pebble's")
	}
	tlsRetrAll(t, c)
	c.Close()

	s := dialPOP(t, stls)
	if err := s.StartTLS(verify); err != nil {
		t.Fatalf("STLS with the ACME certificate: %v", err)
	}
	if fp := tlsFingerprint(tlsLeaf(t, s)); fp != tlsFingerprint(leaf) {
		t.Errorf("STLS served another certificate (%s) than implicit TLS (%s)", fp, tlsFingerprint(leaf))
	}
	s.Close()

	want := tlsAliceMessages(t)
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine "+tlsPopName+" login alice password "+itPassword(t, "a", "alice")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "msg")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "--cacert", rootFile,
		"--resolve", tlsPopName+":"+tlsPort(pops)+":127.0.0.1", "--netrc-file", netrc, "-o", out,
		"pop3s://"+tlsPopName+":"+tlsPort(pops)+"/2")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl pop3s with Pebble's root: %v\n%s", err, msg)
	}
	if body, err := os.ReadFile(out); err != nil || string(body) != string(want[1]) {
		t.Errorf("curl RETR 2: %v, got %q, want %q", err, body, want[1])
	}

	// A restart loads the certificate from storage instead of ordering one.
	if !strings.Contains(p.Logs(), "certificate obtained successfully") {
		t.Errorf("no 'certificate obtained successfully' in the log of the first start")
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 15*time.Second); err != nil {
		t.Fatalf("popgate exited with %v", err)
	}
	p2 := startPopgate(t, cfg, pops, stls)
	again := dialPOPS(t, pops, verify)
	if a, b := tlsFingerprint(leaf), tlsFingerprint(tlsLeaf(t, again)); a != b {
		t.Errorf("after a restart popgate served a new certificate (%s, was %s); storage was not reused", b, a)
	}
	if strings.Contains(p2.Logs(), "certificate obtained successfully") {
		t.Errorf("popgate obtained a new certificate after a restart despite its storage:\n%s", p2.Logs())
	}
}
