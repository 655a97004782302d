//go:build integration

package integration

// TLS termination through the real binary: TLS and STLS towards backends
// (Dovecot A, the wrong-name Dovecot C, a fake server without STLS),
// static certificates chosen by SNI, the self-signed fallback, the STLS
// rules of RFC 2595 and require_tls, the handshake deadline, TLS fields in
// logs and audit records, and certificate reload on SIGHUP. The real
// clients (python3 poplib, curl, fetchmail) are in TestTLSClients; ACME
// with Pebble is in tls_acme_test.go.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Names of the test certificates issued by tlsPKI.
const (
	tlsPopName   = "pop.popgate.test"
	tlsOtherName = "other.popgate.test"
)

// tlsPKI is a private CA in a test's temporary directory.
type tlsPKI struct {
	dir    string
	CAFile string
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	pool   *x509.CertPool
	serial int64
}

// tlsNewPKI creates a CA certificate and key under t.TempDir().
func tlsNewPKI(t testing.TB) *tlsPKI {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "popgate tls test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsPKI{dir: t.TempDir(), ca: ca, caKey: key, pool: x509.NewCertPool(), serial: 1}
	p.pool.AddCert(ca)
	p.CAFile = filepath.Join(p.dir, "ca.crt")
	tlsWritePEM(t, p.CAFile, "CERTIFICATE", der)
	return p
}

// issue writes a leaf certificate for name, signed by the CA, to
// NAME.crt and NAME.key in the PKI's directory and returns the paths.
func (p *tlsPKI) issue(t testing.TB, name string) (certFile, keyFile string) {
	t.Helper()
	certFile = filepath.Join(p.dir, name+".crt")
	keyFile = filepath.Join(p.dir, name+".key")
	p.issueTo(t, name, certFile, keyFile)
	return certFile, keyFile
}

// issueTo writes a fresh key and leaf certificate for name to the given
// files, each replaced atomically by a rename.
func (p *tlsPKI) issueTo(t testing.TB, name, certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	tlsWritePEM(t, keyFile, "PRIVATE KEY", keyDER)
	tlsWritePEM(t, certFile, "CERTIFICATE", der)
}

// client returns a client configuration trusting only the PKI's CA and
// verifying serverName (also sent as SNI).
func (p *tlsPKI) client(serverName string) *tls.Config {
	return &tls.Config{RootCAs: p.pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}

// tlsWritePEM writes one PEM block to path (mode 0600) via a rename.
func tlsWritePEM(t testing.TB, path, typ string, der []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// tlsFingerprint is the hex SHA-256 of a certificate.
func tlsFingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// tlsLeaf returns the leaf certificate of a TLS connection.
func tlsLeaf(t testing.TB, c *popClient) *x509.Certificate {
	t.Helper()
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		t.Fatalf("connection is not TLS")
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		t.Fatalf("no peer certificate")
	}
	return certs[0]
}

// tlsState returns the connection state of a TLS client connection.
func tlsState(t testing.TB, c *popClient) tls.ConnectionState {
	t.Helper()
	tc, ok := c.Conn.(*tls.Conn)
	if !ok {
		t.Fatalf("connection is not TLS")
	}
	return tc.ConnectionState()
}

// tlsStaticBlock is a tls block with one certificate block per pair.
func tlsStaticBlock(pairs ...[2]string) string {
	var b strings.Builder
	b.WriteString("tls {\n")
	for _, p := range pairs {
		fmt.Fprintf(&b, "  certificate {\n    cert_file = %q\n    key_file  = %q\n  }\n", p[0], p[1])
	}
	b.WriteString("}\n")
	return b.String()
}

// tlsListener is a listener block; extra lines go inside it.
func tlsListener(name, addr, mode, connect string, extra ...string) string {
	s := fmt.Sprintf("listener %q {\n  address = %q\n  tls     = %q\n  connect = %q\n  backend = \"a\"\n", name, addr, mode, connect)
	for _, e := range extra {
		s += "  " + e + "\n"
	}
	return s + "}\n"
}

// tlsBackendA is backend "a": Dovecot A's plain port, without TLS.
func tlsBackendA(t testing.TB) string {
	return fmt.Sprintf("backend \"a\" {\n  address = %q\n}\n", envValue(t, "POP3_ADDR"))
}

// tlsHeader is the top of every configuration: a state_dir of the test's
// own and debug logs.
func tlsHeader(t testing.TB) string {
	return fmt.Sprintf("state_dir = %q\nlog {\n  level = \"debug\"\n}\n", t.TempDir())
}

// tlsAliceMessages returns what RETR 1..6 of alice must yield.
func tlsAliceMessages(t testing.TB) [][]byte {
	t.Helper()
	var out [][]byte
	for _, f := range maildirMessages(t, envValue(t, "MAIL_ROOT"), "alice") {
		out = append(out, expectedRETR(f))
	}
	return out
}

// tlsRetrAll logs alice in on c and checks every RETR byte for byte.
func tlsRetrAll(t testing.TB, c *popClient) {
	t.Helper()
	if err := c.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatalf("login: %v", err)
	}
	for i, want := range tlsAliceMessages(t) {
		body, err := c.Multi(fmt.Sprintf("RETR %d", i+1))
		if err != nil {
			t.Fatalf("RETR %d: %v", i+1, err)
		}
		if !bytes.Equal(body, want) {
			t.Errorf("RETR %d: got %d octets, want %d (common prefix %d)", i+1, len(body), len(want), commonPrefix(body, want))
		}
	}
}

// tlsCapa returns the CAPA list of c as a set of capability names.
func tlsCapa(t testing.TB, c *popClient) map[string]string {
	t.Helper()
	body, err := c.Multi("CAPA")
	if err != nil {
		t.Fatalf("CAPA: %v", err)
	}
	caps := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(string(body), "\r\n"), "\r\n") {
		name, _, _ := strings.Cut(line, " ")
		caps[strings.ToUpper(name)] = line
	}
	return caps
}

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

// tlsSTLSConfig starts popgate with a starttls listener per connect mode
// (require_tls as given) and one implicit listener, all serving a
// certificate for tlsPopName. It returns the PKI, the process and the
// addresses: on-accept, after-auth, implicit.
func tlsSTLSConfig(t *testing.T, requireTLS bool, extra string) (*tlsPKI, *Popgate, [3]string) {
	t.Helper()
	pki := tlsNewPKI(t)
	crt, key := pki.issue(t, tlsPopName)
	a := [3]string{freePort(t), freePort(t), freePort(t)}
	req := fmt.Sprintf("require_tls = %v", requireTLS)
	cfg := tlsHeader(t) +
		tlsListener("stls-accept", a[0], "starttls", "on-accept", req) +
		tlsListener("stls-auth", a[1], "starttls", "after-auth", req) +
		tlsListener("pops", a[2], "implicit", "on-accept") +
		tlsBackendA(t) + tlsStaticBlock([2]string{crt, key}) + extra
	return pki, startPopgate(t, cfg, a[0], a[1], a[2]), a
}

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

// tlsAuditRecords reads the audit file as JSON objects.
func tlsAuditRecords(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("audit line %q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

// TestTLSLogAndAudit checks that the log names the TLS version of a
// session and that audit records carry version, cipher and SNI, at
// session start for implicit TLS and in a tls record after STLS.
func TestTLSLogAndAudit(t *testing.T) {
	auditFile := filepath.Join(t.TempDir(), "audit.jsonl")
	pki, p, addrs := tlsSTLSConfig(t, true, fmt.Sprintf("filter \"audit\" {\n  path = %q\n}\n", auditFile))

	c := dialPOPS(t, addrs[2], pki.client(tlsPopName))
	st := tlsState(t, c)
	tlsRetrAll(t, c)
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	s := dialPOP(t, addrs[0])
	if err := s.StartTLS(pki.client(tlsOtherName)); err == nil {
		t.Fatalf("verifying %s against a certificate for %s succeeded", tlsOtherName, tlsPopName)
	}
	s = dialPOP(t, addrs[0])
	if err := s.StartTLS(pki.client(tlsPopName)); err != nil {
		t.Fatal(err)
	}
	if err := s.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}

	version, cipher := tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite)
	// The "session ended" lines of both sessions name the TLS version;
	// they are logged just after QUIT is answered.
	found := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(found) < 2 && time.Now().Before(deadline) {
		for _, line := range strings.Split(p.Logs(), "\n") {
			if !strings.Contains(line, "session ended") || !strings.Contains(line, "user=alice") {
				continue
			}
			for _, l := range []string{"pops", "stls-accept"} {
				if strings.Contains(line, "listener="+l+" ") && strings.Contains(line, `tls="`+version+`"`) {
					found[l] = true
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for _, l := range []string{"pops", "stls-accept"} {
		if !found[l] {
			t.Errorf("no 'session ended' line of listener %s with tls=%q:\n%s", l, version, p.Logs())
		}
	}

	var starts, tlsRecs []map[string]any
	for _, r := range tlsAuditRecords(t, auditFile) {
		switch r["event"] {
		case "session_start":
			starts = append(starts, r)
		case "tls":
			tlsRecs = append(tlsRecs, r)
		}
	}
	var implicit map[string]any
	for _, r := range starts {
		if r["listener"] == "pops" {
			implicit = r
		}
	}
	want := map[string]any{"tls_version": version, "tls_cipher": cipher, "sni": tlsPopName}
	if implicit == nil {
		t.Fatalf("no session_start record for the implicit listener: %v", starts)
	}
	for k, v := range want {
		if implicit[k] != v {
			t.Errorf("implicit session_start %s = %v, want %v", k, implicit[k], v)
		}
	}
	var stlsRec map[string]any
	for _, r := range tlsRecs {
		if r["listener"] == "stls-accept" && r["sni"] == tlsPopName {
			stlsRec = r
		}
	}
	if stlsRec == nil {
		t.Fatalf("no tls record for the STLS session: %v", tlsRecs)
	}
	if v, _ := stlsRec["tls_version"].(string); !strings.HasPrefix(v, "TLS 1.") {
		t.Errorf("tls record tls_version = %q", v)
	}
	if v, _ := stlsRec["tls_cipher"].(string); v == "" {
		t.Errorf("tls record has no tls_cipher: %v", stlsRec)
	}
}

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

// tlsPython is a python3 poplib client: STLS on a plain port (MODE=stls)
// or POP3_SSL (MODE=ssl), connecting to 127.0.0.1 while verifying the
// certificate for HOST; it writes RETR n to OUT.n for every message.
const tlsPython = `
import os, poplib, socket, ssl
host, port, mode, out = os.environ["HOST"], int(os.environ["PORT"]), os.environ["MODE"], os.environ["OUT"]
ctx = ssl.create_default_context(cafile=os.environ["CAFILE"])

class Plain(poplib.POP3):
    def _create_socket(self, timeout):
        return socket.create_connection(("127.0.0.1", self.port), timeout)

class Implicit(poplib.POP3_SSL):
    def _create_socket(self, timeout):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout)
        return self.context.wrap_socket(sock, server_hostname=self.host)

if mode == "stls":
    p = Plain(host, port, timeout=30)
    p.stls(ctx)
    assert "STLS" not in p.capa(), "CAPA after STLS offers STLS"
else:
    p = Implicit(host, port, context=ctx, timeout=30)
print("tls", p.sock.version())
p.user(os.environ["POP_USER"])
p.pass_(os.environ["POP_PASS"])
count, _ = p.stat()
for n in range(1, count + 1):
    resp, lines, octets = p.retr(n)
    with open(out + "." + str(n), "wb") as f:
        f.write(b"".join(l + b"\r\n" for l in lines))
p.quit()
print("done", count)
`

// tlsRun runs a client program with a one-minute timeout and returns its
// combined output; a failure is fatal.
func tlsRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = t.TempDir()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestTLSClients drives popgate with python3 poplib, curl and fetchmail,
// over STLS (require_tls = true) and over implicit TLS, each verifying the
// certificate for pop.popgate.test against the test CA.
func TestTLSClients(t *testing.T) {
	pki, _, addrs := tlsSTLSConfig(t, true, "")
	pw := itPassword(t, "a", "alice")
	want := tlsAliceMessages(t)
	modes := []struct{ name, addr string }{{"stls", addrs[0]}, {"ssl", addrs[2]}}

	for _, m := range modes {
		t.Run("python/"+m.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "retr")
			got := tlsRun(t, []string{"HOST=" + tlsPopName, "PORT=" + tlsPort(m.addr), "MODE=" + m.name,
				"OUT=" + out, "CAFILE=" + pki.CAFile, "POP_USER=alice", "POP_PASS=" + pw},
				"python3", "-c", tlsPython)
			if !strings.Contains(got, "tls TLSv1.3") || !strings.Contains(got, fmt.Sprintf("done %d", len(want))) {
				t.Errorf("python output: %s", got)
			}
			for i, w := range want {
				body, err := os.ReadFile(fmt.Sprintf("%s.%d", out, i+1))
				if err != nil || !bytes.Equal(body, w) {
					t.Errorf("python RETR %d: %v, %d octets, want %d", i+1, err, len(body), len(w))
				}
			}
		})
	}

	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine "+tlsPopName+" login alice password "+pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range modes {
		t.Run("curl/"+m.name, func(t *testing.T) {
			scheme := map[string]string{"stls": "pop3", "ssl": "pop3s"}[m.name]
			for _, n := range []int{2, 3} {
				out := filepath.Join(t.TempDir(), "msg")
				tlsRun(t, nil, "curl", "-sS", "--ssl-reqd", "--max-time", "30", "--cacert", pki.CAFile,
					"--resolve", tlsPopName+":"+tlsPort(m.addr)+":127.0.0.1", "--netrc-file", netrc, "-o", out,
					fmt.Sprintf("%s://%s:%s/%d", scheme, tlsPopName, tlsPort(m.addr), n))
				body, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(body, want[n-1]) {
					t.Errorf("curl RETR %d: %v, got %q, want %q", n, err, body, want[n-1])
				}
			}
			// The wrong name is refused by curl's verification.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "curl", "-sS", "--ssl-reqd", "--cacert", pki.CAFile,
				"--resolve", tlsOtherName+":"+tlsPort(m.addr)+":127.0.0.1", "--netrc-file", netrc,
				fmt.Sprintf("%s://%s:%s/1", scheme, tlsOtherName, tlsPort(m.addr)))
			if out, err := cmd.CombinedOutput(); err == nil {
				t.Errorf("curl accepted the certificate for %s:\n%s", tlsOtherName, out)
			}
		})
	}

	for _, m := range modes {
		t.Run("fetchmail/"+m.name, func(t *testing.T) {
			dir := t.TempDir()
			sink := filepath.Join(dir, "mbox")
			rc := filepath.Join(dir, "fetchmailrc")
			rcText := fmt.Sprintf("poll %s via 127.0.0.1 port %s protocol POP3 timeout 30\n  user \"alice\" there with password \"%s\" is \"root\" here\n",
				tlsPopName, tlsPort(m.addr), pw)
			if err := os.WriteFile(rc, []byte(rcText), 0o600); err != nil {
				t.Fatal(err)
			}
			args := []string{"-f", rc, "--nosyslog", "--keep", "--fetchall", "-v",
				"--sslcertck", "--sslcertfile", pki.CAFile, "--sslcommonname", tlsPopName,
				"--mda", "/bin/sh -c 'cat >> " + sink + "'"}
			if m.name == "ssl" {
				args = append(args, "--ssl")
			} else {
				args = append(args, "--sslproto", "TLS1.2+")
			}
			out := tlsRun(t, []string{"HOME=" + dir, "FETCHMAILHOME=" + dir}, "fetchmail", args...)
			if m.name == "stls" && !strings.Contains(out, "POP3> STLS") {
				t.Errorf("fetchmail did not use STLS:\n%s", out)
			}
			if !strings.Contains(out, "6 messages") {
				t.Errorf("fetchmail did not see alice's 6 messages:\n%s", out)
			}
			mbox, err := os.ReadFile(sink)
			if err != nil {
				t.Fatal(err)
			}
			// fetchmail delivers each message with LF line ends after a
			// three-line Received header of its own; the rest is the
			// message exactly.
			parts := strings.Split(string(mbox), "Received: from 127.0.0.1 ")
			if len(parts) != len(want)+1 || parts[0] != "" {
				t.Fatalf("fetchmail delivered %d messages, want %d:\n%s", len(parts)-1, len(want), mbox)
			}
			for i, w := range want {
				_, msg, _ := strings.Cut(parts[i+1], "\n\t")
				_, msg, _ = strings.Cut(msg, "\n\t")
				_, msg, _ = strings.Cut(msg, "\n")
				if lf := strings.ReplaceAll(string(w), "\r\n", "\n"); msg != lf {
					t.Errorf("fetched message %d:\n%q\nwant:\n%q", i+1, msg, lf)
				}
			}
		})
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
