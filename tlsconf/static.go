package tlsconf

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

// certSet is an immutable set of static certificates indexed for SNI
// selection. A new set replaces the old one as a whole on reload.
type certSet struct {
	// certs keeps configuration order; certs[0] is the default.
	certs []*tls.Certificate
	// exact maps a lower-case DNS name or canonical IP string to the first
	// certificate naming it.
	exact map[string]*tls.Certificate
	// wildcard maps the parent of a "*.parent" name to the first
	// certificate holding that wildcard.
	wildcard map[string]*tls.Certificate
}

// newCertSet indexes certs, which must have Leaf set.
func newCertSet(certs []*tls.Certificate) *certSet {
	s := &certSet{
		certs:    certs,
		exact:    make(map[string]*tls.Certificate),
		wildcard: make(map[string]*tls.Certificate),
	}
	for _, c := range certs {
		for _, name := range leafNames(c.Leaf) {
			if parent, ok := strings.CutPrefix(name, "*."); ok {
				if _, dup := s.wildcard[parent]; !dup {
					s.wildcard[parent] = c
				}
				continue
			}
			if _, dup := s.exact[name]; !dup {
				s.exact[name] = c
			}
		}
	}
	return s
}

// loadCertSet reads every configured certificate; any failure fails the
// whole set, so a reload never serves half of a configuration.
func loadCertSet(list []Certificate, log hclog.Logger) (*certSet, error) {
	certs := make([]*tls.Certificate, 0, len(list))
	for _, c := range list {
		cert, err := loadKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, err
		}
		now := time.Now()
		if now.After(cert.Leaf.NotAfter) || now.Before(cert.Leaf.NotBefore) {
			log.Warn("certificate is outside its validity period",
				"file", c.CertFile, "not_before", cert.Leaf.NotBefore, "not_after", cert.Leaf.NotAfter)
		}
		log.Debug("loaded certificate", "file", c.CertFile, "names", leafNames(cert.Leaf),
			"not_after", cert.Leaf.NotAfter, "sha256", fingerprint(cert.Leaf))
		certs = append(certs, cert)
	}
	return newCertSet(certs), nil
}

// loadKeyPair loads one PEM certificate/key pair and parses its leaf.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tlsconf: certificate %q: both a certificate file and a key file are needed", certFile)
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: loading certificate %q with key %q: %w", certFile, keyFile, err)
	}
	if cert.Leaf == nil {
		leaf, err := x509.ParseCertificate(cert.Certificate[0])
		if err != nil {
			return nil, fmt.Errorf("tlsconf: parsing certificate %q: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	return &cert, nil
}

// lookupExact returns the certificate naming name exactly, or nil.
func (s *certSet) lookupExact(name string) *tls.Certificate {
	return s.exact[name]
}

// lookupWildcard returns the certificate whose wildcard covers name, or nil.
func (s *certSet) lookupWildcard(name string) *tls.Certificate {
	if _, parent, ok := strings.Cut(name, "."); ok && parent != "" {
		return s.wildcard[parent]
	}
	return nil
}

// first returns the default certificate, or nil for an empty set.
func (s *certSet) first() *tls.Certificate {
	if len(s.certs) == 0 {
		return nil
	}
	return s.certs[0]
}

// leafNames returns the names a leaf answers to: DNS SANs (lower case) and
// IP SANs (canonical strings); the subject common name only when the
// certificate has no SAN at all.
func leafNames(leaf *x509.Certificate) []string {
	var names []string
	for _, d := range leaf.DNSNames {
		names = append(names, normalizeName(d))
	}
	for _, ip := range leaf.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 && leaf.Subject.CommonName != "" {
		names = append(names, normalizeName(leaf.Subject.CommonName))
	}
	return names
}

// normalizeName lower-cases a host name, drops a trailing dot and writes
// IP addresses in canonical form.
func normalizeName(name string) string {
	name = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(name), "."))
	if ip := net.ParseIP(name); ip != nil {
		return ip.String()
	}
	return name
}

// helloName returns the name to select a certificate for: the SNI, or the
// local IP address the client connected to when it sent no SNI.
func helloName(hello *tls.ClientHelloInfo) string {
	if hello.ServerName != "" {
		return normalizeName(hello.ServerName)
	}
	if hello.Conn == nil {
		return ""
	}
	addr, ok := hello.Conn.LocalAddr().(*net.TCPAddr)
	if !ok {
		return ""
	}
	return addr.IP.String()
}

// fingerprint is the hex SHA-256 of a certificate's DER encoding.
func fingerprint(leaf *x509.Certificate) string {
	sum := sha256.Sum256(leaf.Raw)
	return hex.EncodeToString(sum[:])
}
