package config

import (
	"crypto/tls"
	"crypto/x509"

	"github.com/popgate/popgate/proxy"
)

// Interception (issue 13, docs/INTERCEPT.md): a listener with intercept =
// "redirect" or "tproxy" takes connections the firewall diverted to it, and
// a backend with original_destination = true connects where each was
// going. Such listeners are on-accept only: the client logs in to the
// server it meant to reach, so nothing of popgate's own login handling
// (after-auth, routes, require_tls, the apop filter) applies, and a PROXY
// header cannot come from a client that does not know popgate exists.

// interceptListener decodes and checks a listener's intercept attributes.
func (b *builder) interceptListener(r *rawListener, l *Listener, cfg *Config) {
	body := r.Body
	l.Intercept = enum(&b.checker, body, "intercept", r.Intercept, proxy.InterceptNone,
		proxy.InterceptNone, proxy.InterceptRedirect, proxy.InterceptTProxy)
	l.InterceptSTLS = enum(&b.checker, body, "intercept_stls", r.InterceptSTLS, proxy.InterceptSTLSTunnel,
		proxy.InterceptSTLSTunnel, proxy.InterceptSTLSInspect, proxy.InterceptSTLSRefuse)
	l.InterceptCACert, l.InterceptCAKey = r.InterceptCACert, r.InterceptCAKey
	if l.Intercept == proxy.InterceptNone {
		for _, a := range []string{"intercept_stls", "intercept_ca_cert", "intercept_ca_key"} {
			if has(body, a) {
				b.warnf(attrRange(body, a), "Unused "+a, "%s has no effect on a listener without intercept.", a)
			}
		}
		return
	}
	if l.Connect == proxy.ConnectAfterAuth {
		b.errorf(attrRange(body, "connect"), "Intercept listener is on-accept only",
			"An intercept listener relays the login to the server the client meant to reach; connect = \"after-auth\" "+
				"(and with it routes and route maps, which only apply to after-auth listeners) cannot be used.")
	}
	if l.ProxyProtocol {
		b.errorf(attrRange(body, "proxy_protocol"), "PROXY protocol on an intercept listener",
			"Intercepted clients do not know popgate exists and send no PROXY header; the client address is the connection's own.")
	}
	if has(body, "require_tls") {
		b.errorf(attrRange(body, "require_tls"), "require_tls on an intercept listener",
			"An intercept listener never takes the login itself; what happens to STLS is set by intercept_stls.")
	}
	switch {
	case l.TLS == proxy.TLSStartTLS:
		b.errorf(attrRange(body, "tls"), "STLS on an intercept listener",
			"On an intercept listener STLS belongs to the server the client meant to reach; intercept_stls says what "+
				"popgate does with it. Use tls = \"none\" (port 110) or \"implicit\" (port 995, with intercept_stls = \"inspect\").")
	case l.TLS == proxy.TLSImplicit && l.InterceptSTLS != proxy.InterceptSTLSInspect:
		b.errorf(attrRange(body, "tls"), "Implicit TLS interception needs inspect",
			"Intercepting POP3S (port 995) means terminating TLS with a certificate minted for each destination: "+
				"set intercept_stls = \"inspect\" with intercept_ca_cert and intercept_ca_key.")
	}
	for i, n := range l.FilterNames {
		if fc := cfg.Filter(n); fc != nil && fc.Type == "apop" {
			rng := r.LabelRange
			if r.Filters != nil {
				rng = elemRange(body, "filters", i)
			}
			b.errorf(rng, "Login filter on an intercept listener",
				"Filter %q checks logins itself (after-auth only); on an intercept listener the destination server does.", n)
		}
	}
	switch l.InterceptSTLS {
	case proxy.InterceptSTLSRefuse:
		b.warnf(attrRange(body, "intercept_stls"), "STLS downgrade",
			"intercept_stls = \"refuse\" hides STLS from clients that would use it: their passwords and mail then "+
				"cross the network in plaintext. This is a downgrade of the clients' security (STLS stripping).")
	case proxy.InterceptSTLSInspect:
		b.interceptCA(r)
		return
	}
	for _, a := range []string{"intercept_ca_cert", "intercept_ca_key"} {
		if has(body, a) {
			b.warnf(attrRange(body, a), "Unused "+a, "%s is only used with intercept_stls = \"inspect\".", a)
		}
	}
}

// interceptCA checks the CA certificate and key that inspect mode mints
// certificates with: both given, both readable, a matching pair, and the
// certificate a CA.
func (b *builder) interceptCA(r *rawListener) {
	body := r.Body
	ok := true
	for _, a := range []struct{ name, file string }{{"intercept_ca_cert", r.InterceptCACert}, {"intercept_ca_key", r.InterceptCAKey}} {
		if a.file == "" {
			b.errorf(attrRange(body, "intercept_stls"), "Missing "+a.name,
				"intercept_stls = \"inspect\" mints certificates from an organisational CA the clients trust: set %s.", a.name)
			ok = false
		} else if !b.fileExists(body, a.name, a.file) {
			ok = false
		}
	}
	if !ok {
		return
	}
	pair, err := tls.LoadX509KeyPair(r.InterceptCACert, r.InterceptCAKey)
	if err != nil {
		b.errorf(attrRange(body, "intercept_ca_key"), "Invalid intercept CA", "%s.", err)
		return
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		b.errorf(attrRange(body, "intercept_ca_cert"), "Invalid intercept CA", "%s.", err)
		return
	}
	if !leaf.IsCA || leaf.KeyUsage != 0 && leaf.KeyUsage&x509.KeyUsageCertSign == 0 {
		b.errorf(attrRange(body, "intercept_ca_cert"), "Not a CA certificate",
			"%q cannot sign certificates (it needs basicConstraints CA:TRUE and keyCertSign).", r.InterceptCACert)
	}
}

// interceptBackend decodes and checks a backend's original_destination
// attributes. It returns true when the backend's address needs no further
// check: an original_destination backend has none, and a missing address
// has been reported.
func (b *builder) interceptBackend(r *rawBackend, be *Backend) bool {
	body := r.Body
	be.OriginalDestination = or(r.OriginalDestination, false)
	be.SpoofSource = or(r.SpoofSource, false)
	be.Allowed = b.destinations(r, "allowed_destinations", r.AllowedDestinations)
	be.Denied = b.destinations(r, "denied_destinations", r.DeniedDestinations)
	if !be.OriginalDestination {
		for _, a := range []string{"allowed_destinations", "denied_destinations", "spoof_source"} {
			if has(body, a) {
				b.warnf(attrRange(body, a), "Unused "+a, "%s has no effect without original_destination = true.", a)
			}
		}
		if !has(body, "address") && !has(body, "servers") {
			b.errorf(r.LabelRange, "Missing address",
				"Backend %q needs an address (host:port) or servers (a pool), unless it is original_destination = true.", r.Name)
			return true
		}
		return false
	}
	if has(body, "servers") {
		b.errorf(attrRange(body, "servers"), "Servers on an original_destination backend",
			"An original_destination backend connects wherever each client was going, one destination per session; it takes no servers.")
	}
	if has(body, "address") {
		b.errorf(attrRange(body, "address"), "Address on an original_destination backend",
			"An original_destination backend connects wherever each client was going; it takes no address.")
	}
	if len(r.AllowedDestinations) == 0 {
		b.errorf(attrRange(body, "original_destination"), "Missing allowed_destinations",
			"An original_destination backend needs allowed_destinations, the networks (and ports) it may connect to, "+
				"e.g. [\"0.0.0.0/0:110\", \"[::]/0:110\"]; without them it would connect nowhere.")
	}
	if r.MasterUser != "" {
		b.errorf(attrRange(body, "master_user"), "Master login on an original_destination backend",
			"The client logs in to the server it meant to reach itself; popgate logs in nowhere on its behalf.")
	}
	if r.ForwardClient != nil && *r.ForwardClient != "none" {
		b.errorf(attrRange(body, "forward_client"), "forward_client on an original_destination backend",
			"The servers an intercepting backend reaches are not yours: popgate sends them no XCLIENT or PROXY header "+
				"with the client's address (use spoof_source with TPROXY to connect from the client's own address).")
	}
	return true
}

// destinations parses a list of destination rules.
func (b *builder) destinations(r *rawBackend, name string, list []string) []proxy.DestinationRule {
	var out []proxy.DestinationRule
	for i, s := range list {
		d, err := proxy.ParseDestinationRule(s)
		if err != nil {
			b.errorf(elemRange(r.Body, name, i), "Invalid "+name,
				"%s; write a network with an optional port: \"0.0.0.0/0:110\", \"[2001:db8::/32]:110\", \"10.0.0.0/8\".", err)
			continue
		}
		out = append(out, d)
	}
	return out
}

// interceptUses checks who uses original_destination backends: only
// intercept listeners know an original destination (routes serve
// after-auth listeners, which never intercept), and spoof_source needs
// TPROXY, whose routing returns the server's answers to popgate.
func (b *builder) interceptUses(raw *rawFile, cfg *Config) {
	for i, be := range cfg.Backends {
		if !be.OriginalDestination || i >= len(raw.Backends) {
			continue
		}
		for j := range cfg.Listeners {
			l := &cfg.Listeners[j]
			if l.Backend != be.Name || j >= len(raw.Listeners) {
				continue
			}
			if l.Intercept == proxy.InterceptNone {
				rb := raw.Listeners[j]
				rng := attrRange(rb.Body, "backend")
				if !has(rb.Body, "backend") {
					rng = rb.LabelRange
				}
				b.errorf(rng, "original_destination backend on an ordinary listener",
					"Backend %q connects where each client was going, which only a listener with intercept = \"redirect\" "+
						"or \"tproxy\" knows; listener %q has no intercept.", be.Name, l.Name)
			}
			if be.SpoofSource && l.Intercept != proxy.InterceptTProxy {
				b.errorf(attrRange(raw.Backends[i].Body, "spoof_source"), "spoof_source needs tproxy",
					"spoof_source connects from the client's address, which only works when TPROXY routing brings the "+
						"server's answers back to popgate; listener %q uses intercept = %q.", l.Name, l.Intercept)
			}
		}
		for _, rt := range raw.Routes {
			if rt.Backend == be.Name {
				b.errorf(attrRange(rt.Body, "backend"), "Route to an original_destination backend",
					"Routes only apply to after-auth listeners, which cannot intercept; backend %q has no address of its own.", be.Name)
			}
		}
		for user, name := range cfg.Routes.Users {
			if name == be.Name && raw.RouteMap != nil {
				b.errorf(attrRange(raw.RouteMap.Body, "file"), "Route map entry to an original_destination backend",
					"The route map sends %q to backend %q, which has no address of its own.", user, be.Name)
				break
			}
		}
	}
}
