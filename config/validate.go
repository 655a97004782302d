package config

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// checker collects the diagnostics of one configuration: every problem is
// reported, not just the first, each with the source range of the value at
// fault.
type checker struct {
	diags hcl.Diagnostics
}

// errorf records an error at rng.
func (c *checker) errorf(rng hcl.Range, summary, format string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// warnf records a warning at rng.
func (c *checker) warnf(rng hcl.Range, summary, format string, args ...any) {
	c.diags = append(c.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  summary,
		Detail:   fmt.Sprintf(format, args...),
		Subject:  rng.Ptr(),
	})
}

// attrRange returns the range of the value of attribute name in body, or
// the body's missing-item range (its opening line) when it is absent.
func attrRange(body hcl.Body, name string) hcl.Range {
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a, ok := sb.Attributes[name]; ok {
			return a.Expr.Range()
		}
	}
	if body == nil {
		return hcl.Range{}
	}
	return body.MissingItemRange()
}

// elemRange returns the range of element i of list attribute name in body,
// or the whole attribute's range when it is not a literal list.
func elemRange(body hcl.Body, name string, i int) hcl.Range {
	if sb, ok := body.(*hclsyntax.Body); ok {
		if a, ok := sb.Attributes[name]; ok {
			if t, ok := a.Expr.(*hclsyntax.TupleConsExpr); ok && i < len(t.Exprs) {
				return t.Exprs[i].Range()
			}
		}
	}
	return attrRange(body, name)
}

// has reports whether attribute name is written in body.
func has(body hcl.Body, name string) bool {
	sb, ok := body.(*hclsyntax.Body)
	if !ok {
		return false
	}
	_, ok = sb.Attributes[name]
	return ok
}

// or returns *p, or def when p is nil.
func or[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// enum returns the value of an optional enumerated attribute, def when it
// is absent. The attribute is written as the text form of one of valid:
// the value itself for a string type, else its String method, the text
// form its own package defines. Any other text is an error.
func enum[T comparable](c *checker, body hcl.Body, name string, p *string, def T, valid ...T) T {
	if p == nil {
		return def
	}
	texts := make([]string, len(valid))
	for i, v := range valid {
		texts[i] = fmt.Sprint(v)
		if *p == texts[i] {
			return v
		}
	}
	c.errorf(attrRange(body, name), "Invalid "+name,
		"%q is not a valid %s; valid values are %s.", *p, name, quoteList(texts))
	return def
}

// duration returns the value of an optional positive duration attribute.
func (c *checker) duration(body hcl.Body, name string, p *string, def time.Duration) time.Duration {
	if p == nil {
		return def
	}
	d, err := parseDuration(*p)
	if err != nil {
		c.errorf(attrRange(body, name), "Invalid "+name, "%s.", err)
		return def
	}
	return d
}

// size returns the value of an optional positive size attribute.
func (c *checker) size(body hcl.Body, name string, p *string, def int64) int64 {
	if p == nil {
		return def
	}
	n, err := parseSize(*p)
	if err == nil && n == 0 {
		err = fmt.Errorf("size %q must be positive", *p)
	}
	if err != nil {
		c.errorf(attrRange(body, name), "Invalid "+name, "%s.", err)
		return def
	}
	return n
}

// integer returns the value of an optional integer attribute that must lie
// in [lo, hi].
func (c *checker) integer(body hcl.Body, name string, p *int, def, lo, hi int) int {
	if p == nil {
		return def
	}
	if *p < lo || *p > hi {
		c.errorf(attrRange(body, name), "Invalid "+name,
			"%s must be between %d and %d, not %d.", name, lo, hi, *p)
		return def
	}
	return *p
}

// address checks a host:port attribute. The port is a number, 0..65535
// when zeroPort (0 = any free port), else 1..65535; the host is an IP
// address or a host name, and may be empty only when emptyHost.
func (c *checker) address(body hcl.Body, name, addr string, emptyHost, zeroPort bool) bool {
	return c.addressAt(attrRange(body, name), name, addr, emptyHost, zeroPort)
}

// addressAt checks a host:port value at rng, as address does.
func (c *checker) addressAt(rng hcl.Range, name, addr string, emptyHost, zeroPort bool) bool {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		c.errorf(rng, "Invalid "+name,
			"%q is not host:port (IPv6 addresses go in brackets, as in \"[::1]:110\"): %s.", addr, trimAddrErr(err))
		return false
	}
	ok := true
	n, err := strconv.Atoi(port)
	lo := 1
	if zeroPort {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		c.errorf(rng, "Invalid "+name, "port %q of %q must be a number from %d to 65535.", port, addr, lo)
		ok = false
	}
	switch {
	case host == "" && !emptyHost:
		c.errorf(rng, "Invalid "+name, "%q has no host.", addr)
		ok = false
	case host != "" && !validHost(host):
		c.errorf(rng, "Invalid "+name, "%q is neither an IP address nor a host name.", host)
		ok = false
	}
	return ok
}

// trimAddrErr returns the part of a net.SplitHostPort error after the
// "address X: " prefix, which would repeat the address.
func trimAddrErr(err error) string {
	if ae, ok := err.(*net.AddrError); ok {
		return ae.Err
	}
	return err.Error()
}

// validHost reports whether s is an IP address or a syntactically valid DNS
// host name (RFC 1123 labels, underscores tolerated).
func validHost(s string) bool {
	if _, err := netip.ParseAddr(s); err == nil {
		return true
	}
	return validDNSName(s)
}

// validDNSName reports whether s is a DNS name of letters, digits, hyphens
// and underscores in dot-separated labels of 1..63 octets, at most 253 in
// all; a trailing dot is allowed.
func validDNSName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// fileExists checks that the file named by attribute name exists and is
// not a directory; it reports whether it does.
func (c *checker) fileExists(body hcl.Body, name, file string) bool {
	rng := attrRange(body, name)
	fi, err := os.Stat(file)
	switch {
	case err != nil:
		c.errorf(rng, "File not found", "%s: %s.", name, trimPathErr(err))
		return false
	case fi.IsDir():
		c.errorf(rng, "Not a file", "%s: %q is a directory.", name, file)
		return false
	}
	return true
}

// ownerOnly checks that the secrets file named by attribute name is
// accessible to its owner only, as the filter reading it requires.
func (c *checker) ownerOnly(body hcl.Body, name, file string) {
	fi, err := os.Stat(file)
	if err != nil {
		return
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		c.errorf(attrRange(body, name), "Secrets file readable by others",
			"%s: %q has mode %04o; it holds passwords, so its group and others must have no access (chmod 600).", name, file, perm)
	}
}

// dirExists checks that the directory named by attribute name exists.
func (c *checker) dirExists(body hcl.Body, name, dir string) {
	rng := attrRange(body, name)
	fi, err := os.Stat(dir)
	switch {
	case err != nil:
		c.errorf(rng, "Directory not found", "%s: %s.", name, trimPathErr(err))
	case !fi.IsDir():
		c.errorf(rng, "Not a directory", "%s: %q is not a directory.", name, dir)
	}
}

// trimPathErr renders an *os.PathError as "NAME: reason" without the
// operation, which means nothing to a reader of the configuration.
func trimPathErr(err error) string {
	if pe, ok := err.(*os.PathError); ok {
		return fmt.Sprintf("%q: %s", pe.Path, pe.Err)
	}
	return err.Error()
}

// glob checks a path.Match pattern; it returns false when it is malformed.
func (c *checker) glob(body hcl.Body, name, pattern string) bool {
	if _, err := path.Match(pattern, ""); err != nil {
		c.errorf(attrRange(body, name), "Invalid "+name,
			"%q is not a valid pattern (* matches any run of characters, ? one character, [a-z] a class, \\ quotes): %s.", pattern, err)
		return false
	}
	return true
}

// prefixes parses a list of CIDR prefixes; a bare IP address is a
// single-address prefix. Host bits are masked off.
func (c *checker) prefixes(body hcl.Body, name string, list []string) []netip.Prefix {
	var out []netip.Prefix
	for i, s := range list {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				c.errorf(elemRange(body, name, i), "Invalid "+name,
					"%q is neither a CIDR prefix (\"10.0.0.0/8\") nor an IP address.", s)
				continue
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out
}

// hostnames checks a list of DNS names (or IP addresses when allowIP).
func (c *checker) hostnames(body hcl.Body, name string, list []string, allowIP bool) {
	for i, s := range list {
		if _, err := netip.ParseAddr(s); err == nil {
			if !allowIP {
				c.errorf(elemRange(body, name, i), "Invalid "+name, "%q is an IP address; a DNS name is needed.", s)
			}
			continue
		}
		if strings.HasPrefix(s, "*.") {
			c.errorf(elemRange(body, name, i), "Invalid "+name, "wildcard name %q is not supported.", s)
			continue
		}
		if !validDNSName(s) {
			c.errorf(elemRange(body, name, i), "Invalid "+name, "%q is not a valid DNS name.", s)
		}
	}
}

// quoteList renders valid values as "a", "b" or "c".
func quoteList(vals []string) string {
	return quoteJoin(vals, "or")
}

// quoteAll renders names as "a", "b" and "c".
func quoteAll(names []string) string {
	return quoteJoin(names, "and")
}

// quoteJoin quotes vals and joins them with commas and conj before the
// last.
func quoteJoin(vals []string, conj string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	switch len(q) {
	case 0:
		return ""
	case 1:
		return q[0]
	}
	return strings.Join(q[:len(q)-1], ", ") + " " + conj + " " + q[len(q)-1]
}
