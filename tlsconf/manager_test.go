package tlsconf

import (
	"context"
	"crypto/tls"
	"testing"
)

// newStaticManager builds a Manager over the given pairs, written to a
// temporary directory in order.
func newStaticManager(t *testing.T, minVersion uint16, pairs ...testPair) *Manager {
	t.Helper()
	dir := t.TempDir()
	opts := Options{MinVersion: minVersion, StateDir: t.TempDir()}
	for i, p := range pairs {
		opts.Certificates = append(opts.Certificates, p.write(t, dir, string(rune('a'+i))))
	}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestStaticSNISelection(t *testing.T) {
	ca := newTestCA(t)
	one := ca.issue(t, "one.test")
	two := ca.issue(t, "two.test", "*.two.test", "127.0.0.1")
	m := newStaticManager(t, 0, one, two)
	addr := serveEcho(t, m.ServerConfig())

	tests := []struct {
		name, sni string
		want      testPair
	}{
		{"exact first", "one.test", one},
		{"exact second", "two.test", two},
		{"case and trailing dot", "Two.TEST.", two},
		{"wildcard", "pop.two.test", two},
		{"wildcard is one label deep", "a.pop.two.test", one},
		{"unknown name gets the first", "three.test", one},
		{"no SNI matches the local IP", "", two},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := servedLeaf(t, addr, tc.sni)
			if !sameCert(got, tc.want.leaf) {
				t.Errorf("SNI %q served %v, want %v", tc.sni, got.DNSNames, tc.want.leaf.DNSNames)
			}
		})
	}
}

func TestExactStaticBeatsWildcard(t *testing.T) {
	ca := newTestCA(t)
	wild := ca.issue(t, "*.example.test")
	exact := ca.issue(t, "pop.example.test")
	m := newStaticManager(t, 0, wild, exact)
	addr := serveEcho(t, m.ServerConfig())
	if got := servedLeaf(t, addr, "pop.example.test"); !sameCert(got, exact.leaf) {
		t.Errorf("pop.example.test served %v, want the exact certificate", got.DNSNames)
	}
	if got := servedLeaf(t, addr, "imap.example.test"); !sameCert(got, wild.leaf) {
		t.Errorf("imap.example.test served %v, want the wildcard certificate", got.DNSNames)
	}
}

func TestMinVersion13RefusesTLS12Client(t *testing.T) {
	ca := newTestCA(t)
	m := newStaticManager(t, tls.VersionTLS13, ca.issue(t, "pop.test"))
	addr := serveEcho(t, m.ServerConfig())

	if _, err := dial(t, addr, &tls.Config{ServerName: "pop.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err == nil {
		t.Fatal("a TLS 1.2-only client completed a handshake with MinVersion TLS 1.3")
	}
	conn, err := dial(t, addr, &tls.Config{ServerName: "pop.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("TLS 1.3 client: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %#04x, want TLS 1.3", v)
	}
}

func TestDefaultMinVersionIsTLS12(t *testing.T) {
	ca := newTestCA(t)
	m := newStaticManager(t, 0, ca.issue(t, "pop.test"))
	if got := m.ServerConfig().MinVersion; got != tls.VersionTLS12 {
		t.Errorf("MinVersion = %#04x, want TLS 1.2", got)
	}
	addr := serveEcho(t, m.ServerConfig())
	if _, err := dial(t, addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS11, MinVersion: tls.VersionTLS10}); err == nil {
		t.Error("a TLS 1.1 client completed a handshake")
	}
	if _, err := dial(t, addr, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12}); err != nil {
		t.Errorf("TLS 1.2 client: %v", err)
	}
}

func TestNewRejectsOldMinVersion(t *testing.T) {
	for _, v := range []uint16{tls.VersionTLS10, tls.VersionTLS11, 0x0305} {
		if _, err := New(context.Background(), Options{MinVersion: v}); err == nil {
			t.Errorf("New accepted MinVersion %#04x", v)
		}
	}
}

func TestNewFailsOnBrokenStaticCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	c := ca.issue(t, "pop.test").write(t, dir, "pop")
	writeFile(t, c.KeyFile, []byte("not a key"))
	if _, err := New(context.Background(), Options{Certificates: []Certificate{c}}); err == nil {
		t.Error("New accepted a certificate whose key file is garbage")
	}
	missing := Certificate{CertFile: dir + "/missing.crt", KeyFile: dir + "/missing.key"}
	if _, err := New(context.Background(), Options{Certificates: []Certificate{missing}}); !isNotExist(err) {
		t.Errorf("New with missing files: err = %v, want a not-exist error", err)
	}
}

func TestALPNPop3NotRefused(t *testing.T) {
	ca := newTestCA(t)
	m := newStaticManager(t, 0, ca.issue(t, "pop.test"))
	addr := serveEcho(t, m.ServerConfig())
	conn, err := dial(t, addr, &tls.Config{ServerName: "pop.test", InsecureSkipVerify: true, NextProtos: []string{"pop3"}})
	if err != nil {
		t.Fatalf("client offering ALPN pop3: %v", err)
	}
	if p := conn.ConnectionState().NegotiatedProtocol; p != "" {
		t.Errorf("negotiated ALPN %q, want none", p)
	}
}

func TestIsACMEChallenge(t *testing.T) {
	tests := []struct {
		sni    string
		protos []string
		want   bool
	}{
		{"pop.test", []string{"acme-tls/1"}, true},
		{"", []string{"acme-tls/1"}, false},
		{"pop.test", []string{"pop3", "acme-tls/1"}, false},
		{"pop.test", nil, false},
	}
	for _, tc := range tests {
		hello := &tls.ClientHelloInfo{ServerName: tc.sni, SupportedProtos: tc.protos}
		if got := isACMEChallenge(hello); got != tc.want {
			t.Errorf("isACMEChallenge(%q, %q) = %v, want %v", tc.sni, tc.protos, got, tc.want)
		}
	}
}

func TestConnectionInfo(t *testing.T) {
	ca := newTestCA(t)
	m := newStaticManager(t, 0, ca.issue(t, "pop.test"))
	addr := serveEcho(t, m.ServerConfig())
	conn, err := dial(t, addr, &tls.Config{ServerName: "pop.test", InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	cs := conn.ConnectionState()
	version, cipher, sni := ConnectionInfo(cs)
	if version != "TLS1.2" || sni != "pop.test" || cipher != tls.CipherSuiteName(cs.CipherSuite) || cipher == "" {
		t.Errorf("ConnectionInfo = %q, %q, %q", version, cipher, sni)
	}
	if v, c, s := ConnectionInfo(tls.ConnectionState{}); v != "" || c != "" || s != "" {
		t.Errorf("ConnectionInfo before handshake = %q, %q, %q, want empty", v, c, s)
	}
	for v, want := range map[uint16]string{
		tls.VersionTLS10: "TLS1.0", tls.VersionTLS11: "TLS1.1",
		tls.VersionTLS12: "TLS1.2", tls.VersionTLS13: "TLS1.3", 0x7f17: "0x7f17",
	} {
		if got := versionName(v); got != want {
			t.Errorf("versionName(%#04x) = %q, want %q", v, got, want)
		}
	}
}
