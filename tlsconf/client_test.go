package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"path/filepath"
	"testing"
)

func TestClientConfigVerifiesWithCAFile(t *testing.T) {
	ca := newTestCA(t)
	pair := ca.issue(t, "backend.test")
	cert, err := tls.X509KeyPair(pair.certPEM, pair.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	addr := serveEcho(t, &tls.Config{Certificates: []tls.Certificate{cert}})

	good, err := ClientConfig("backend.test", ca.pemFile, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	if good.ServerName != "backend.test" || good.MinVersion != tls.VersionTLS12 || good.RootCAs == nil || good.InsecureSkipVerify {
		t.Errorf("ClientConfig = ServerName %q MinVersion %#04x RootCAs %v Insecure %v",
			good.ServerName, good.MinVersion, good.RootCAs, good.InsecureSkipVerify)
	}
	conn, err := dial(t, addr, good)
	if err != nil {
		t.Fatalf("handshake for the right name: %v", err)
	}
	echo(t, conn, "+OK\r\n")

	wrong, err := ClientConfig("other.test", ca.pemFile, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, addr, wrong)
	var hostErr x509.HostnameError
	if !errors.As(err, &hostErr) {
		t.Errorf("handshake for the wrong name: err = %v, want a hostname error", err)
	}

	otherCA := newTestCA(t)
	untrusted, err := ClientConfig("backend.test", otherCA.pemFile, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = dial(t, addr, untrusted)
	var authErr x509.UnknownAuthorityError
	if !errors.As(err, &authErr) {
		t.Errorf("handshake against another CA: err = %v, want an unknown authority error", err)
	}

	insecure, err := ClientConfig("other.test", "", true, tls.VersionTLS13)
	if err != nil {
		t.Fatal(err)
	}
	if insecure.RootCAs != nil || !insecure.InsecureSkipVerify {
		t.Error("insecure config has roots or verifies")
	}
	conn, err = dial(t, addr, insecure)
	if err != nil {
		t.Fatalf("insecure handshake: %v", err)
	}
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Errorf("negotiated %#04x with MinVersion TLS 1.3", v)
	}
}

func TestClientConfigErrors(t *testing.T) {
	dir := t.TempDir()
	noCerts := filepath.Join(dir, "empty.pem")
	writeFile(t, noCerts, []byte("no PEM here\n"))
	tests := []struct {
		name, caFile string
		min          uint16
	}{
		{"unreadable CA file", filepath.Join(dir, "missing.pem"), 0},
		{"CA file without certificates", noCerts, 0},
		{"unknown version", "", 0x0200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if cfg, err := ClientConfig("backend.test", tc.caFile, false, tc.min); err == nil {
				t.Errorf("ClientConfig = %v, want an error", cfg)
			}
		})
	}
}

func TestClientConfigSystemRootsAndLegacyVersion(t *testing.T) {
	cfg, err := ClientConfig("backend.test", "", false, tls.VersionTLS10)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RootCAs != nil {
		t.Error("RootCAs set without a CA file; want nil for the system roots")
	}
	if cfg.MinVersion != tls.VersionTLS10 {
		t.Errorf("MinVersion = %#04x, want TLS 1.0 for a legacy backend", cfg.MinVersion)
	}
}
