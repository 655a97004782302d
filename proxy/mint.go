package proxy

import (
	"container/list"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net/netip"
	"strings"
	"sync"
	"time"
)

// Minting, for intercept_stls = "inspect": popgate terminates the
// client's TLS with a certificate made on the spot for the destination
// the client meant to reach, signed by an organisational CA the clients
// trust, as TLS-inspecting gateways do.

// Bounds of minted certificates.
const (
	// MintValidity is how long a minted certificate is valid. It is
	// short: a leaked key is worth little, and a certificate is minted
	// again long before it expires (see mintRenewAfter).
	MintValidity = 24 * time.Hour
	// mintBackdate is how far before now a certificate starts to be
	// valid, for clients whose clock is a little behind.
	mintBackdate = time.Hour
	// mintRenewAfter is the age after which a cached certificate is
	// minted again, so a client never sees one close to expiry.
	mintRenewAfter = MintValidity / 2
	// DefaultMintCache bounds the certificates a Minter keeps, least
	// recently used first out.
	DefaultMintCache = 1024
)

// Minter mints leaf certificates for intercepted destinations, signed by
// an organisational CA, and caches them per set of names with a bound.
// It is safe for concurrent use; one Minter serves every session of a
// listener, so the cache is shared.
type Minter struct {
	ca    *x509.Certificate
	caDER []byte
	key   crypto.Signer
	max   int
	now   func() time.Time

	mu    sync.Mutex // guards cache and lru, and serialises minting
	cache map[string]*list.Element
	lru   *list.List // of *mintEntry, most recently used first
}

type mintEntry struct {
	key     string
	cert    *tls.Certificate
	created time.Time
}

// NewMinter returns a Minter signing with ca, whose first certificate
// must be a CA allowed to sign certificates, and whose private key must
// be a crypto.Signer. max bounds the cache; 0 means DefaultMintCache.
func NewMinter(ca *tls.Certificate, max int) (*Minter, error) {
	if ca == nil || len(ca.Certificate) == 0 {
		return nil, errors.New("mint: no CA certificate")
	}
	cert, err := x509.ParseCertificate(ca.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("mint: parsing the CA certificate: %w", err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid {
		return nil, fmt.Errorf("mint: %q is not a CA certificate", cert.Subject.String())
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("mint: CA %q may not sign certificates (key usage)", cert.Subject.String())
	}
	key, ok := ca.PrivateKey.(crypto.Signer)
	if !ok {
		return nil, errors.New("mint: the CA's private key cannot sign")
	}
	if max <= 0 {
		max = DefaultMintCache
	}
	return &Minter{
		ca: cert, caDER: ca.Certificate[0], key: key, max: max, now: time.Now,
		cache: make(map[string]*list.Element), lru: list.New(),
	}, nil
}

// Certificate returns a certificate for the destination ip and, when the
// client sent one, the server name sni: its subject alternative names are
// exactly these. A cached certificate younger than half its validity is
// reused.
func (m *Minter) Certificate(ip netip.Addr, sni string) (*tls.Certificate, error) {
	sni = strings.ToLower(strings.TrimSuffix(sni, "."))
	if !ip.IsValid() && sni == "" {
		return nil, errors.New("mint: neither a destination address nor a server name")
	}
	if sni != "" && !validSNI(sni) {
		return nil, fmt.Errorf("mint: invalid server name %q", sni)
	}
	key := ip.Unmap().String() + "|" + sni
	now := m.now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.cache[key]; ok {
		e := el.Value.(*mintEntry)
		if now.Sub(e.created) < mintRenewAfter {
			m.lru.MoveToFront(el)
			return e.cert, nil
		}
		m.lru.Remove(el)
		delete(m.cache, key)
	}
	cert, err := m.mint(ip.Unmap(), sni, now)
	if err != nil {
		return nil, err
	}
	m.cache[key] = m.lru.PushFront(&mintEntry{key: key, cert: cert, created: now})
	for m.lru.Len() > m.max {
		old := m.lru.Back()
		m.lru.Remove(old)
		delete(m.cache, old.Value.(*mintEntry).key)
	}
	return cert, nil
}

// Len returns how many certificates the cache holds.
func (m *Minter) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lru.Len()
}

// mint makes one leaf: ECDSA P-256, a random 128-bit serial, valid from
// an hour ago for MintValidity, for server authentication only.
func (m *Minter) mint(ip netip.Addr, sni string, now time.Time) (*tls.Certificate, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("mint: key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("mint: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             now.Add(-mintBackdate),
		NotAfter:              now.Add(MintValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	if sni != "" {
		tmpl.Subject = pkix.Name{CommonName: sni}
		tmpl.DNSNames = []string{sni}
	}
	if ip.IsValid() {
		if sni == "" {
			tmpl.Subject = pkix.Name{CommonName: ip.String()}
		}
		tmpl.IPAddresses = append(tmpl.IPAddresses, ip.AsSlice())
	}
	if tmpl.NotAfter.After(m.ca.NotAfter) {
		tmpl.NotAfter = m.ca.NotAfter // never outlive the CA
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, m.ca, priv.Public(), m.key)
	if err != nil {
		return nil, fmt.Errorf("mint: signing for %s %q: %w", ip, sni, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("mint: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der, m.caDER}, PrivateKey: priv, Leaf: leaf}, nil
}

// validSNI reports whether name is a plausible DNS name: what a client
// may put in its server name, which becomes a SAN of a minted
// certificate.
func validSNI(name string) bool {
	if len(name) > 253 {
		return false
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}
