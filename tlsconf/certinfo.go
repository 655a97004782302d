package tlsconf

import (
	"crypto/x509"
	"sort"
	"time"
)

// Certificate sources reported by CertificateInfo.Source.
const (
	SourceStatic     = "static"      // a certificate file of the tls block
	SourceSelfSigned = "self-signed" // the generated fallback, or a static file that signs itself
	SourceACME       = "acme"        // managed by ACME (certmagic)
)

// CertificateInfo describes one certificate the Manager serves now, for
// status reports.
type CertificateInfo struct {
	// Names are the names the certificate answers to (DNS and IP SANs,
	// or the subject common name when it has no SAN).
	Names    []string
	Source   string // SourceStatic, SourceSelfSigned or SourceACME
	NotAfter time.Time
}

// Certificates returns the certificates served now: the static set (or
// the self-signed fallback) as of the last load, then the newest
// certificate certmagic holds for each ACME domain. An ACME domain whose
// certificate is not in the cache is left out. The result is sorted by
// expiry, soonest first. A nil Manager serves none.
func (m *Manager) Certificates() []CertificateInfo {
	if m == nil {
		return nil
	}
	var out []CertificateInfo
	if set := m.static.Load(); set != nil {
		for _, c := range set.certs {
			out = append(out, certificateInfo(c.Leaf, staticSource(c.Leaf)))
		}
	}
	if m.acme != nil {
		for _, d := range m.acmeOpts.Domains {
			var newest *x509.Certificate
			for _, c := range m.acme.cache.AllMatchingCertificates(normalizeName(d)) {
				if c.Leaf != nil && (newest == nil || c.Leaf.NotAfter.After(newest.NotAfter)) {
					newest = c.Leaf
				}
			}
			if newest != nil {
				out = append(out, certificateInfo(newest, SourceACME))
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].NotAfter.Before(out[j].NotAfter) })
	return out
}

// certificateInfo describes leaf.
func certificateInfo(leaf *x509.Certificate, source string) CertificateInfo {
	return CertificateInfo{Names: leafNames(leaf), Source: source, NotAfter: leaf.NotAfter}
}

// staticSource tells a self-signed certificate from one a CA issued.
func staticSource(leaf *x509.Certificate) string {
	if leaf.Issuer.String() == leaf.Subject.String() &&
		leaf.CheckSignature(leaf.SignatureAlgorithm, leaf.RawTBSCertificate, leaf.Signature) == nil {
		return SourceSelfSigned
	}
	return SourceStatic
}
