//go:build integration

package integration

// TLS termination at popgate's listeners: static certificates chosen by
// SNI, the self-signed fallback, tls_min_version, and the handshake
// deadline for implicit TLS and STLS.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestTLSStaticSNI serves two static certificates and checks that SNI
// picks the right one on implicit TLS and after STLS, and that a client
// without SNI gets the first.
func TestTLSStaticSNI(t *testing.T) {
	pki := tlsNewPKI(t)
	popCrt, popKey := pki.issue(t, tlsPopName)
	otherCrt, otherKey := pki.issue(t, tlsOtherName)
	stls, pops := freePort(t), freePort(t)
	cfg := tlsHeader(t) + tlsListener("stls", stls, "starttls", "on-accept") +
		tlsListener("pops", pops, "implicit", "on-accept") + tlsBackendA(t) +
		tlsStaticBlock([2]string{popCrt, popKey}, [2]string{otherCrt, otherKey})
	startPopgate(t, cfg, stls, pops)

	for _, name := range []string{tlsPopName, tlsOtherName} {
		c := dialPOPS(t, pops, pki.client(name))
		if got := tlsLeaf(t, c).DNSNames; len(got) != 1 || got[0] != name {
			t.Errorf("implicit TLS with SNI %s served %v", name, got)
		}
		s := dialPOP(t, stls)
		if err := s.StartTLS(pki.client(name)); err != nil {
			t.Fatalf("STLS with SNI %s: %v", name, err)
		}
		if got := tlsLeaf(t, s).DNSNames; len(got) != 1 || got[0] != name {
			t.Errorf("STLS with SNI %s served %v", name, got)
		}
	}
	// The wrong name is refused by a verifying client.
	if _, err := tryDialPOP(pops, pki.client("nope.popgate.test")); err == nil {
		t.Errorf("a client verifying nope.popgate.test accepted popgate's certificate")
	}
	// Without SNI (an IP address as the name) the first certificate serves.
	noSNI := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}
	c := dialPOPS(t, pops, noSNI)
	if got := tlsLeaf(t, c).DNSNames; len(got) != 1 || got[0] != tlsPopName {
		t.Errorf("without SNI popgate served %v, want the first certificate", got)
	}
	tlsRetrAll(t, c)
}

// TestTLSSelfSigned checks the fallback without a tls block: a
// self-signed certificate for localhost, stored in state_dir and served
// again, unchanged, after a restart.
func TestTLSSelfSigned(t *testing.T) {
	state := t.TempDir()
	addr := freePort(t)
	cfg := fmt.Sprintf("state_dir = %q\n", state) + tlsListener("pops", addr, "implicit", "on-accept") + tlsBackendA(t)
	insecure := &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"}

	p := startPopgate(t, cfg, addr)
	first := dialPOPS(t, addr, insecure)
	leaf := tlsLeaf(t, first)
	first.Close()
	err := leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature)
	if err != nil || !bytes.Equal(leaf.RawIssuer, leaf.RawSubject) {
		t.Errorf("served certificate is not self-signed (issuer %s, subject %s): %v", leaf.Issuer, leaf.Subject, err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Errorf("self-signed certificate does not name localhost: %v (names %v)", err, leaf.DNSNames)
	}
	// Trusting exactly that certificate, a verifying client logs in.
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	c := dialPOPS(t, addr, &tls.Config{RootCAs: pool, ServerName: "localhost"})
	tlsRetrAll(t, c)
	c.Close()
	if !strings.Contains(p.Logs(), "self-signed") {
		t.Errorf("no warning about the self-signed certificate in the log:\n%s", p.Logs())
	}
	if _, err := os.Stat(filepath.Join(state, "selfsigned")); err != nil {
		t.Errorf("state_dir holds no selfsigned directory: %v", err)
	}

	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.WaitExit(t, 15*time.Second); err != nil {
		t.Fatalf("popgate exited with %v", err)
	}
	startPopgate(t, cfg, addr)
	again := tlsLeaf(t, dialPOPS(t, addr, insecure))
	if a, b := tlsFingerprint(leaf), tlsFingerprint(again); a != b {
		t.Errorf("self-signed certificate changed across a restart: %s then %s", a, b)
	}
}

// tlsHalfClientHello is a TLS record header announcing a 512-octet
// ClientHello, followed by only its first octets.
var tlsHalfClientHello = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 0x11, 0x22}

// TestTLSHandshakeTimeout leaves three handshakes hanging (implicit TLS
// with nothing sent, implicit TLS with half a ClientHello, STLS with
// nothing sent) and checks that popgate drops each at its handshake
// deadline (15 s, not configurable from HCL) while other sessions work.
func TestTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	pki, p, addrs := tlsSTLSConfig(t, true, "")
	start := time.Now()
	var stalled []net.Conn
	dial := func(addr string) net.Conn {
		conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		stalled = append(stalled, conn)
		return conn
	}
	dial(addrs[2])
	if _, err := dial(addrs[2]).Write(tlsHalfClientHello); err != nil {
		t.Fatal(err)
	}
	s := dial(addrs[0])
	sr := bufio.NewReader(s)
	s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := sr.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write([]byte("STLS\r\n")); err != nil {
		t.Fatal(err)
	}
	if line, err := sr.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		t.Fatalf("STLS: %q, %v", line, err)
	}

	// Meanwhile other sessions work, on each listener.
	tlsRetrAll(t, dialPOPS(t, addrs[2], pki.client(tlsPopName)))
	c := dialPOP(t, addrs[1])
	if err := c.StartTLS(pki.client(tlsPopName)); err != nil {
		t.Fatal(err)
	}
	tlsRetrAll(t, c)

	var wg sync.WaitGroup
	for i, conn := range stalled {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn.SetReadDeadline(start.Add(25 * time.Second))
			var rd io.Reader = conn
			if i == 2 {
				rd = sr
			}
			_, err := io.Copy(io.Discard, rd)
			elapsed := time.Since(start)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("stalled handshake %d still open after %v", i, elapsed.Round(time.Millisecond))
				return
			}
			if elapsed < 10*time.Second {
				t.Errorf("stalled handshake %d dropped after %v, before the 15 s deadline", i, elapsed.Round(time.Millisecond))
			}
		}()
	}
	wg.Wait()
	// The readiness probe's aborted handshake is logged too, with EOF:
	// count only the handshakes that hit the deadline.
	// Each line is written just after the connection is closed.
	var implicit, stls int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		implicit, stls = 0, 0
		for _, line := range strings.Split(p.Logs(), "\n") {
			if !strings.Contains(line, "deadline exceeded") {
				continue
			}
			switch {
			case strings.Contains(line, "STLS handshake failed"):
				stls++
			case strings.Contains(line, "TLS handshake failed"):
				implicit++
			}
		}
		if implicit == 2 && stls == 1 {
			break
		}
	}
	if implicit != 2 || stls != 1 {
		t.Errorf("popgate logged %d implicit and %d STLS handshakes past their deadline, want 2 and 1:\n%s", implicit, stls, p.Logs())
	}
}

// TestTLSMinVersion checks tls_min_version: a listener with "1.3" refuses
// a client limited to TLS 1.2, which the default listener (1.2) accepts.
func TestTLSMinVersion(t *testing.T) {
	pki := tlsNewPKI(t)
	crt, key := pki.issue(t, tlsPopName)
	def, min13 := freePort(t), freePort(t)
	cfg := tlsHeader(t) + tlsListener("default", def, "implicit", "on-accept") +
		tlsListener("min13", min13, "implicit", "on-accept", `tls_min_version = "1.3"`) +
		tlsBackendA(t) + tlsStaticBlock([2]string{crt, key})
	startPopgate(t, cfg, def, min13)
	tls12 := pki.client(tlsPopName)
	tls12.MaxVersion = tls.VersionTLS12
	if st := tlsState(t, dialPOPS(t, def, tls12)); st.Version != tls.VersionTLS12 {
		t.Errorf("default listener negotiated %s with a TLS 1.2 client", tls.VersionName(st.Version))
	}
	if c, err := tryDialPOP(min13, tls12); err == nil {
		c.Close()
		t.Errorf("listener with tls_min_version = \"1.3\" accepted TLS 1.2")
	}
	if st := tlsState(t, dialPOPS(t, min13, pki.client(tlsPopName))); st.Version != tls.VersionTLS13 {
		t.Errorf("min13 listener negotiated %s", tls.VersionName(st.Version))
	}
	tls11 := pki.client(tlsPopName)
	tls11.MinVersion, tls11.MaxVersion = tls.VersionTLS10, tls.VersionTLS11
	if c, err := tryDialPOP(def, tls11); err == nil {
		c.Close()
		t.Errorf("default listener accepted TLS 1.1 (RFC 8996)")
	}
}
