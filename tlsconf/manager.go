package tlsconf

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
)

// Manager owns the server certificates: static ones (reloadable),
// ACME-managed ones (renewed in the background) and the self-signed
// fallback. It is safe for concurrent use; Close ends ACME maintenance.
type Manager struct {
	log        hclog.Logger
	minVersion uint16
	acme       *acmeManager // nil without ACME; fixed at New
	acmeOpts   *ACME        // as given to New, to report ignored changes
	static     atomic.Pointer[certSet]
	config     *tls.Config

	reloadMu  sync.Mutex // serialises Reload
	closeOnce sync.Once
}

// New builds a Manager. It loads the static certificates, then, with
// opts.ACME set, obtains or loads the ACME certificates before returning
// (bounded by ctx, or by two minutes if ctx has no deadline). When neither
// static certificates nor ACME are configured it serves a self-signed
// certificate for opts.SelfSignedNames and logs a warning.
func New(ctx context.Context, opts Options) (*Manager, error) {
	minVersion, err := serverMinVersion(opts.MinVersion)
	if err != nil {
		return nil, err
	}
	log := opts.logger()
	m := &Manager{log: log, minVersion: minVersion}
	// Static files first: a typo fails fast, before any ACME traffic.
	set, err := loadCertSet(opts.Certificates, log)
	if err != nil {
		return nil, err
	}
	if opts.ACME != nil {
		a := *opts.ACME
		a.Domains = slices.Clone(a.Domains)
		m.acmeOpts = &a
		if m.acme, err = startACME(ctx, &opts, log); err != nil {
			return nil, err
		}
	}
	if set, err = m.withFallback(set, &opts); err != nil {
		m.Close()
		return nil, err
	}
	m.static.Store(set)
	m.config = &tls.Config{
		MinVersion:     minVersion,
		GetCertificate: m.getCertificate,
	}
	if m.acme != nil {
		m.config.GetConfigForClient = m.configForClient
	}
	return m, nil
}

// withFallback returns set, or a set holding only the self-signed
// fallback when set is empty and ACME is off.
func (m *Manager) withFallback(set *certSet, opts *Options) (*certSet, error) {
	if len(set.certs) > 0 || m.acme != nil {
		return set, nil
	}
	cert, err := selfSigned(opts.StateDir, opts.selfSignedNames(), m.log)
	if err != nil {
		return nil, err
	}
	return newCertSet([]*tls.Certificate{cert}), nil
}

// ServerConfig returns the *tls.Config shared by every client-facing
// listener, both implicit TLS (RFC 8314) and STLS (RFC 2595). Its
// certificates follow Reload. Callers must not modify it; Clone it to
// customise a copy (a clone keeps following Reload).
func (m *Manager) ServerConfig() *tls.Config {
	return m.config
}

// Reload re-reads the static certificates named in opts (SIGHUP). Either
// all of them load and new handshakes use them, or the old ones stay and
// the error is returned. Connections already established are unaffected.
// Changes to ACME or MinVersion need a restart and are only logged.
func (m *Manager) Reload(opts Options) error {
	m.reloadMu.Lock()
	defer m.reloadMu.Unlock()
	if v, err := serverMinVersion(opts.MinVersion); err != nil || v != m.minVersion {
		m.log.Warn("changing the minimum TLS version needs a restart; keeping the current one")
	}
	if !sameACME(m.acmeOpts, opts.ACME) {
		m.log.Warn("changing ACME settings needs a restart; keeping the current ones")
	}
	set, err := loadCertSet(opts.Certificates, m.log)
	if err == nil {
		set, err = m.withFallback(set, &opts)
	}
	if err != nil {
		m.log.Error("reloading certificates failed; keeping the current ones", "error", err)
		return fmt.Errorf("tlsconf: reload: %w", err)
	}
	m.static.Store(set)
	m.log.Info("certificates reloaded", "static", len(set.certs))
	return nil
}

// Close stops ACME maintenance. Handshakes still work afterwards with the
// certificates already loaded. Close is idempotent.
func (m *Manager) Close() error {
	m.closeOnce.Do(func() {
		if m.acme != nil {
			m.acme.stop()
		}
	})
	return nil
}

// errNoCertificate is returned to a handshake no certificate can serve.
var errNoCertificate = errors.New("tlsconf: no certificate available")

// getCertificate selects the certificate for a ClientHello: exact static
// name, ACME-managed name, wildcard static name, first static certificate,
// then the first ACME domain (certmagic's fallback).
func (m *Manager) getCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := helloName(hello)
	set := m.static.Load()
	if c := set.lookupExact(name); c != nil {
		return c, nil
	}
	if m.acme != nil && m.acme.manages(name) {
		return m.acme.magic.GetCertificate(hello)
	}
	if c := set.lookupWildcard(name); c != nil {
		return c, nil
	}
	if c := set.first(); c != nil {
		return c, nil
	}
	if m.acme != nil {
		return m.acme.magic.GetCertificate(hello)
	}
	return nil, errNoCertificate
}

// configForClient diverts TLS-ALPN-01 validation handshakes (RFC 8737) to
// certmagic; every other handshake uses the shared configuration.
func (m *Manager) configForClient(hello *tls.ClientHelloInfo) (*tls.Config, error) {
	if isACMEChallenge(hello) {
		return m.acme.alpn, nil
	}
	return nil, nil
}

// sameACME reports whether two ACME settings are equal.
func sameACME(a, b *ACME) bool {
	if a == nil || b == nil {
		return a == b
	}
	return slices.Equal(a.Domains, b.Domains) &&
		a.Email == b.Email && a.Directory == b.Directory && a.CAFile == b.CAFile &&
		a.Storage == b.Storage && a.HTTPPort == b.HTTPPort && a.TLSALPNPort == b.TLSALPNPort &&
		a.ListenHost == b.ListenHost && a.Profile == b.Profile
}
