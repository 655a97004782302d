package proxy

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"io"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/audit"
)

var _ OpaqueObserver = (*audit.Filter)(nil)

// The destination the intercepted clients of these tests meant to reach:
// a documentation address, never dialled (the listener's backend is an
// ordinary one on loopback); only certificates and the audit trail name it.
var testOrigDst = netip.MustParseAddrPort("192.0.2.7:110")

// testCA is a CA of a test: its certificate, key, and a pool trusting it.
type testCA struct {
	cert *tls.Certificate
	x509 *x509.Certificate
	pool *x509.CertPool
}

func newTestCA(t testing.TB, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(c)
	return &testCA{cert: &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, x509: c, pool: pool}
}

// leaf issues a server certificate for dnsName and 127.0.0.1.
func (ca *testCA) leaf(t testing.TB, dnsName string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: dnsName},
		DNSNames: []string{dnsName}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.x509, &key.PublicKey, ca.cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// stlsServer is a POP3 server of a test for one connection: it greets,
// answers CAPA (listing STLS) and STLS with stlsAnswer, and hands the
// connection to after once it accepted STLS. The commands it read are
// sent on cmds.
type stlsServer struct {
	ln   net.Listener
	cmds chan string
	done chan error
}

func newSTLSServer(t *testing.T, stlsAnswer string, after func(c net.Conn, r *bufio.Reader) error) *stlsServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stlsServer{ln: ln, cmds: make(chan string, 64), done: make(chan error, 1)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		c, err := ln.Accept()
		if err != nil {
			s.done <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		r := bufio.NewReader(c)
		io.WriteString(c, "+OK test server ready\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				s.done <- err
				return
			}
			cmd := strings.TrimRight(line, "\r\n")
			s.cmds <- cmd
			switch strings.ToUpper(cmd) {
			case "CAPA":
				io.WriteString(c, "+OK\r\nUSER\r\nSTLS\r\nPIPELINING\r\n.\r\n")
			case "STLS":
				io.WriteString(c, stlsAnswer+"\r\n")
				if strings.HasPrefix(stlsAnswer, "+OK") {
					s.done <- after(c, r)
					return
				}
			case "QUIT":
				io.WriteString(c, "+OK bye\r\n")
				s.done <- nil
				return
			default:
				io.WriteString(c, "+OK\r\n")
			}
		}
	}()
	return s
}

func (s *stlsServer) wait(t *testing.T) {
	t.Helper()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("server: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server did not finish")
	}
}

// stlsEndObserver signals the end of every session.
type stlsEndObserver struct{ ended chan filters.SessionEnd }

func (o *stlsEndObserver) Name() string                    { return "end-observer" }
func (o *stlsEndObserver) SessionStarted(*filters.Session) {}
func (o *stlsEndObserver) SessionEnded(_ *filters.Session, end filters.SessionEnd) {
	o.ended <- end
}

func (o *stlsEndObserver) wait(t *testing.T) filters.SessionEnd {
	t.Helper()
	select {
	case end := <-o.ended:
		return end
	case <-time.After(20 * time.Second):
		t.Fatal("the session did not end")
		return filters.SessionEnd{}
	}
}

// startIntercept starts popgate with an intercept listener in mode in
// front of backend, whose clients all meant to reach testOrigDst, with an
// audit trail and an end observer.
func startIntercept(t *testing.T, backend string, mode InterceptSTLSMode, mutate func(*Config)) (addr, trail string, ended *stlsEndObserver) {
	t.Helper()
	trail = filepath.Join(t.TempDir(), "audit.log")
	af, err := audit.New(audit.Config{Path: trail, Sync: audit.SyncRecord}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ended = &stlsEndObserver{ended: make(chan filters.SessionEnd, 4)}
	_, addr = startProxy(t, backend, func(c *Config) {
		l := &c.Listeners[0]
		l.Intercept = InterceptRedirect
		l.InterceptSTLS = mode
		l.originalDest = func(net.Conn) (netip.AddrPort, error) { return testOrigDst, nil }
		l.Filters = []filters.Filter{af, ended}
		if mutate != nil {
			mutate(c)
		}
	})
	t.Cleanup(func() { af.Close() })
	return addr, trail, ended
}

// trailEvents returns the audit trail's records.
func trailEvents(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var recs []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		m := map[string]any{}
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		recs = append(recs, m)
	}
	return recs
}

func findEvent(recs []map[string]any, event string) map[string]any {
	for _, r := range recs {
		if r["event"] == event {
			return r
		}
	}
	return nil
}

// capa sends CAPA and returns its lines.
func (c *testClient) capa() []string {
	c.t.Helper()
	c.send("CAPA\r\n")
	c.expect("+OK")
	return strings.Split(strings.TrimSpace(c.body()), "\r\n")
}

// TestInterceptTunnelRelaysSTLSAndThenTheOpaqueSession checks tunnel
// mode: CAPA keeps the server's STLS, STLS goes to the server, the
// client's TLS handshake is with the server itself (its certificate, not
// a minted one), the encrypted session and a half-close pass through
// untouched both ways, and the audit trail records that the session went
// opaque, with the original destination, and nothing of what followed.
func TestInterceptTunnelRelaysSTLSAndThenTheOpaqueSession(t *testing.T) {
	serverCA := newTestCA(t, "public CA")
	leaf := serverCA.leaf(t, "pop.example.test")
	srv := newSTLSServer(t, "+OK begin TLS", func(c net.Conn, r *bufio.Reader) error {
		if r.Buffered() > 0 {
			t.Error("server got plaintext after STLS")
		}
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{leaf}})
		tr := bufio.NewReader(tc)
		line, err := tr.ReadString('\n')
		if err != nil || line != "RETR 1\r\n" {
			t.Errorf("server read %q, %v; want RETR 1", line, err)
		}
		// The client half-closes: its end of stream reaches the server,
		// which answers only then.
		if rest, err := io.ReadAll(tr); err != nil || len(rest) != 0 {
			t.Errorf("server read %q, %v; want the client's end of stream", rest, err)
		}
		// close_notify is a TLS record that travels ahead of the TCP
		// end of stream: wait for the FIN too, which popgate passes on
		// only after it saw the client's, so the order of the two ends
		// is the one the test asserts.
		if rest, err := io.ReadAll(c); err != nil || len(rest) != 0 {
			t.Errorf("server read %q, %v after close_notify; want the end of stream", rest, err)
		}
		_, err = io.WriteString(tc, "+OK after your close\r\n")
		tc.Close()
		return err
	})
	addr, trail, ended := startIntercept(t, srv.ln.Addr().String(), InterceptSTLSTunnel, nil)

	c := dialClient(t, addr)
	c.expect("+OK test server ready")
	if capa := c.capa(); !contains(capa, "STLS") {
		t.Fatalf("CAPA %q lacks the server's STLS", capa)
	}
	c.send("STLS\r\n")
	c.expect("+OK begin TLS")
	tc := tls.Client(c.conn, &tls.Config{ServerName: "pop.example.test", RootCAs: serverCA.pool})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake with the server through the tunnel: %v", err)
	}
	if got := tc.ConnectionState().PeerCertificates[0].Issuer.CommonName; got != "public CA" {
		t.Errorf("certificate issued by %q, want the server's own", got)
	}
	io.WriteString(tc, "RETR 1\r\n")
	if err := tc.CloseWrite(); err != nil { // close_notify
		t.Fatal(err)
	}
	if err := c.conn.(*net.TCPConn).CloseWrite(); err != nil { // and the FIN
		t.Fatal(err)
	}
	line, err := bufio.NewReader(tc).ReadString('\n')
	if err != nil || line != "+OK after your close\r\n" {
		t.Fatalf("client read %q, %v", line, err)
	}
	srv.wait(t)
	end := ended.wait(t)
	if end.BytesIn < 100 || end.BytesOut < 100 {
		t.Errorf("tunnelled octets not counted: in %d, out %d", end.BytesIn, end.BytesOut)
	}

	recs := trailEvents(t, trail)
	op := findEvent(recs, audit.EventOpaque)
	if op == nil {
		t.Fatalf("no opaque record in %v", recs)
	}
	if op["how"] != "stls-tunnel" || op["original_dst"] != testOrigDst.String() {
		t.Errorf("opaque record %v", op)
	}
	for _, r := range recs {
		if r["event"] == audit.EventCommand && r["verb"] == "RETR" {
			t.Errorf("a tunnelled command reached the trail: %v", r)
		}
	}
	if e := findEvent(recs, audit.EventSessionEnd); e == nil || e["reason"] != "client-closed" {
		t.Errorf("session_end %v, want reason client-closed (the client ended its stream first)", e)
	}
}

// TestInterceptTunnelRelaysTheServersSTLSRefusal checks that a server
// refusing STLS is heard by the client as it is, and that the session
// goes on in plaintext only because the client goes on: popgate
// downgrades nothing.
func TestInterceptTunnelRelaysTheServersSTLSRefusal(t *testing.T) {
	srv := newSTLSServer(t, "-ERR [SYS/TEMP] no TLS today", nil)
	addr, trail, ended := startIntercept(t, srv.ln.Addr().String(), InterceptSTLSTunnel, nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("STLS\r\n")
	if got := c.line(); got != "-ERR [SYS/TEMP] no TLS today" {
		t.Fatalf("client got %q, want the server's own refusal", got)
	}
	c.send("QUIT\r\n")
	c.expect("+OK bye")
	srv.wait(t)
	ended.wait(t)
	if op := findEvent(trailEvents(t, trail), audit.EventOpaque); op != nil {
		t.Errorf("a refused STLS made the session opaque: %v", op)
	}
}

// TestInterceptRefuseAnswersSTLSWithErrAndHidesIt checks refuse mode:
// CAPA lacks STLS though the server lists it, STLS is answered -ERR by
// popgate and never reaches the server.
func TestInterceptRefuseAnswersSTLSWithErrAndHidesIt(t *testing.T) {
	srv := newSTLSServer(t, "+OK begin TLS", func(net.Conn, *bufio.Reader) error { return nil })
	addr, _, ended := startIntercept(t, srv.ln.Addr().String(), InterceptSTLSRefuse, nil)
	c := dialClient(t, addr)
	c.expect("+OK")
	if capa := c.capa(); contains(capa, "STLS") {
		t.Errorf("CAPA %q offers STLS in refuse mode", capa)
	}
	c.send("STLS\r\n")
	c.expect("-ERR")
	c.send("QUIT\r\n")
	c.expect("+OK bye")
	srv.wait(t)
	ended.wait(t)
	close(srv.cmds)
	for cmd := range srv.cmds {
		if cmd == "STLS" {
			t.Error("STLS reached the server in refuse mode")
		}
	}
}

// TestInterceptInspectMintsForTheDestinationAndVerifiesTheServer checks
// inspect mode: the client's STLS is accepted with a certificate the
// organisational CA minted for the client's server name and the original
// destination, popgate speaks STLS to the server and verifies it against
// the backend's roots under the client's server name, and the filters
// see the decrypted session.
func TestInterceptInspectMintsForTheDestinationAndVerifiesTheServer(t *testing.T) {
	orgCA, serverCA := newTestCA(t, "org CA"), newTestCA(t, "public CA")
	leaf := serverCA.leaf(t, "pop.example.test")
	sni := make(chan string, 1)
	srv := newSTLSServer(t, "+OK begin TLS", func(c net.Conn, _ *bufio.Reader) error {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{leaf},
			GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) { sni <- h.ServerName; return nil, nil }})
		r := bufio.NewReader(tc)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return err
			}
			switch strings.TrimSpace(line) {
			case "STAT":
				io.WriteString(tc, "+OK 2 320\r\n")
			case "USER a":
				io.WriteString(tc, "+OK\r\n")
			case "PASS secret":
				io.WriteString(tc, "+OK logged in\r\n")
			case "QUIT":
				io.WriteString(tc, "+OK bye\r\n")
				return nil
			default:
				io.WriteString(tc, "-ERR what\r\n")
			}
		}
	})
	addr, trail, ended := startIntercept(t, srv.ln.Addr().String(), InterceptSTLSInspect, func(c *Config) {
		c.Listeners[0].InterceptCA = orgCA.cert
		c.Backends["b"].TLSConfig = &tls.Config{RootCAs: serverCA.pool, MinVersion: tls.VersionTLS12}
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	if capa := c.capa(); !contains(capa, "STLS") {
		t.Fatalf("CAPA %q lacks STLS in inspect mode", capa)
	}
	c.send("STLS\r\n")
	c.expect("+OK")
	tc := tls.Client(c.conn, &tls.Config{ServerName: "pop.example.test", RootCAs: orgCA.pool})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("the client does not trust the minted certificate: %v", err)
	}
	got := tc.ConnectionState().PeerCertificates[0]
	if got.Issuer.CommonName != "org CA" || !contains(got.DNSNames, "pop.example.test") ||
		len(got.IPAddresses) != 1 || !got.IPAddresses[0].Equal(testOrigDst.Addr().AsSlice()) {
		t.Errorf("minted certificate: issuer %q, DNS %v, IP %v", got.Issuer.CommonName, got.DNSNames, got.IPAddresses)
	}
	if err := got.VerifyHostname(testOrigDst.Addr().String()); err != nil {
		t.Errorf("minted certificate does not name the destination address: %v", err)
	}
	if n := <-sni; n != "pop.example.test" {
		t.Errorf("popgate asked the server for %q, want the client's server name", n)
	}
	c.conn, c.r = tc, bufio.NewReader(tc)
	c.send("USER a\r\nPASS secret\r\n")
	c.expect("+OK")
	c.expect("+OK logged in")
	c.send("STAT\r\n")
	c.expect("+OK 2 320")
	c.send("QUIT\r\n")
	c.expect("+OK bye")
	srv.wait(t)
	ended.wait(t)
	recs := trailEvents(t, trail)
	if findEvent(recs, audit.EventTLS) == nil {
		t.Errorf("no tls record in %v", recs)
	}
	stat := false
	for _, r := range recs {
		stat = stat || r["event"] == audit.EventCommand && r["verb"] == "STAT"
	}
	if !stat || findEvent(recs, audit.EventOpaque) != nil {
		t.Errorf("the filters did not see the decrypted session: %v", recs)
	}
}

// TestInterceptInspectRefusesAnUnverifiedServer checks that a server
// whose certificate does not chain to the backend's roots never gets the
// session: the client is told and the session ends.
func TestInterceptInspectRefusesAnUnverifiedServer(t *testing.T) {
	orgCA, rogueCA := newTestCA(t, "org CA"), newTestCA(t, "rogue CA")
	leaf := rogueCA.leaf(t, "pop.example.test")
	srv := newSTLSServer(t, "+OK begin TLS", func(c net.Conn, _ *bufio.Reader) error {
		tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{leaf}})
		if tc.Handshake() == nil {
			t.Error("popgate accepted a server it cannot verify")
		}
		return nil
	})
	addr, _, ended := startIntercept(t, srv.ln.Addr().String(), InterceptSTLSInspect, func(c *Config) {
		c.Listeners[0].InterceptCA = orgCA.cert
		c.Backends["b"].TLSConfig = &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	})
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("STLS\r\n")
	c.expect("+OK")
	tc := tls.Client(c.conn, &tls.Config{ServerName: "pop.example.test", RootCAs: orgCA.pool})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(tc).ReadString('\n')
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP]") {
		t.Errorf("client got %q, want -ERR [SYS/TEMP]", line)
	}
	srv.wait(t)
	if end := ended.wait(t); end.Reason != "backend-error" {
		t.Errorf("reason %q, want backend-error", end.Reason)
	}
}

// TestInterceptInspectImplicitTLS checks inspect mode on an implicit-TLS
// listener (995): the handshake is answered with a certificate minted for
// the client's server name and the destination, and the server is dialled
// with TLS and verified; no server TLS configuration is needed.
func TestInterceptInspectImplicitTLS(t *testing.T) {
	orgCA, serverCA := newTestCA(t, "org CA"), newTestCA(t, "public CA")
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{serverCA.leaf(t, "pop.example.test")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			served <- err
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(20 * time.Second))
		io.WriteString(c, "+OK tls server ready\r\n")
		line, err := bufio.NewReader(c).ReadString('\n')
		if err == nil && line == "QUIT\r\n" {
			_, err = io.WriteString(c, "+OK bye\r\n")
		}
		served <- err
	}()
	addr, _, ended := startIntercept(t, ln.Addr().String(), InterceptSTLSInspect, func(c *Config) {
		c.Listeners[0].TLS = TLSImplicit
		c.Listeners[0].InterceptCA = orgCA.cert
		c.Backends["b"].TLSConfig = &tls.Config{RootCAs: serverCA.pool, MinVersion: tls.VersionTLS12}
	})
	conn, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "pop.example.test", RootCAs: orgCA.pool})
	if err != nil {
		t.Fatalf("the client does not trust the minted certificate: %v", err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if iss := conn.ConnectionState().PeerCertificates[0].Issuer.CommonName; iss != "org CA" {
		t.Errorf("issuer %q, want org CA", iss)
	}
	c := &testClient{t: t, conn: conn, r: bufio.NewReader(conn)}
	c.expect("+OK tls server ready")
	c.send("QUIT\r\n")
	c.expect("+OK bye")
	if err := <-served; err != nil {
		t.Errorf("server: %v", err)
	}
	ended.wait(t)
}
