package tlsconf

import (
	"crypto/tls"
	"fmt"
)

// ClientConfig returns the TLS configuration for connecting to a backend
// named serverName (RFC 2595 section 2.4: the name is checked against the
// backend's certificate). With caFile the backend must chain to the PEM
// certificates in it (an unreadable file, or one without certificates, is
// an error); without it the system roots are used. insecureSkipVerify
// disables verification entirely. minVersion 0 means TLS 1.2; older
// versions are accepted for legacy backends.
func ClientConfig(serverName, caFile string, insecureSkipVerify bool, minVersion uint16) (*tls.Config, error) {
	switch minVersion {
	case 0:
		minVersion = tls.VersionTLS12
	case tls.VersionTLS10, tls.VersionTLS11, tls.VersionTLS12, tls.VersionTLS13:
	default:
		return nil, fmt.Errorf("tlsconf: backend %q: unknown minimum TLS version %#04x", serverName, minVersion)
	}
	cfg := &tls.Config{
		ServerName:         serverName,
		MinVersion:         minVersion,
		InsecureSkipVerify: insecureSkipVerify,
	}
	if caFile != "" {
		pool, err := loadPool(caFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconf: backend %q: %w", serverName, err)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// ConnectionInfo describes a completed handshake for logs: the protocol
// version ("TLS1.2", "TLS1.3", ...), the cipher suite name
// (tls.CipherSuiteName) and the SNI the client sent. Before the handshake
// completes all three are empty.
func ConnectionInfo(cs tls.ConnectionState) (version, cipher, sni string) {
	if !cs.HandshakeComplete {
		return "", "", ""
	}
	return versionName(cs.Version), tls.CipherSuiteName(cs.CipherSuite), cs.ServerName
}

// versionName names a TLS protocol version without spaces.
func versionName(v uint16) string {
	switch v {
	case tls.VersionTLS10:
		return "TLS1.0"
	case tls.VersionTLS11:
		return "TLS1.1"
	case tls.VersionTLS12:
		return "TLS1.2"
	case tls.VersionTLS13:
		return "TLS1.3"
	default:
		return fmt.Sprintf("0x%04x", v)
	}
}
