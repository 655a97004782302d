package tlsconf

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hashicorp/go-hclog"
	"github.com/mholt/acmez/v3"
)

// defaultObtainTimeout bounds New's wait for ACME certificates when the
// caller's context has no deadline.
const defaultObtainTimeout = 2 * time.Minute

// acmeManager is the certmagic machinery for the ACME-managed names: a
// private Cache and Config with one ACMEIssuer. certmagic's package-level
// Default and DefaultACME are never written.
type acmeManager struct {
	cache *certmagic.Cache
	magic *certmagic.Config
	// exact holds the managed names; wildcard the parents of "*." names.
	exact    map[string]bool
	wildcard map[string]bool
	// alpn is the configuration for TLS-ALPN-01 challenge handshakes.
	alpn *tls.Config
	// challenges answer validations all the time, with a shared storage
	// (challenges.go); nil otherwise.
	challenges *challengeServers
}

// startACME validates opts.ACME, builds the certmagic objects and obtains
// or loads the certificates, bounded by ctx (or defaultObtainTimeout).
func startACME(ctx context.Context, opts *Options, log hclog.Logger) (*acmeManager, error) {
	a := opts.ACME
	if len(a.Domains) == 0 {
		return nil, fmt.Errorf("tlsconf: acme: at least one domain is needed")
	}
	if a.Email == "" {
		return nil, fmt.Errorf("tlsconf: acme: an account email is needed")
	}
	for _, p := range []int{a.HTTPPort, a.TLSALPNPort} {
		if p < 0 || p > 65535 {
			return nil, fmt.Errorf("tlsconf: acme: challenge port %d out of range", p)
		}
	}
	m := &acmeManager{exact: make(map[string]bool), wildcard: make(map[string]bool)}
	domains := make([]string, 0, len(a.Domains))
	for _, d := range a.Domains {
		n := normalizeName(d)
		if !certmagic.SubjectQualifiesForCert(n) {
			return nil, fmt.Errorf("tlsconf: acme: %q cannot be used as a certificate name", d)
		}
		domains = append(domains, n)
		if parent, ok := strings.CutPrefix(n, "*."); ok {
			m.wildcard[parent] = true
		} else {
			m.exact[n] = true
		}
	}
	var storage certmagic.Storage
	storageName := "shared storage"
	if a.SharedStorage != nil && a.Storage == "" {
		storage = a.SharedStorage
	} else {
		dir, err := opts.acmeStorage()
		if err != nil {
			return nil, err
		}
		storage, storageName = &certmagic.FileStorage{Path: dir}, dir
	}
	var err error
	var roots *x509.CertPool
	if a.CAFile != "" {
		if roots, err = loadPool(a.CAFile); err != nil {
			return nil, fmt.Errorf("tlsconf: acme: %w", err)
		}
	}
	directory := a.Directory
	if directory == "" {
		directory = certmagic.LetsEncryptProductionCA
	}

	zl := newZapLogger(log.Named("acme"))
	var magic *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		Logger:           zl,
	})
	magic = certmagic.New(m.cache, certmagic.Config{
		Storage:            storage,
		Logger:             zl,
		DefaultServerName:  domains[0],
		FallbackServerName: domains[0],
	})
	issuer := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:             directory,
		Email:          a.Email,
		Agreed:         true,
		TrustedRoots:   roots,
		ListenHost:     a.ListenHost,
		AltHTTPPort:    a.HTTPPort,
		AltTLSALPNPort: a.TLSALPNPort,
		Profile:        a.Profile,
		Logger:         zl,
	})
	magic.Issuers = []certmagic.Issuer{issuer}
	m.magic = magic
	m.alpn = &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{acmez.ACMETLS1Protocol},
		GetCertificate: magic.GetCertificate,
	}

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, defaultObtainTimeout)
		defer cancel()
	}
	if a.SharedStorage != nil && a.Storage == "" {
		// Bound before the first order, so that certmagic's own solver
		// finds the ports taken and leaves them to these servers.
		m.challenges = startChallengeServers(a, issuer, m.alpn, log.Named("acme"))
	}
	log.Info("managing ACME certificates", "domains", domains, "directory", directory, "storage", storageName)
	if err := magic.ManageSync(ctx, domains); err != nil {
		m.challenges.close()
		m.cache.Stop()
		return nil, fmt.Errorf("tlsconf: acme: obtaining certificates for %v from %s: %w", domains, directory, err)
	}
	return m, nil
}

// manages reports whether name is one of the ACME-managed names.
func (m *acmeManager) manages(name string) bool {
	if m.exact[name] {
		return true
	}
	_, parent, ok := strings.Cut(name, ".")
	return ok && m.wildcard[parent]
}

// stop ends certmagic's maintenance (renewals, OCSP) for this manager.
func (m *acmeManager) stop() {
	m.challenges.close()
	m.cache.Stop()
}

// isACMEChallenge reports whether hello is a TLS-ALPN-01 validation
// handshake (RFC 8737 section 3: SNI set and "acme-tls/1" as the only
// ALPN protocol).
func isACMEChallenge(hello *tls.ClientHelloInfo) bool {
	return hello.ServerName != "" && len(hello.SupportedProtos) == 1 &&
		hello.SupportedProtos[0] == acmez.ACMETLS1Protocol
}

// loadPool reads a PEM bundle into a certificate pool; a file without any
// certificate is an error.
func loadPool(file string) (*x509.CertPool, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("CA file %q holds no PEM certificate", file)
	}
	return pool, nil
}
