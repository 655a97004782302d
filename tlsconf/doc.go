// Package tlsconf owns popgate's certificates and TLS settings: the server
// side shared by every client-facing listener, and the client side used
// towards backends.
//
// # Standards
//
//   - RFC 8314 (Cleartext Considered Obsolete): implicit TLS on the POP3S
//     port (995) and the TLS 1.2 floor. [Manager.ServerConfig] is the one
//     *tls.Config handed to implicit-TLS listeners.
//   - RFC 2595 (Using TLS with IMAP, POP3 and ACAP): the STLS command upgrades
//     a plain connection with the same *tls.Config; section 2.4 asks the
//     client to check the server identity, which is why certificates are
//     chosen by SNI and [ClientConfig] always sets ServerName.
//   - RFC 8996: TLS 1.0 and 1.1 are refused to clients; Options.MinVersion
//     may only be TLS 1.2 (the default) or TLS 1.3. Backends, which may be
//     legacy servers, may be reached with older versions through ClientConfig.
//   - RFC 8555 (ACME) with RFC 8737 (TLS-ALPN-01): certificates can be
//     obtained and renewed automatically through certmagic. RFC 6066 section
//     3 (SNI) selects certificates.
//
// # Contracts
//
//   - [New] builds a [Manager] from [Options]. Static certificates are
//     loaded first; with ACME configured it obtains (or loads from storage)
//     the certificates before returning, bounded by its context; when no
//     certificate at all is configured it creates or reuses a self-signed
//     ECDSA P-256 certificate under StateDir/selfsigned and logs a warning.
//   - One *tls.Config serves every listener. GetCertificate picks, for the
//     ClientHello's SNI (or, without SNI, the local IP address): an exact
//     static match, an ACME-managed name, a wildcard static match, then the
//     first static certificate, then the first ACME domain.
//   - [Manager.Reload] replaces the static certificates atomically: either
//     every file loads and the new set is used by new handshakes, or the old
//     set stays and the error is returned. Established connections keep the
//     certificate they negotiated. ACME settings and MinVersion are fixed at
//     New; changes to them are reported in the log and need a restart.
//   - certmagic is used only through a private certmagic.Cache, Config and
//     ACMEIssuer built here; its package-level defaults are never changed.
//     Its zap logs are forwarded into the hclog stream.
//   - ACME TLS-ALPN-01 challenges arriving on a popgate listener (a client
//     offering only "acme-tls/1") are answered through GetConfigForClient;
//     ordinary handshakes see no ALPN protocol, so clients that offer
//     "pop3" are not refused.
//   - Private keys never reach the log; certificates are identified by
//     subject names and SHA-256 fingerprints.
package tlsconf
