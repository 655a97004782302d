package proxy

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
)

// Helpers of the Go tests that drive popgate themselves (the transcripts
// in testdata/transcripts need none of them): a line-level client, a
// proxy in front of a backend, and a few small filters.

// testClient is a POP3 client of a test, reading line by line.
type testClient struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

func dialClient(t testing.TB, addr string) *testClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(20 * time.Second))
	t.Cleanup(func() { c.Close() })
	return &testClient{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *testClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *testClient) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line without CRLF: %q", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

func (c *testClient) expect(prefix string) string {
	c.t.Helper()
	l := c.line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want prefix %q", l, prefix)
	}
	return l
}

// body reads a multi-line body raw (still stuffed) up to the terminator.
func (c *testClient) body() string {
	c.t.Helper()
	var b strings.Builder
	for {
		l := c.line()
		if l == "." {
			return b.String()
		}
		b.WriteString(l + "\r\n")
	}
}

// login reads the greeting and logs in with USER/PASS (the mailbox's
// password).
func (c *testClient) login() {
	c.t.Helper()
	c.expect("+OK")
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
}

// startProxy starts popgate with one on-accept listener in front of
// backend, after mutate edited its configuration.
func startProxy(t testing.TB, backend string, mutate func(*Config)) (*Server, string) {
	t.Helper()
	cfg := &Config{
		Listeners: []Listener{{Name: "test", Address: "127.0.0.1:0", Backend: "b", Connect: ConnectOnAccept}},
		Backends:  map[string]*Backend{"b": {Name: "b", Address: backend, ConnectTimeout: 2 * time.Second}},
	}
	if mutate != nil {
		mutate(cfg)
	}
	srv := New(hclog.NewNullLogger())
	if err := srv.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv, srv.Addr("test").String()
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func b64decode(s string) (string, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	return string(b), err
}

// loginObserver is a filter that only observes session ends.
type loginObserver struct{ ended chan filters.Login }

func (o *loginObserver) Name() string                    { return "login-observer" }
func (o *loginObserver) SessionStarted(*filters.Session) {}
func (o *loginObserver) SessionEnded(s *filters.Session, _ filters.SessionEnd) {
	o.ended <- s.Login
}

// secretsVerifier is a password verifier filter with fixed secrets.
type secretsVerifier map[string]string

func (v secretsVerifier) Name() string { return "verifier" }
func (v secretsVerifier) VerifyPassword(user, password string) bool {
	want, ok := v[user]
	return ok && want == password
}

var (
	testTLSOnce sync.Once
	testTLS     *tls.Config
)

// testTLSConfig is a server configuration with a self-signed ECDSA P-256
// certificate for localhost, made once per test binary.
func testTLSConfig(t testing.TB) *tls.Config {
	t.Helper()
	testTLSOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1),
			Subject:      pkix.Name{CommonName: "localhost"},
			DNSNames:     []string{"localhost"},
			NotBefore:    time.Now().Add(-time.Hour),
			NotAfter:     time.Now().Add(24 * time.Hour),
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		testTLS = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	})
	if testTLS == nil {
		t.Fatal("no test certificate")
	}
	return testTLS.Clone()
}

// reviewTLSConfig is testTLSConfig under the name the fuzz test
// (fuzz_session_test.go, owned elsewhere) still calls it by.
func reviewTLSConfig(t testing.TB) *tls.Config { return testTLSConfig(t) }
