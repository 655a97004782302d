package config

import (
	"net"
	"strings"

	"github.com/popgate/popgate/proxy"
)

// Backend pools (issue 11, docs/CONFIG.md "Backend pools"): a backend
// names one address, or several interchangeable servers, a balance mode
// that picks one per session, and the health checks that take a failing
// server out of the rotation for a while.

// maxFailThreshold bounds fail_threshold: a server that fails that often
// in a row is down by any measure.
const maxFailThreshold = 1000

// pool decodes and checks a backend's address or servers, balance and
// health options. It returns the host the backend's warnings speak of:
// the address's host, or for a pool one that is not a loopback address
// if any is (so that a plaintext master password to a remote pool server
// is still warned about); "" when the addresses are invalid.
func (b *builder) pool(r *rawBackend, be *Backend) string {
	body := r.Body
	be.Balance = enum(&b.checker, body, "balance", r.Balance, proxy.BalanceDefault,
		proxy.BalanceUser, proxy.BalanceSource, proxy.BalanceLeastConn, proxy.BalanceFirst)
	be.Health.Interval = b.duration(body, "health_check_interval", r.HealthCheckInterval, 0)
	be.Health.FailThreshold = b.integer(body, "fail_threshold", r.FailThreshold, proxy.DefaultFailThreshold, 1, maxFailThreshold)
	be.Health.DownBackoff = b.duration(body, "down_backoff", r.DownBackoff, proxy.DefaultDownBackoff)
	if !has(body, "servers") {
		if has(body, "balance") {
			b.warnf(attrRange(body, "balance"), "Unused balance",
				"balance chooses among servers; backend %q has one address.", r.Name)
		}
		if b.address(body, "address", r.Address, false, false) {
			host, _, _ := net.SplitHostPort(r.Address)
			return host
		}
		return ""
	}
	if has(body, "address") {
		b.errorf(attrRange(body, "servers"), "Both address and servers",
			"A backend has either one address or a pool of servers; backend %q sets both (a single address is a pool of one).", r.Name)
		return ""
	}
	if len(r.Servers) == 0 {
		b.errorf(attrRange(body, "servers"), "Empty servers", "servers must name at least one host:port.")
		return ""
	}
	host := ""
	seen := map[string]int{}
	for i, s := range r.Servers {
		rng := elemRange(body, "servers", i)
		if !b.addressAt(rng, "servers", s, false, false) {
			continue
		}
		key, _ := addressKey(s)
		if first, dup := seen[key]; dup {
			b.errorf(rng, "Duplicate server", "%q is server %d of this pool already.", s, first+1)
			continue
		}
		seen[key] = i
		h, _, _ := net.SplitHostPort(s)
		if host == "" || !isLoopback(h) {
			host = h
		}
	}
	be.Servers = r.Servers
	return host
}

// poolAttrsUnused warns of pool attributes on an original_destination
// backend, which has one destination per session and no health state.
func (b *builder) poolAttrsUnused(r *rawBackend) {
	for _, a := range []string{"balance", "health_check_interval", "fail_threshold", "down_backoff"} {
		if has(r.Body, a) {
			b.warnf(attrRange(r.Body, a), "Unused "+a,
				"%s has no effect on an original_destination backend: each session connects where its client was going.", a)
		}
	}
}

// poolUses refuses balance = "user" on a backend that an on-accept
// listener uses: such a listener connects before the client says who it
// is, so there is no login name to hash.
func (b *builder) poolUses(raw *rawFile, cfg *Config) {
	for i, be := range cfg.Backends {
		if be.Balance != proxy.BalanceUser || i >= len(raw.Backends) {
			continue
		}
		for _, l := range cfg.Listeners {
			if l.Backend != be.Name || l.Connect != proxy.ConnectOnAccept {
				continue
			}
			b.errorf(attrRange(raw.Backends[i].Body, "balance"), "balance = \"user\" on an on-accept listener",
				"Listener %q connects to backend %q before the client logs in, so there is no user to balance by: "+
					"use \"least-conn\" (the on-accept default), \"source\" or \"first\", or connect = \"after-auth\".",
				l.Name, be.Name)
			break
		}
	}
}

// where names a backend's servers in a diagnostic: its address, or its
// pool's servers.
func where(r *rawBackend) string {
	if len(r.Servers) > 0 {
		return strings.Join(r.Servers, ", ")
	}
	return r.Address
}
