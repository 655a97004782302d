//go:build integration

package integration

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fixed ports of the cluster tests' own Pebble, in this test file's range
// (14130-14139), and the two loopback addresses of the instances.
const (
	cpACMEPort     = "14130" // Pebble's ACME API
	cpMgmtPort     = "14131" // Pebble's management API (roots)
	cpHTTPPort     = "14132" // where Pebble's VA connects for HTTP-01
	cpALPNPort     = "14133" // where Pebble's VA connects for TLS-ALPN-01
	cpDNSPort      = "14134" // pebble-challtestsrv's DNS
	cpCTSMgmtPort  = "14135" // pebble-challtestsrv's management API
	cpPOPSPort     = "14136" // each instance's POP3S listener
	clusterAddrOne = "127.0.0.2"
	clusterAddrTwo = "127.0.0.3"
)

// validatingPebble is a Pebble that really validates challenges
// (no PEBBLE_VA_ALWAYS_VALID), resolving names with pebble-challtestsrv.
type validatingPebble struct {
	Dir   string // ACME directory URL
	APICA string // PEM file that verifies the ACME API
	log   *logBuffer
}

// startValidatingPebble starts pebble-challtestsrv and Pebble on the fixed
// ports above, stopped by PID at cleanup. The binaries come from
// integration/pebble.sh (PEBBLE_BIN, PEBBLE_CHALLTESTSRV_BIN).
func startValidatingPebble(t *testing.T) *validatingPebble {
	t.Helper()
	env := itEnv(t)
	pebble, cts := env["PEBBLE_BIN"], env["PEBBLE_CHALLTESTSRV_BIN"]
	if cts == "" {
		cts = filepath.Join(itDir(), "bin", "pebble-challtestsrv")
	}
	for _, bin := range []string{pebble, cts} {
		if _, err := os.Stat(bin); bin == "" || err != nil {
			t.Fatalf("Pebble binary %q missing: run integration/start.sh (pebble.sh installs pebble and pebble-challtestsrv)", bin)
		}
	}
	dir := t.TempDir()
	certFile, keyFile := writeAPICert(t, dir)
	conf := filepath.Join(dir, "pebble.json")
	err := os.WriteFile(conf, []byte(fmt.Sprintf(`{"pebble": {
  "listenAddress": "127.0.0.1:%s",
  "managementListenAddress": "127.0.0.1:%s",
  "certificate": %q, "privateKey": %q,
  "httpPort": %s, "tlsPort": %s,
  "ocspResponderURL": "", "externalAccountBindingRequired": false,
  "retryAfter": {"authz": 1, "order": 1},
  "profiles": {"default": {"description": "90 days", "validityPeriod": 7776000}}
}}`, cpACMEPort, cpMgmtPort, certFile, keyFile, cpHTTPPort, cpALPNPort)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	start := func(bin string, args, env []string) *logBuffer {
		log := newLogBuffer()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatalf("start %s: %v", bin, err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			if t.Failed() {
				t.Logf("%s output:\n%s", filepath.Base(bin), log.String())
			}
		})
		return log
	}
	start(cts, []string{"-dnsserver", "127.0.0.1:" + cpDNSPort, "-management", "127.0.0.1:" + cpCTSMgmtPort,
		"-http01", "", "-https01", "", "-tlsalpn01", "", "-doh", "", "-defaultIPv6", ""}, nil)
	p := &validatingPebble{Dir: "https://127.0.0.1:" + cpACMEPort + "/dir", APICA: certFile}
	p.log = start(pebble, []string{"-config", conf, "-dnsserver", "127.0.0.1:" + cpDNSPort},
		[]string{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"})
	for _, port := range []string{cpCTSMgmtPort, cpACMEPort, cpMgmtPort} {
		waitTCP(t, "127.0.0.1:"+port)
	}
	if strings.Contains(p.log.String(), "VA always returns valid") {
		t.Fatal("this Pebble does not validate challenges")
	}
	return p
}

// orders counts the orders Pebble received.
func (p *validatingPebble) orders() int { return strings.Count(p.log.String(), "POST /order-plz") }

// pointDNS makes pebble-challtestsrv answer name with addr (A record).
func pointDNS(t *testing.T, name, addr string) {
	t.Helper()
	body := fmt.Sprintf(`{"host":%q,"addresses":[%q]}`, name+".", addr)
	resp, err := http.Post("http://127.0.0.1:"+cpCTSMgmtPort+"/add-a", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("challtestsrv add-a: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("challtestsrv add-a: %s", resp.Status)
	}
}

// roots returns the root this Pebble issues under.
func (p *validatingPebble) roots(t *testing.T) *x509.CertPool {
	t.Helper()
	ca, err := os.ReadFile(p.APICA)
	if err != nil {
		t.Fatal(err)
	}
	api := x509.NewCertPool()
	api.AppendCertsFromPEM(ca)
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: api}}}
	resp, err := c.Get("https://127.0.0.1:" + cpMgmtPort + "/roots/0")
	if err != nil {
		t.Fatalf("Pebble root: %v", err)
	}
	defer resp.Body.Close()
	pemRoot, _ := io.ReadAll(resp.Body)
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pemRoot) {
		t.Fatalf("Pebble /roots/0 holds no certificate")
	}
	return pool
}

// writeAPICert writes a self-signed certificate for 127.0.0.1 (Pebble's
// API) and its key into dir.
func writeAPICert(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cluster test Pebble API"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "api.crt"), filepath.Join(dir, "api.key")
	var cb, kb bytes.Buffer
	pem.Encode(&cb, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	pem.Encode(&kb, &pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
	if err := os.WriteFile(certFile, cb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, kb.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// waitTCP polls addr until it accepts a connection, for 15 s at most.
func waitTCP(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections: %v", addr, err)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// acmeInstanceConfig is a cluster instance bound to ip with ACME for
// domain from p, its challenge servers on ip too, in front of backend.
func acmeInstanceConfig(t *testing.T, p *validatingPebble, redis *RedisServer, name, ip, domain, backend string) string {
	return fmt.Sprintf(`state_dir = %q
cluster {
  redis    = %q
  instance = %q
}
listener "pops" {
  address = "%s:%s"
  tls     = "implicit"
  backend = "a"
}
backend "a" {
  address = %q
}
tls {
  acme {
    domains       = [%q]
    email         = "postmaster@cluster.test"
    directory     = %q
    ca_file       = %q
    profile       = "default"
    http_port     = %s
    tls_alpn_port = %s
    listen_host   = %q
  }
}
`, t.TempDir(), redis.URL(), name, ip, cpPOPSPort, backend, domain, p.Dir, p.APICA, cpHTTPPort, cpALPNPort, ip)
}

// startTogether starts the configurations at once and waits until each
// listens on its address.
func startTogether(t *testing.T, cfgs, addrs []string) []*Popgate {
	t.Helper()
	out := make([]*Popgate, len(cfgs))
	errs := make([]error, len(cfgs))
	var wg sync.WaitGroup
	for i := range cfgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i], errs[i] = tryStartPopgate(t, cfgs[i], addrs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("instance %d not ready: %v\n%s", i, err, out[i].Logs())
		}
	}
	return out
}

// servedLeaf dials addr with implicit TLS for name and returns the leaf,
// verified against roots.
func servedLeaf(t *testing.T, addr, name string, roots *x509.CertPool) *x509.Certificate {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", addr,
		&tls.Config{ServerName: name, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("TLS to %s for %s: %v", addr, name, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}
