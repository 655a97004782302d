//go:build integration

package integration

// Helpers of the TestTLS tests in tls_*_test.go (the ACME tests with
// Pebble in tls_acme_test.go included): a private CA per test (tlsPKI) issuing leaf certificates,
// HCL snippets for tls blocks, listeners and Dovecot A as a plain backend,
// checks of a TLS client connection, and tlsSTLSConfig, the popgate with
// STLS and implicit TLS listeners that most of these tests share.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
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
