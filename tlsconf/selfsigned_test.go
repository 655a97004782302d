package tlsconf

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// newFallbackManager builds a Manager without certificates and returns it
// with its log output.
func newFallbackManager(t *testing.T, stateDir string, names []string) (*Manager, *bytes.Buffer) {
	t.Helper()
	var buf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info})
	m, err := New(context.Background(), Options{StateDir: stateDir, SelfSignedNames: names, Logger: log})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m, &buf
}

// fallbackLeaf returns the certificate m serves without SNI.
func fallbackLeaf(t *testing.T, m *Manager) *x509.Certificate {
	t.Helper()
	return servedLeaf(t, serveEcho(t, m.ServerConfig()), "")
}

func TestSelfSignedGenerated(t *testing.T) {
	state := t.TempDir()
	m, logBuf := newFallbackManager(t, state, nil)
	leaf := fallbackLeaf(t, m)

	if !strings.Contains(logBuf.String(), "[WARN]") || !strings.Contains(logBuf.String(), "self-signed") {
		t.Errorf("no warning about the self-signed fallback; log:\n%s", logBuf.String())
	}
	if !slices.Equal(leaf.DNSNames, []string{"localhost"}) {
		t.Errorf("DNS names = %v, want [localhost]", leaf.DNSNames)
	}
	var ips []string
	for _, ip := range leaf.IPAddresses {
		ips = append(ips, ip.String())
	}
	slices.Sort(ips)
	if !slices.Equal(ips, []string{"127.0.0.1", "::1"}) {
		t.Errorf("IP addresses = %v, want 127.0.0.1 and ::1", ips)
	}
	key, ok := leaf.PublicKey.(*ecdsa.PublicKey)
	if !ok || key.Curve != elliptic.P256() {
		t.Errorf("public key is %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := time.Until(leaf.NotAfter); life < 364*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("certificate valid for %v more, want about a year", life)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	for _, name := range []string{"localhost", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: name}); err != nil {
			t.Errorf("pinned self-signed certificate does not verify for %s: %v", name, err)
		}
	}

	dir := filepath.Join(state, "selfsigned")
	for path, want := range map[string]os.FileMode{
		dir:                            0o700 | os.ModeDir,
		filepath.Join(dir, "key.pem"):  0o600,
		filepath.Join(dir, "cert.pem"): 0o644,
	} {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != want {
			t.Errorf("%s has mode %v, want %v", path, fi.Mode(), want)
		}
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Errorf("selfsigned directory holds %d entries, want cert.pem and key.pem only", len(entries))
	}
}

func TestSelfSignedReusedAcrossRestarts(t *testing.T) {
	state := t.TempDir()
	names := []string{"pop.example.test", "192.0.2.7"}
	first := fallbackLeaf(t, mustFallback(t, state, names))
	m, logBuf := newFallbackManager(t, state, []string{"192.0.2.7", "POP.example.test."})
	second := fallbackLeaf(t, m)
	if !sameCert(first, second) {
		t.Error("a restart with the same names generated a new certificate")
	}
	if !strings.Contains(logBuf.String(), "stored self-signed") {
		t.Errorf("reuse not logged; log:\n%s", logBuf.String())
	}
}

func TestSelfSignedRegeneratedWhenNamesChange(t *testing.T) {
	state := t.TempDir()
	first := fallbackLeaf(t, mustFallback(t, state, []string{"pop.example.test"}))
	m, logBuf := newFallbackManager(t, state, []string{"pop.example.test", "pop2.example.test"})
	second := fallbackLeaf(t, m)
	if sameCert(first, second) {
		t.Fatal("changed names kept the old certificate")
	}
	if !slices.Equal(second.DNSNames, []string{"pop.example.test", "pop2.example.test"}) {
		t.Errorf("DNS names = %v", second.DNSNames)
	}
	if !strings.Contains(logBuf.String(), "names changed") {
		t.Errorf("reason not logged; log:\n%s", logBuf.String())
	}
}

func TestSelfSignedRegeneratedWhenExpired(t *testing.T) {
	state := t.TempDir()
	dir := filepath.Join(state, "selfsigned")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := []string{"localhost"}
	old, err := generateSelfSigned(names, time.Now().Add(-400*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if err := storeSelfSigned(dir, filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), old); err != nil {
		t.Fatal(err)
	}
	m, logBuf := newFallbackManager(t, state, names)
	leaf := fallbackLeaf(t, m)
	if sameCert(leaf, old.Leaf) || !leaf.NotAfter.After(time.Now()) {
		t.Errorf("expired certificate (not after %v) still served (not after %v)", old.Leaf.NotAfter, leaf.NotAfter)
	}
	if !strings.Contains(logBuf.String(), "expire") {
		t.Errorf("reason not logged; log:\n%s", logBuf.String())
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode not tightened to 0700: %v %v", fi.Mode(), err)
	}
}

func TestSelfSignedRegeneratedWhenKeyIsCorrupt(t *testing.T) {
	state := t.TempDir()
	first := fallbackLeaf(t, mustFallback(t, state, nil))
	writeFile(t, filepath.Join(state, "selfsigned", "key.pem"), []byte("garbage"))
	m, logBuf := newFallbackManager(t, state, nil)
	if second := fallbackLeaf(t, m); sameCert(first, second) {
		t.Error("certificate with a corrupt key was reused")
	}
	if !strings.Contains(logBuf.String(), "unusable") {
		t.Errorf("reason not logged; log:\n%s", logBuf.String())
	}
}

func TestSelfSignedInMemoryWithoutStateDir(t *testing.T) {
	m, logBuf := newFallbackManager(t, "", nil)
	leaf := fallbackLeaf(t, m)
	if !slices.Contains(leaf.DNSNames, "localhost") {
		t.Errorf("DNS names = %v", leaf.DNSNames)
	}
	if !strings.Contains(logBuf.String(), "in-memory") {
		t.Errorf("no in-memory warning; log:\n%s", logBuf.String())
	}
}

func TestSelfSignedRejectsEmptyName(t *testing.T) {
	if _, err := New(context.Background(), Options{SelfSignedNames: []string{"localhost", " "}}); err == nil {
		t.Error("New accepted an empty self-signed name")
	}
}

// mustFallback builds a fallback Manager, discarding its log.
func mustFallback(t *testing.T, stateDir string, names []string) *Manager {
	t.Helper()
	m, _ := newFallbackManager(t, stateDir, names)
	return m
}
