//go:build integration

package tlsconf_test

import (
	"context"
	"crypto/tls"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/tlsconf"
)

// TestACMECertificatesExpiry obtains a certificate from Pebble and checks
// that Certificates reports it as ACME-managed, with the expiry of the
// certificate handshakes are served.
func TestACMECertificatesExpiry(t *testing.T) {
	env := pebbleEnv(t, "PEBBLE_DIR", "PEBBLE_CA", "PEBBLE_MGMT")
	const domain = "status.popgate.test"
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := tlsconf.New(ctx, tlsconf.Options{
		ACME: &tlsconf.ACME{
			Domains: []string{domain}, Email: "postmaster@popgate.test",
			Directory: env["PEBBLE_DIR"], CAFile: env["PEBBLE_CA"], Storage: t.TempDir(),
			HTTPPort: freePort(t), TLSALPNPort: freePort(t), ListenHost: "127.0.0.1", Profile: "default",
		},
		StateDir: t.TempDir(),
		Logger:   hclog.NewNullLogger(),
	})
	if err != nil {
		t.Fatalf("New with ACME: %v", err)
	}
	defer m.Close()
	served := handshake(t, serveTLS(t, m.ServerConfig()), &tls.Config{ServerName: domain, InsecureSkipVerify: true}).PeerCertificates[0]
	got := m.Certificates()
	if len(got) != 1 || got[0].Source != tlsconf.SourceACME || !slices.Equal(got[0].Names, []string{domain}) ||
		!got[0].NotAfter.Equal(served.NotAfter) {
		t.Errorf("Certificates() = %+v, want one %q certificate for %s expiring %v", got, tlsconf.SourceACME, domain, served.NotAfter)
	}
}
