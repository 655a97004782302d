package tlsconf

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	// selfSignedValidity is the lifetime of a generated fallback certificate.
	selfSignedValidity = 365 * 24 * time.Hour
	// selfSignedRenewBefore regenerates a stored fallback this long before
	// it expires, so a restart never keeps a certificate about to lapse.
	selfSignedRenewBefore = 7 * 24 * time.Hour
	// selfSignedDir is the sub-directory of StateDir holding the fallback.
	selfSignedDir = "selfsigned"
	// selfSignedCertName and selfSignedKeyName are its PEM files.
	selfSignedCertName = "cert.pem"
	selfSignedKeyName  = "key.pem"
)

// selfSigned returns the self-signed fallback certificate for names. With
// a stateDir it is kept in stateDir/selfsigned/{cert,key}.pem (directory
// 0700, key 0600) and reused across restarts while it is valid for at
// least another week and names exactly the same hosts; otherwise a new
// ECDSA P-256 certificate valid for one year replaces it. Without a
// stateDir the certificate lives in memory only.
func selfSigned(stateDir string, names []string, log hclog.Logger) (*tls.Certificate, error) {
	want, err := canonicalNames(names)
	if err != nil {
		return nil, err
	}
	if stateDir == "" {
		cert, err := generateSelfSigned(want, time.Now())
		if err != nil {
			return nil, err
		}
		log.Warn("no certificate configured: serving an in-memory self-signed certificate (clients will not trust it)",
			"names", want, "sha256", fingerprint(cert.Leaf))
		return cert, nil
	}
	dir := filepath.Join(stateDir, selfSignedDir)
	certFile := filepath.Join(dir, selfSignedCertName)
	keyFile := filepath.Join(dir, selfSignedKeyName)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconf: creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tlsconf: restricting %s: %w", dir, err)
	}

	cert, reason := reuseSelfSigned(certFile, keyFile, want, time.Now())
	if cert != nil {
		log.Warn("no certificate configured: serving the stored self-signed certificate (clients will not trust it)",
			"file", certFile, "names", want, "not_after", cert.Leaf.NotAfter, "sha256", fingerprint(cert.Leaf))
		return cert, nil
	}
	cert, err = generateSelfSigned(want, time.Now())
	if err != nil {
		return nil, err
	}
	if err := storeSelfSigned(dir, certFile, keyFile, cert); err != nil {
		return nil, err
	}
	log.Warn("no certificate configured: generated a self-signed certificate (clients will not trust it)",
		"file", certFile, "reason", reason, "names", want, "not_after", cert.Leaf.NotAfter,
		"sha256", fingerprint(cert.Leaf))
	return cert, nil
}

// canonicalNames normalises, de-duplicates and sorts names.
func canonicalNames(names []string) ([]string, error) {
	out := make([]string, 0, len(names))
	for _, n := range names {
		c := normalizeName(n)
		if c == "" {
			return nil, fmt.Errorf("tlsconf: empty name for the self-signed certificate")
		}
		out = append(out, c)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// reuseSelfSigned loads the stored fallback if it is still fit for names at
// now; otherwise it returns nil and why it is not.
func reuseSelfSigned(certFile, keyFile string, want []string, now time.Time) (*tls.Certificate, string) {
	cert, err := loadKeyPair(certFile, keyFile)
	if err != nil {
		var pathErr *fs.PathError
		if errors.As(err, &pathErr) && errors.Is(pathErr.Err, fs.ErrNotExist) {
			return nil, "none stored"
		}
		return nil, "stored one unusable: " + err.Error()
	}
	if now.Add(selfSignedRenewBefore).After(cert.Leaf.NotAfter) || now.Before(cert.Leaf.NotBefore) {
		return nil, "stored one expired or about to expire"
	}
	have, err := canonicalNames(leafNames(cert.Leaf))
	if err != nil || !slices.Equal(have, want) {
		return nil, "names changed"
	}
	return cert, ""
}

// generateSelfSigned creates a self-signed ECDSA P-256 server certificate
// for names (IP addresses become IP SANs) valid from now for one year.
func generateSelfSigned(names []string, now time.Time) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: generating self-signed key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("tlsconf: generating serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: names[0], Organization: []string{"popgate self-signed"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(selfSignedValidity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: creating self-signed certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("tlsconf: parsing self-signed certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// storeSelfSigned writes the key (0600) and then the certificate (0644),
// each through a temporary file and a rename, so a crash leaves either the
// old pair, or a mismatched pair that the next start regenerates.
func storeSelfSigned(dir, certFile, keyFile string, cert *tls.Certificate) error {
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return fmt.Errorf("tlsconf: encoding self-signed key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	if err := writeFileAtomic(dir, keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return writeFileAtomic(dir, certFile, certPEM, 0o644)
}

// writeFileAtomic replaces path with data and mode via a temporary file in dir.
func writeFileAtomic(dir, path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return fmt.Errorf("tlsconf: writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op once renamed
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: writing %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tlsconf: writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tlsconf: writing %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconf: writing %s: %w", path, err)
	}
	return nil
}
