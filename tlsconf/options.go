package tlsconf

import (
	"crypto/tls"
	"fmt"
	"path/filepath"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"
)

// Certificate names one static certificate: a PEM certificate chain (leaf
// first) and its PEM private key.
type Certificate struct {
	CertFile string
	KeyFile  string
}

// ACME configures automatic certificates through an RFC 8555 CA.
type ACME struct {
	// Domains are the names to obtain certificates for (at least one).
	// The first one is also served to clients whose SNI matches nothing.
	Domains []string
	// Email is the ACME account contact; it is required because certmagic
	// would otherwise prompt on standard input.
	Email string
	// Directory is the CA's directory URL; "" means Let's Encrypt production.
	Directory string
	// CAFile is a PEM bundle trusted for the CA's HTTPS API; "" means the
	// system roots.
	CAFile string
	// Storage is the directory for accounts, keys and certificates;
	// "" means StateDir/acme.
	Storage string
	// HTTPPort and TLSALPNPort are the ports the HTTP-01 and TLS-ALPN-01
	// challenge solvers listen on (the CA connects to 80 and 443, so in
	// production they are 80 and 443 or forwarded there); 0 means
	// certmagic's default (80 and 443).
	HTTPPort, TLSALPNPort int
	// ListenHost is the address the challenge solvers bind; "" means all.
	ListenHost string
	// Profile is the ACME profile requested in orders; "" means none.
	Profile string
	// SharedStorage, when set and Storage is "", keeps accounts, keys,
	// certificates, locks and challenge tokens in a storage that several
	// instances share (package cluster's Redis storage): one instance
	// orders and renews, all serve the certificates, and each answers the
	// challenge ports for as long as it runs, since the CA may reach any.
	SharedStorage certmagic.Storage
}

// Options configures a Manager. The zero value is usable: it serves a
// self-signed certificate kept in memory only.
type Options struct {
	// Certificates are the static certificates; the first is the default.
	Certificates []Certificate
	// ACME enables automatic certificates; nil means no ACME.
	ACME *ACME
	// StateDir holds the self-signed fallback (StateDir/selfsigned/) and,
	// by default, ACME storage. "" keeps the fallback in memory only.
	StateDir string
	// SelfSignedNames are the DNS names and IP addresses of the self-signed
	// fallback; nil means localhost, 127.0.0.1 and ::1.
	SelfSignedNames []string
	// MinVersion is the lowest TLS version offered to clients:
	// 0 or tls.VersionTLS12 (the default), or tls.VersionTLS13.
	MinVersion uint16
	// Logger receives certificate events; nil discards them.
	Logger hclog.Logger
}

// DefaultSelfSignedNames returns the names of the self-signed fallback
// when Options.SelfSignedNames is empty: localhost, 127.0.0.1 and ::1.
func DefaultSelfSignedNames() []string {
	return []string{"localhost", "127.0.0.1", "::1"}
}

// serverMinVersion validates Options.MinVersion (RFC 8996, RFC 8314).
func serverMinVersion(v uint16) (uint16, error) {
	switch v {
	case 0:
		return tls.VersionTLS12, nil
	case tls.VersionTLS12, tls.VersionTLS13:
		return v, nil
	default:
		return 0, fmt.Errorf("tlsconf: minimum TLS version %#04x not allowed for clients (only TLS 1.2 or 1.3, RFC 8996)", v)
	}
}

// logger returns the configured logger or a discarding one.
func (o *Options) logger() hclog.Logger {
	if o.Logger == nil {
		return hclog.NewNullLogger()
	}
	return o.Logger
}

// selfSignedNames returns the names for the self-signed fallback.
func (o *Options) selfSignedNames() []string {
	if len(o.SelfSignedNames) == 0 {
		return DefaultSelfSignedNames()
	}
	return o.SelfSignedNames
}

// acmeStorage returns the ACME storage directory.
func (o *Options) acmeStorage() (string, error) {
	if o.ACME.Storage != "" {
		return o.ACME.Storage, nil
	}
	if o.StateDir == "" {
		return "", fmt.Errorf("tlsconf: acme: storage directory needed (set ACME.Storage or StateDir)")
	}
	return filepath.Join(o.StateDir, "acme"), nil
}
