//go:build integration

package tlsconf_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/tlsconf"
)

// acmeDomain is the name the test obtains from Pebble; Pebble runs with
// PEBBLE_VA_ALWAYS_VALID=1, so it needs no DNS.
const acmeDomain = "pop.popgate.test"

// pebbleEnv reads the PEBBLE_* settings integration/pebble.sh wrote to
// $POPGATE_IT_DIR/env (default /tmp/popgate-it/env). Without the keys a
// test needs it is skipped, or fails under CI.
func pebbleEnv(t *testing.T, keys ...string) map[string]string {
	t.Helper()
	dir := os.Getenv("POPGATE_IT_DIR")
	if dir == "" {
		dir = "/tmp/popgate-it"
	}
	file := filepath.Join(dir, "env")
	env := make(map[string]string)
	data, err := os.ReadFile(file)
	if err == nil {
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "="); ok {
				env[k] = v
			}
		}
	}
	for _, k := range keys {
		if env[k] == "" {
			msg := "no " + k + " in " + file + " (run integration/pebble.sh first)"
			if os.Getenv("CI") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return env
}

// pebbleRoot fetches the root Pebble issues under, which it regenerates
// at every start, from its management API.
func pebbleRoot(t *testing.T, mgmtURL, apiCAFile string) *x509.CertPool {
	t.Helper()
	apiCA, err := os.ReadFile(apiCAFile)
	if err != nil {
		t.Fatal(err)
	}
	apiRoots := x509.NewCertPool()
	if !apiRoots.AppendCertsFromPEM(apiCA) {
		t.Fatalf("%s holds no certificate", apiCAFile)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: apiRoots}},
	}
	resp, err := client.Get(mgmtURL + "/roots/0")
	if err != nil {
		t.Fatalf("fetching Pebble's root: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("fetching Pebble's root: status %s, %v", resp.Status, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(body) {
		t.Fatalf("Pebble's /roots/0 holds no certificate: %q", body)
	}
	return roots
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer is a log sink safe for certmagic's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serveTLS accepts on a loopback listener with cfg, completes each
// handshake and echoes, until the test ends.
func serveTLS(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// handshake connects to addr with cfg and returns the verified state.
func handshake(t *testing.T, addr string, cfg *tls.Config) tls.ConnectionState {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", cfg.ServerName, err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, "+OK\r\n"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != "+OK\r\n" {
		t.Fatalf("echo after handshake: %q, %v", buf, err)
	}
	return conn.ConnectionState()
}

// defaultsSnapshot is the part of certmagic's package-level defaults a
// careless caller would change.
type defaultsSnapshot struct {
	CA, Email, Profile             string
	Agreed, HasRoots, HasStorage   bool
	HTTPPort, ALPNPort, NumIssuers int
}

// certmagicDefaults snapshots certmagic.Default and certmagic.DefaultACME.
func certmagicDefaults() defaultsSnapshot {
	return defaultsSnapshot{
		CA: certmagic.DefaultACME.CA, Email: certmagic.DefaultACME.Email, Profile: certmagic.DefaultACME.Profile,
		Agreed: certmagic.DefaultACME.Agreed, HasRoots: certmagic.DefaultACME.TrustedRoots != nil,
		HasStorage: certmagic.Default.Storage != nil, HTTPPort: certmagic.DefaultACME.AltHTTPPort,
		ALPNPort: certmagic.DefaultACME.AltTLSALPNPort, NumIssuers: len(certmagic.Default.Issuers),
	}
}

func TestACMEWithPebble(t *testing.T) {
	env := pebbleEnv(t, "PEBBLE_DIR", "PEBBLE_CA", "PEBBLE_MGMT")
	roots := pebbleRoot(t, env["PEBBLE_MGMT"], env["PEBBLE_CA"])
	logs := &syncBuffer{}
	opts := tlsconf.Options{
		ACME: &tlsconf.ACME{
			Domains:     []string{acmeDomain},
			Email:       "postmaster@popgate.test",
			Directory:   env["PEBBLE_DIR"],
			CAFile:      env["PEBBLE_CA"],
			Storage:     t.TempDir(),
			HTTPPort:    freePort(t),
			TLSALPNPort: freePort(t),
			ListenHost:  "127.0.0.1",
			Profile:     "default",
		},
		StateDir: t.TempDir(),
		Logger:   hclog.New(&hclog.LoggerOptions{Name: "tls", Output: logs, Level: hclog.Debug}),
	}
	defer func() {
		if t.Failed() {
			t.Logf("manager log:\n%s", logs.String())
		}
	}()

	defaultsBefore := certmagicDefaults()
	t.Cleanup(func() {
		if after := certmagicDefaults(); after != defaultsBefore {
			t.Errorf("certmagic package defaults changed:\nbefore %+v\nafter  %+v", defaultsBefore, after)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := tlsconf.New(ctx, opts)
	if err != nil {
		t.Fatalf("New with ACME: %v", err)
	}
	addr := serveTLS(t, m.ServerConfig())

	cs := handshake(t, addr, &tls.Config{ServerName: acmeDomain, RootCAs: roots, NextProtos: []string{"pop3"}})
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: acmeDomain, Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("served certificate does not verify against Pebble's root for %s: %v", acmeDomain, err)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 30*24*time.Hour {
		t.Errorf("certificate lifetime %v: the \"default\" (90-day) profile was not used", life)
	}
	if cs.NegotiatedProtocol != "" {
		t.Errorf("negotiated ALPN %q, want none", cs.NegotiatedProtocol)
	}

	// A client without SNI (connecting by IP) gets the first ACME domain.
	noSNI := handshake(t, addr, &tls.Config{InsecureSkipVerify: true})
	if !noSNI.PeerCertificates[0].Equal(leaf) {
		t.Errorf("no-SNI handshake served %v, want the ACME certificate", noSNI.PeerCertificates[0].DNSNames)
	}
	if !strings.Contains(logs.String(), "certificate obtained successfully") {
		t.Errorf("certmagic's log did not reach hclog")
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	// A restart loads the certificate from storage instead of ordering again.
	m2, err := tlsconf.New(ctx, opts)
	if err != nil {
		t.Fatalf("second New: %v", err)
	}
	t.Cleanup(func() { m2.Close() })
	addr2 := serveTLS(t, m2.ServerConfig())
	again := handshake(t, addr2, &tls.Config{ServerName: acmeDomain, RootCAs: roots})
	if !again.PeerCertificates[0].Equal(leaf) {
		t.Error("restart obtained a new certificate instead of loading the stored one")
	}
}
