package config

import (
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// tls converts the tls block, and every listener's server_name, into the
// TLS manager's options; cfg.StateDir and cfg.Listeners must be set.
func (b *builder) tls(r *rawTLS, listeners []rawListener, cfg *Config) tlsconf.Options {
	opts := tlsconf.Options{StateDir: cfg.StateDir}
	for _, l := range listeners {
		opts.SelfSignedNames = append(opts.SelfSignedNames, l.ServerName...)
	}
	if len(opts.SelfSignedNames) > 0 {
		// The names clients on this machine use stay valid too.
		opts.SelfSignedNames = append(opts.SelfSignedNames, tlsconf.DefaultSelfSignedNames()...)
	}
	if r == nil {
		return opts
	}
	for _, c := range r.Certificates {
		b.fileExists(c.Body, "cert_file", c.CertFile)
		b.fileExists(c.Body, "key_file", c.KeyFile)
		opts.Certificates = append(opts.Certificates, tlsconf.Certificate{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	if r.ACME != nil {
		opts.ACME = b.acme(r.ACME, cfg)
	}
	return opts
}

// acme converts the tls.acme block. The directory and the challenge ports
// stay zero when not written: tlsconf.ACME's zero values are the
// documented defaults (Let's Encrypt production, ports 80 and 443).
// Storage defaults to state_dir itself, where popgate has always kept its
// ACME accounts, and to "" (the cluster's Redis) with a cluster block.
func (b *builder) acme(r *rawACME, cfg *Config) *tlsconf.ACME {
	body := r.Body
	a := &tlsconf.ACME{
		Domains:    r.Domains,
		Email:      r.Email,
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
	if r.Directory != nil {
		a.Directory = *r.Directory
		b.acmeDirectory(body, a.Directory)
	}
	if r.CAFile != "" {
		b.fileExists(body, "ca_file", r.CAFile)
	}
	if cfg.Cluster != nil {
		a.Storage = "" // the cluster's shared storage, unless written below
	}
	if r.Storage != nil {
		if *r.Storage == "" {
			b.errorf(attrRange(body, "storage"), "Invalid storage", "storage must not be empty; leave it out to use state_dir.")
		}
		a.Storage = absPath(*r.Storage)
	}
	a.HTTPPort = b.integer(body, "http_port", r.HTTPPort, 0, 1, 65535)
	a.TLSALPNPort = b.integer(body, "tls_alpn_port", r.TLSALPNPort, 0, 1, 65535)
	if r.ListenHost != "" && !validHost(r.ListenHost) {
		b.errorf(attrRange(body, "listen_host"), "Invalid listen_host", "%q is neither an IP address nor a host name.", r.ListenHost)
	}
	anyTLS := false
	for _, l := range cfg.Listeners {
		anyTLS = anyTLS || l.TLS != proxy.TLSNone
	}
	if !anyTLS && len(cfg.Listeners) > 0 {
		b.warnf(body.MissingItemRange(), "ACME unused", "No listener uses TLS, so the ACME certificates would never be served.")
	}
	return a
}

// acmeDirectory checks the URL of an ACME directory.
func (b *builder) acmeDirectory(body hcl.Body, dir string) {
	if u, err := url.Parse(dir); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		b.errorf(attrRange(body, "directory"), "Invalid directory",
			"%q is not the http(s) URL of an ACME directory.", dir)
	} else if u.Scheme == "http" {
		b.warnf(attrRange(body, "directory"), "ACME directory without TLS",
			"%q uses plain HTTP; ACME servers use https.", dir)
	}
}

// metrics converts the metrics block into the address to serve metrics
// on; "" when there is none.
func (b *builder) metrics(r *rawMetrics) string {
	if r == nil {
		return ""
	}
	b.address(r.Body, "address", r.Address, true, true)
	return r.Address
}
