package authhttp

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
)

// Method is the Auth-Method of a request.
type Method string

// The Auth-Method values nginx sends for POP3.
const (
	// MethodPlain: USER/PASS, AUTH PLAIN and AUTH LOGIN; Auth-Pass is the
	// password.
	MethodPlain Method = "plain"
	// MethodAPOP: APOP; Auth-Pass is the client's digest, Auth-Salt the
	// greeting's timestamp, and an OK answer must carry Auth-Pass.
	MethodAPOP Method = "apop"
	// MethodCRAMMD5: AUTH CRAM-MD5; Auth-Pass is the client's digest,
	// Auth-Salt the challenge, and an OK answer must carry Auth-Pass.
	MethodCRAMMD5 Method = "cram-md5"
	// MethodExternal: AUTH EXTERNAL; no password.
	MethodExternal Method = "external"
)

// needsPass reports whether an OK answer to m must carry Auth-Pass: the
// client sent a digest, and the backend needs the password.
func (m Method) needsPass() bool { return m == MethodAPOP || m == MethodCRAMMD5 }

// Request is one login to check. It holds the client's secret: the caller
// drops it once Authenticate returns.
type Request struct {
	Method Method
	User   string // the name the client typed
	Pass   string // the password, or the APOP/CRAM-MD5 hex digest
	// Salt is the APOP timestamp or the CRAM-MD5 challenge, with its
	// angle brackets; sent for MethodAPOP and MethodCRAMMD5 only.
	Salt string
	// Attempt is Auth-Login-Attempt: 1 for the session's first login
	// attempt, 2 for the second, ...
	Attempt int
	// ClientIP is the client's address (the PROXY header's, when there
	// is one).
	ClientIP netip.Addr
	// ClientHost is the client's host name, "" when unknown; then
	// "[UNAVAILABLE]" is sent, as nginx does when it has not resolved it.
	ClientHost string
	// TLS adds "Auth-SSL: on": the client's connection is TLS.
	TLS bool
}

// unavailable is nginx's Client-Host for a client whose name is unknown.
const unavailable = "[UNAVAILABLE]"

// httpRequest builds the GET for r: nginx's headers, then the configured
// ones (which may not replace nginx's).
func (c *Client) httpRequest(ctx context.Context, r *Request) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, fmt.Errorf("auth_http request: %w", err)
	}
	if c.user != nil {
		pw, _ := c.user.Password()
		req.SetBasicAuth(c.user.Username(), pw)
	}
	h := req.Header
	for k, v := range c.opts.Headers {
		if http.CanonicalHeaderKey(k) == "Host" {
			req.Host = v // net/http sends req.Host, never Header["Host"]
			continue
		}
		h.Set(k, v)
	}
	method := r.Method
	if method == "" {
		method = MethodPlain
	}
	h.Set("Auth-Method", string(method))
	h.Set("Auth-User", Escape(r.User))
	h.Set("Auth-Pass", Escape(r.Pass))
	if method.needsPass() && r.Salt != "" {
		h.Set("Auth-Salt", r.Salt)
	}
	h.Set("Auth-Protocol", "pop3")
	attempt := r.Attempt
	if attempt < 1 {
		attempt = 1
	}
	h.Set("Auth-Login-Attempt", strconv.Itoa(attempt))
	if r.ClientIP.IsValid() {
		h.Set("Client-IP", r.ClientIP.Unmap().String())
	}
	host := r.ClientHost
	if host == "" {
		host = unavailable
	}
	h.Set("Client-Host", Escape(host))
	if r.TLS {
		h.Set("Auth-SSL", "on")
	}
	return req, nil
}

// Escape escapes s the way nginx escapes Auth-User and Auth-Pass
// (ngx_escape_uri with NGX_ESCAPE_MAIL_AUTH): every octet below 0x21,
// '%', DEL and every octet from 0x80 up becomes %XX with upper-case hex;
// everything else, '+' included, is sent as it is.
func Escape(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEscape(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEscape(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func mustEscape(c byte) bool { return c <= ' ' || c == '%' || c >= 0x7f }
