package tlsconf

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestReloadSwapsCertificatesForNewHandshakes(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	oldPair := ca.issue(t, "pop.test")
	newPair := ca.issue(t, "pop.test")
	opts := Options{Certificates: []Certificate{oldPair.write(t, dir, "pop")}}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr := serveEcho(t, m.ServerConfig())

	established, err := dial(t, addr, clientFor("pop.test"))
	if err != nil {
		t.Fatal(err)
	}
	echo(t, established, "before reload\r\n")

	newPair.write(t, dir, "pop")
	if err := m.Reload(opts); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if got := servedLeaf(t, addr, "pop.test"); !sameCert(got, newPair.leaf) {
		t.Error("a handshake after Reload did not get the new certificate")
	}
	echo(t, established, "after reload\r\n")
	if got := established.ConnectionState().PeerCertificates[0]; !sameCert(got, oldPair.leaf) {
		t.Error("the established connection's certificate changed")
	}
}

func TestReloadWithBrokenFilesKeepsOldCertificates(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	good := ca.issue(t, "pop.test")
	other := ca.issue(t, "pop.test")
	extra := ca.issue(t, "extra.test")
	var logBuf bytes.Buffer
	log := hclog.New(&hclog.LoggerOptions{Output: &logBuf, Level: hclog.Info})
	opts := Options{Certificates: []Certificate{good.write(t, dir, "pop")}, Logger: log}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr := serveEcho(t, m.ServerConfig())

	tests := []struct {
		name    string
		breakIt func(t *testing.T) Options
	}{
		{"garbage certificate", func(t *testing.T) Options {
			writeFile(t, opts.Certificates[0].CertFile, []byte("-----BEGIN CERTIFICATE-----\nnot base64\n"))
			return opts
		}},
		{"key of another certificate", func(t *testing.T) Options {
			writeFile(t, opts.Certificates[0].CertFile, other.certPEM)
			writeFile(t, opts.Certificates[0].KeyFile, good.keyPEM)
			return opts
		}},
		{"second file missing", func(t *testing.T) Options {
			o := opts
			ok := extra.write(t, dir, "extra")
			o.Certificates = []Certificate{ok, {CertFile: dir + "/nope.crt", KeyFile: dir + "/nope.key"}}
			return o
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := m.Reload(tc.breakIt(t)); err == nil {
				t.Fatal("Reload succeeded with a broken certificate")
			}
			if got := servedLeaf(t, addr, "pop.test"); !sameCert(got, good.leaf) {
				t.Error("the old certificate was not kept")
			}
			if got := servedLeaf(t, addr, "extra.test"); !sameCert(got, good.leaf) {
				t.Error("part of a failed reload was installed")
			}
		})
	}
	if !strings.Contains(logBuf.String(), "keeping the current ones") {
		t.Errorf("failed reload not logged; log:\n%s", logBuf.String())
	}
}

func TestReloadToNoCertificatesFallsBackToSelfSigned(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	pair := ca.issue(t, "pop.test")
	opts := Options{Certificates: []Certificate{pair.write(t, dir, "pop")}, StateDir: t.TempDir()}
	m, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	addr := serveEcho(t, m.ServerConfig())
	opts.Certificates = nil
	if err := m.Reload(opts); err != nil {
		t.Fatal(err)
	}
	got := servedLeaf(t, addr, "localhost")
	if sameCert(got, pair.leaf) || got.Subject.CommonName == "" || got.CheckSignature(got.SignatureAlgorithm, got.RawTBSCertificate, got.Signature) != nil {
		t.Errorf("after removing every certificate the server presents %v, want the self-signed fallback", got.Subject)
	}
}
