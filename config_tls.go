package main

import (
	"net/url"
	"strings"
)

// tls converts the tls block; cfg.StateDir and cfg.Listeners must be set.
func (b *builder) tls(r *rawTLS, cfg *Config) TLSConfig {
	var out TLSConfig
	if r == nil {
		return out
	}
	for _, c := range r.Certificates {
		b.fileExists(c.Body, "cert_file", c.CertFile)
		b.fileExists(c.Body, "key_file", c.KeyFile)
		out.Certificates = append(out.Certificates, CertificateConfig{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	if r.ACME != nil {
		out.ACME = b.acme(r.ACME, cfg)
	}
	return out
}

// acme converts the tls.acme block.
func (b *builder) acme(r *rawACME, cfg *Config) *ACMEConfig {
	body := r.Body
	a := &ACMEConfig{
		Domains:    r.Domains,
		Email:      r.Email,
		Directory:  or(r.Directory, defaultACMEDirectory),
		CAFile:     r.CAFile,
		Storage:    cfg.StateDir,
		ListenHost: r.ListenHost,
		Profile:    r.Profile,
	}
	if len(r.Domains) == 0 {
		b.errorf(attrRange(body, "domains"), "Missing domains", "ACME needs at least one domain name.")
	}
	b.hostnames(body, "domains", r.Domains, false)
	if r.Email != "" && (!strings.Contains(r.Email, "@") || strings.ContainsAny(r.Email, " \t<>")) {
		b.errorf(attrRange(body, "email"), "Invalid email", "%q is not an e-mail address.", r.Email)
	}
	if u, err := url.Parse(a.Directory); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		b.errorf(attrRange(body, "directory"), "Invalid directory",
			"%q is not the http(s) URL of an ACME directory.", a.Directory)
	} else if u.Scheme == "http" {
		b.warnf(attrRange(body, "directory"), "ACME directory without TLS",
			"%q uses plain HTTP; ACME servers use https.", a.Directory)
	}
	if r.CAFile != "" {
		b.fileExists(body, "ca_file", r.CAFile)
	}
	if r.Storage != nil {
		if *r.Storage == "" {
			b.errorf(attrRange(body, "storage"), "Invalid storage", "storage must not be empty; leave it out to use state_dir.")
		}
		a.Storage = absPath(*r.Storage)
	}
	a.HTTPPort = b.integer(body, "http_port", r.HTTPPort, defaultACMEHTTPPort, 1, 65535)
	a.TLSALPNPort = b.integer(body, "tls_alpn_port", r.TLSALPNPort, defaultACMEALPNPort, 1, 65535)
	if r.ListenHost != "" && !validHost(r.ListenHost) {
		b.errorf(attrRange(body, "listen_host"), "Invalid listen_host", "%q is neither an IP address nor a host name.", r.ListenHost)
	}
	anyTLS := false
	for _, l := range cfg.Listeners {
		anyTLS = anyTLS || l.TLS != TLSNone
	}
	if !anyTLS && len(cfg.Listeners) > 0 {
		b.warnf(body.MissingItemRange(), "ACME unused", "No listener uses TLS, so the ACME certificates would never be served.")
	}
	return a
}

// metrics converts the metrics block.
func (b *builder) metrics(r *rawMetrics) *MetricsConfig {
	if r == nil {
		return nil
	}
	b.address(r.Body, "address", r.Address, true, true)
	return &MetricsConfig{Address: r.Address}
}
