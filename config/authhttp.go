package config

import (
	"net/url"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/authhttp"
	"github.com/popgate/popgate/proxy"
)

// reservedAuthHeaders are the request headers popgate itself sends to an
// auth_http service: the headers attribute may not replace them.
var reservedAuthHeaders = []string{"Auth-Method", "Auth-User", "Auth-Pass", "Auth-Salt", "Auth-Protocol",
	"Auth-Login-Attempt", "Client-Ip", "Client-Host", "Auth-Ssl", "Content-Length", "Transfer-Encoding", "Connection"}

// authHTTP converts the auth_http blocks.
func (b *builder) authHTTP(raws []rawAuthHTTP) []AuthHTTP {
	if len(raws) == 0 {
		return nil
	}
	seen := map[string]hcl.Range{}
	out := make([]AuthHTTP, 0, len(raws))
	for i := range raws {
		r := &raws[i]
		body := r.Body
		b.blockName("auth_http", r.Name, r.LabelRange, seen)
		a := AuthHTTP{Name: r.Name}
		a.Options.URL = r.URL
		b.authURL(body, r.URL)
		a.Options.Timeout = b.duration(body, "timeout", r.Timeout, authhttp.DefaultTimeout)
		if r.CacheTTL != nil && *r.CacheTTL != "0" && *r.CacheTTL != "0s" {
			a.Options.CacheTTL = b.duration(body, "cache_ttl", r.CacheTTL, 0)
		}
		a.Options.MaxInFlight = b.integer(body, "max_in_flight", r.MaxInFlight, authhttp.DefaultMaxInFlight, 1, 10000)
		a.Options.Headers = b.authHeaders(body, r.Headers)
		for j, s := range r.AllowedBackends {
			rule, err := proxy.ParseDestinationRule(s)
			if err != nil {
				b.errorf(elemRange(body, "allowed_backends", j), "Invalid allowed_backends", "%s.", err)
				continue
			}
			a.AllowedBackends = append(a.AllowedBackends, rule)
		}
		if r.AllowedBackends != nil && len(r.AllowedBackends) == 0 {
			b.warnf(attrRange(body, "allowed_backends"), "Empty allowed_backends",
				"allowed_backends = [] allows only the servers of backend blocks, as leaving it out does.")
		}
		a.VerifiesPassword = or(r.VerifiesPassword, false)
		out = append(out, a)
	}
	return out
}

// authURL checks an auth_http url: http:// or https:// with a host. A
// plain http:// URL off this host carries passwords in clear: a warning.
func (b *builder) authURL(body hcl.Body, raw string) {
	rng := attrRange(body, "url")
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		b.errorf(rng, "Invalid url", "%q is not an http:// or https:// URL with a host, as in \"http://127.0.0.1:9000/auth\".", redactURL(raw))
		return
	}
	if u.Scheme == "http" && !isLoopback(u.Hostname()) {
		b.warnf(rng, "Auth service in clear", "url %q is plain http to another host: passwords cross the network unencrypted; use https://.", redactURL(raw))
	}
}

// redactURL drops user info and query from a URL for a diagnostic: they
// may carry secrets.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		if i := strings.IndexAny(raw, "@?"); i >= 0 {
			return raw[:i] + "..."
		}
		return raw
	}
	u.User, u.RawQuery = nil, ""
	return u.String()
}

// authHeaders checks the headers map: names are HTTP tokens popgate does
// not send itself, values carry no line breaks. Values are secrets and
// never appear in a diagnostic.
func (b *builder) authHeaders(body hcl.Body, h map[string]string) map[string]string {
	if len(h) == 0 {
		return nil
	}
	rng := attrRange(body, "headers")
	out := make(map[string]string, len(h))
	for k, v := range h {
		switch {
		case !httpToken(k):
			b.errorf(rng, "Invalid headers", "%q is not an HTTP header name.", k)
		case reserved(k):
			b.errorf(rng, "Invalid headers", "Header %q is sent by popgate itself (nginx's auth_http protocol) and cannot be set.", k)
		case strings.ContainsAny(v, "\r\n\x00"):
			b.errorf(rng, "Invalid headers", "The value of header %q contains a line break or NUL.", k)
		default:
			out[k] = v
		}
	}
	return out
}

func reserved(name string) bool {
	for _, r := range reservedAuthHeaders {
		if strings.EqualFold(r, name) {
			return true
		}
	}
	return false
}

// httpToken reports whether s is an RFC 9110 token.
func httpToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// listenerAuth returns the auth_http block a listener names: it must
// exist, and the listener must take logins itself (after-auth).
func (b *builder) listenerAuth(r *rawListener, l *Listener, cfg *Config) string {
	if r.Auth == nil {
		return ""
	}
	rng := attrRange(r.Body, "auth")
	name := *r.Auth
	switch {
	case cfg.AuthService(name) == nil && len(cfg.AuthHTTP) == 0:
		b.errorf(rng, "Unknown auth", "There is no auth_http block named %q: the file has none.", name)
	case cfg.AuthService(name) == nil:
		names := make([]string, len(cfg.AuthHTTP))
		for i, a := range cfg.AuthHTTP {
			names[i] = a.Name
		}
		b.errorf(rng, "Unknown auth", "There is no auth_http block named %q; they are %s.", name, quoteAll(names))
	case l.Connect != proxy.ConnectAfterAuth:
		b.errorf(rng, "auth needs after-auth",
			"Listener %q asks auth_http %q, but with connect = \"on-accept\" the client logs in to the backend directly "+
				"and popgate sees no login to ask about: set connect = \"after-auth\".", r.Name, name)
	case l.Intercept != proxy.InterceptNone:
		b.errorf(rng, "auth on an intercept listener",
			"Listener %q intercepts connections to their original destination; an auth service cannot route them.", r.Name)
	}
	return name
}

// unusedAuth warns of auth_http blocks no listener asks.
func (b *builder) unusedAuth(raw *rawFile, cfg *Config) {
	used := map[string]bool{}
	for _, l := range cfg.Listeners {
		used[l.AuthName] = true
	}
	for _, r := range raw.AuthHTTP {
		if !used[r.Name] {
			b.warnf(r.LabelRange, "Unused auth_http", "No listener asks auth_http %q (auth = %q).", r.Name, r.Name)
		}
	}
}
