package config

import (
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/proxy"
)

// listeners converts the listener blocks; cfg.Limits, cfg.Backends and
// cfg.Filters must be built already.
func (b *builder) listeners(raws []rawListener, top hcl.Body, cfg *Config) []Listener {
	if len(raws) == 0 {
		b.errorf(top.MissingItemRange(), "No listener", "At least one listener block is required.")
		return nil
	}
	seen := map[string]hcl.Range{}
	out := make([]Listener, 0, len(raws))
	for i := range raws {
		r := &raws[i]
		body := r.Body
		b.blockName("listener", r.Name, r.LabelRange, seen)
		var l Listener
		l.Name, l.Address = r.Name, r.Address
		b.address(body, "address", r.Address, true, true)
		l.TLS = enum(&b.checker, body, "tls", r.TLS, proxy.TLSNone, proxy.TLSNone, proxy.TLSStartTLS, proxy.TLSImplicit)
		switch l.TLS {
		case proxy.TLSStartTLS:
			l.RequireTLS = or(r.RequireTLS, true)
		case proxy.TLSImplicit:
			l.RequireTLS = true
		default:
			if or(r.RequireTLS, false) {
				b.errorf(attrRange(body, "require_tls"), "Invalid require_tls",
					"require_tls = true needs tls = \"starttls\" (or \"implicit\"); this listener has no TLS.")
			}
		}
		l.Connect = enum(&b.checker, body, "connect", r.Connect, proxy.ConnectOnAccept, proxy.ConnectOnAccept, proxy.ConnectAfterAuth)
		l.Backend = b.listenerBackend(r, cfg)
		l.ProxyProtocol = or(r.ProxyProtocol, false)
		l.TrustedProxies = b.prefixes(body, "trusted_proxies", r.TrustedProxies)
		switch {
		case l.ProxyProtocol && len(r.TrustedProxies) == 0:
			b.errorf(attrRange(body, "proxy_protocol"), "Missing trusted_proxies",
				"proxy_protocol = true needs trusted_proxies: the addresses allowed to send a PROXY header.")
		case !l.ProxyProtocol && len(r.TrustedProxies) > 0:
			b.warnf(attrRange(body, "trusted_proxies"), "Unused trusted_proxies",
				"trusted_proxies has no effect without proxy_protocol = true.")
		}
		l.FilterNames = b.listenerFilters(r, cfg)
		b.hostnames(body, "server_name", r.ServerName, true)
		if len(r.ServerName) > 0 && l.TLS == proxy.TLSNone {
			b.warnf(attrRange(body, "server_name"), "Unused server_name", "server_name has no effect on a listener without TLS.")
		}
		if enum(&b.checker, body, "tls_min_version", r.TLSMinVersion, "1.2", "1.2", "1.3") == "1.3" {
			l.TLSMinVersion = tls.VersionTLS13
		}
		l.Limits = b.limits(r.Limits, cfg.Limits)
		b.interceptListener(r, &l, cfg)         // intercept.go
		l.AuthName = b.listenerAuth(r, &l, cfg) // authhttp.go
		out = append(out, l)
	}
	return out
}

// listenerBackend returns a listener's default backend: the one named, or
// the only one there is.
func (b *builder) listenerBackend(r *rawListener, cfg *Config) string {
	if r.Backend != nil {
		if cfg.Backend(*r.Backend) == nil && len(cfg.Backends) > 0 {
			b.errorf(attrRange(r.Body, "backend"), "Unknown backend",
				"There is no backend named %q; backends are %s.", *r.Backend, quoteAll(backendNames(cfg)))
		}
		return *r.Backend
	}
	switch len(cfg.Backends) {
	case 0:
		return ""
	case 1:
		return cfg.Backends[0].Name
	}
	b.errorf(r.LabelRange, "Missing backend",
		"Listener %q must name its default backend (backend = ...): there are several: %s.", r.Name, quoteAll(backendNames(cfg)))
	return ""
}

// listenerFilters returns the names of the filters a listener applies.
func (b *builder) listenerFilters(r *rawListener, cfg *Config) []string {
	if r.Filters == nil {
		return filterNames(cfg)
	}
	seen := map[string]bool{}
	var names []string
	for i, n := range *r.Filters {
		rng := elemRange(r.Body, "filters", i)
		switch {
		case cfg.Filter(n) == nil && len(cfg.Filters) == 0:
			b.errorf(rng, "Unknown filter", "There is no filter named %q: the file has no filter blocks.", n)
		case cfg.Filter(n) == nil:
			b.errorf(rng, "Unknown filter", "There is no filter named %q; filters are %s.", n, quoteAll(filterNames(cfg)))
		case seen[n]:
			b.errorf(rng, "Duplicate filter", "Filter %q is listed twice.", n)
		}
		seen[n] = true
		names = append(names, n)
	}
	return names
}

// blockName checks the name of a labelled block of kind ("listener",
// "backend"): not empty, and not used by an earlier block of that kind,
// which seen records.
func (b *builder) blockName(kind, name string, rng hcl.Range, seen map[string]hcl.Range) {
	if first, dup := seen[name]; dup {
		b.errorf(rng, "Duplicate "+kind, "A %s named %q is already defined at %s.", kind, name, first)
	}
	seen[name] = rng
	if name == "" {
		b.errorf(rng, "Invalid "+kind+" name", "A %s's name must not be empty.", kind)
	}
}

// backends converts the backend blocks.
func (b *builder) backends(raws []rawBackend, top hcl.Body) []Backend {
	if len(raws) == 0 {
		b.errorf(top.MissingItemRange(), "No backend", "At least one backend block is required.")
		return nil
	}
	seen := map[string]hcl.Range{}
	out := make([]Backend, 0, len(raws))
	for i := range raws {
		r := &raws[i]
		body := r.Body
		b.blockName("backend", r.Name, r.LabelRange, seen)
		be := Backend{CAFile: r.CAFile, ServerName: r.ServerName}
		be.Name, be.Address = r.Name, r.Address
		host := ""
		if !b.interceptBackend(r, &be) { // intercept.go
			host = b.pool(r, &be) // pools.go
		} else if be.OriginalDestination {
			b.poolAttrsUnused(r)
		}
		be.TLS = enum(&b.checker, body, "tls", r.TLS, proxy.TLSNone, proxy.TLSNone, proxy.TLSStartTLS, proxy.TLSImplicit)
		be.InsecureSkipVerify = or(r.InsecureSkipVerify, false)
		if be.ServerName == "" && len(be.Servers) == 0 {
			be.ServerName = host
		} else if has(body, "server_name") && !validHost(be.ServerName) {
			b.errorf(attrRange(body, "server_name"), "Invalid server_name", "%q is neither a host name nor an IP address.", be.ServerName)
		}
		if r.CAFile != "" {
			b.fileExists(body, "ca_file", r.CAFile)
		}
		if be.TLS == proxy.TLSNone && (r.OriginalDestination == nil || !*r.OriginalDestination) {
			// (An original-destination backend verifies the server with
			// ca_file when intercept_stls = "inspect" speaks TLS to it.)
			for _, a := range []string{"ca_file", "server_name", "insecure_skip_verify"} {
				if has(body, a) {
					b.warnf(attrRange(body, a), "Unused "+a, "%s has no effect on a backend with tls = \"none\".", a)
				}
			}
		} else if be.InsecureSkipVerify {
			b.warnf(attrRange(body, "insecure_skip_verify"), "Backend certificate not verified",
				"With insecure_skip_verify = true anyone between popgate and %s can read the passwords.", where(r))
		}
		be.Login = enum(&b.checker, body, "login", r.Login, proxy.LoginUser, proxy.LoginUser, proxy.LoginAPOP, proxy.LoginSASLPlain)
		be.Forward = enum(&b.checker, body, "forward_client", r.ForwardClient, proxy.ForwardNone,
			proxy.ForwardNone, proxy.ForwardXCLIENT, proxy.ForwardProxyV1, proxy.ForwardProxyV2)
		be.ConnectTimeout = b.duration(body, "connect_timeout", r.ConnectTimeout, proxy.DefaultConnectTimeout)
		be.ReadTimeout = b.duration(body, "read_timeout", r.ReadTimeout, 0)
		be.MasterUser, be.MasterPassword = r.MasterUser, r.MasterPassword
		b.masterLogin(r, &be, host)
		out = append(out, be)
	}
	return out
}

// masterLogin checks a backend's master_user and master_password.
func (b *builder) masterLogin(r *rawBackend, be *Backend, host string) {
	body := r.Body
	switch {
	case r.MasterUser == "" && r.MasterPassword == "":
		return
	case r.MasterUser == "":
		b.errorf(attrRange(body, "master_password"), "Missing master_user", "master_password needs master_user.")
		return
	case r.MasterPassword == "":
		b.errorf(attrRange(body, "master_user"), "Missing master_password", "master_user needs master_password.")
		return
	}
	if be.Login != proxy.LoginSASLPlain {
		b.errorf(attrRange(body, "master_user"), "Invalid master_user",
			"A master login needs login = \"sasl-plain\"; this backend uses %q.", be.Login)
	}
	if be.TLS == proxy.TLSNone && !isLoopback(host) {
		b.warnf(attrRange(body, "master_password"), "Master password in plaintext",
			"The master password is sent to %s without TLS.", where(r))
	}
}

// masterVerifiers refuses a master login that could act for a client no
// one has verified. With master_user the backend takes popgate's word for
// who the client is, so every after-auth listener that can reach such a
// backend (its default backend, or any route or route map entry, which
// apply to every after-auth listener) must verify passwords itself: today
// that is an apop filter, whose secrets file checks USER/PASS, APOP, and
// AUTH PLAIN, LOGIN and CRAM-MD5.
func (b *builder) masterVerifiers(raw *rawFile, cfg *Config) {
	routed := cfg.Routes.backends()
	for i, be := range cfg.Backends {
		if be.MasterUser == "" || i >= len(raw.Backends) {
			continue
		}
		for j := range cfg.Listeners {
			l := &cfg.Listeners[j]
			// An auth service may name any backend, by name or address.
			reachable := l.Backend == be.Name || routed[be.Name] || l.AuthName != ""
			if l.Connect != proxy.ConnectAfterAuth || !reachable || hasVerifier(cfg, l) {
				continue
			}
			b.errorf(attrRange(raw.Backends[i].Body, "master_user"), "Master login without password check",
				"Backend %q logs in as master user %q, which the backend trusts to act for any mailbox, but listener %q "+
					"has nothing that checks the client's password: add an apop filter (its secrets_file verifies "+
					"USER/PASS, APOP and AUTH PLAIN, LOGIN and CRAM-MD5) to that listener, or let it ask an auth_http "+
					"service with verifies_password = true.", be.Name, be.MasterUser, l.Name)
			break
		}
	}
}

// hasVerifier reports whether listener l applies a filter that verifies
// client passwords locally, or asks an auth service that verifies them.
func hasVerifier(cfg *Config, l *Listener) bool {
	if a := cfg.AuthService(l.AuthName); a != nil && a.VerifiesPassword {
		return true
	}
	for _, n := range l.FilterNames {
		if fc := cfg.Filter(n); fc != nil && fc.Type == "apop" {
			return true
		}
	}
	return false
}

// isLoopback reports whether host is "localhost" or a loopback address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// backendNames lists the configured backends' names.
func backendNames(cfg *Config) []string {
	names := make([]string, len(cfg.Backends))
	for i, be := range cfg.Backends {
		names[i] = be.Name
	}
	return names
}

// filterNames lists the configured filters' names; nil when there are
// none.
func filterNames(cfg *Config) []string {
	var names []string
	for _, f := range cfg.Filters {
		names = append(names, f.Name)
	}
	return names
}

// uniqueAddresses checks that no two listeners, nor a listener and the
// metrics endpoint, share an address. Port 0 (any free port) never
// clashes.
func (b *builder) uniqueAddresses(raw *rawFile) {
	type use struct {
		what string
		rng  hcl.Range
	}
	seen := map[string]use{}
	check := func(body hcl.Body, addr, what string) {
		key, ok := addressKey(addr)
		if !ok {
			return
		}
		rng := attrRange(body, "address")
		if first, dup := seen[key]; dup {
			b.errorf(rng, "Duplicate address", "%s is also used by %s at %s.", addr, first.what, first.rng)
			return
		}
		seen[key] = use{what, rng}
	}
	for _, l := range raw.Listeners {
		check(l.Body, l.Address, "listener "+strconv.Quote(l.Name))
	}
	if raw.Metrics != nil {
		check(raw.Metrics.Body, raw.Metrics.Address, "metrics")
	}
	if raw.Admin != nil && raw.Admin.Address != "" {
		check(raw.Admin.Body, raw.Admin.Address, "admin")
	}
}

// addressKey normalises host:port for comparison; ok is false for
// unparsable addresses and port 0.
func addressKey(addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "0" {
		return "", false
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.Unmap().String()
	}
	return strings.ToLower(host) + " " + port, true
}

// unused warns of backends and filters nothing refers to.
func (b *builder) unused(raw *rawFile, cfg *Config) {
	used := cfg.Routes.backends()
	byService := false // an auth service may name any backend
	for _, l := range cfg.Listeners {
		used[l.Backend] = true
		byService = byService || l.AuthName != ""
	}
	for _, r := range raw.Backends {
		if !used[r.Name] && !byService {
			b.warnf(r.LabelRange, "Unused backend", "No listener, route or route map uses backend %q.", r.Name)
		}
	}
	usedFilter := map[string]bool{}
	for i, l := range cfg.Listeners {
		for j, f := range l.FilterNames {
			usedFilter[f] = true
			if fc := cfg.Filter(f); fc != nil && fc.Type == "apop" && l.Connect == proxy.ConnectOnAccept {
				rng := raw.Listeners[i].LabelRange
				if raw.Listeners[i].Filters != nil {
					rng = elemRange(raw.Listeners[i].Body, "filters", j)
				}
				b.warnf(rng, "APOP filter inactive",
					"Filter %q only acts on listeners with connect = \"after-auth\"; on listener %q the backend answers APOP itself.", f, l.Name)
			}
		}
	}
	for i, f := range cfg.Filters {
		if !usedFilter[f.Name] && f.Settings != nil && len(cfg.Listeners) > 0 {
			b.warnf(raw.Filters[i].LabelRange, "Unused filter", "No listener applies filter %q.", f.Name)
		}
	}
}
