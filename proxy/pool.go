package proxy

import (
	"cmp"
	"crypto/tls"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Balance says how a session picks a server of its backend's pool.
type Balance int

// The balance modes. The zero value picks by the listener: BalanceUser
// after authentication, BalanceLeastConn on accept, when no user is known.
const (
	BalanceDefault   Balance = iota
	BalanceUser              // rendezvous hashing of the backend login name
	BalanceSource            // rendezvous hashing of the client's IP address
	BalanceLeastConn         // fewest sessions of this instance
	BalanceFirst             // the first server that is up, in configured order
)

// String returns the configuration name of b.
func (b Balance) String() string {
	switch b {
	case BalanceUser:
		return "user"
	case BalanceSource:
		return "source"
	case BalanceLeastConn:
		return "least-conn"
	case BalanceFirst:
		return "first"
	}
	return "default"
}

// servers returns the addresses of b's pool, in configured order: its
// Servers, or its Address alone.
func (b *Backend) servers() []string {
	if len(b.Servers) > 0 {
		return b.Servers
	}
	return []string{b.Address}
}

// tlsConfigFor returns the client TLS configuration that verifies the
// server at addr of b. A server outside b's own (one an auth service
// named) is verified as itself, under its own host, unless b's server
// name was set explicitly to something other than the host of one of
// b's servers.
func (b *Backend) tlsConfigFor(addr string) *tls.Config {
	if c, ok := b.ServerTLS[addr]; ok {
		return c
	}
	if b.TLSConfig == nil || addr == "" || slices.Contains(b.servers(), addr) {
		return b.TLSConfig
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return b.TLSConfig
	}
	name := b.TLSConfig.ServerName
	defaulted := name == ""
	for _, own := range b.servers() {
		if h, _, err := net.SplitHostPort(own); err == nil && h == name {
			defaulted = true
		}
	}
	if !defaulted {
		return b.TLSConfig
	}
	c := b.TLSConfig.Clone()
	c.ServerName = host
	return c
}

// poolSet is the registry of every backend's servers and their health.
// The Server owns it for its whole life, across configurations: Start and
// Reload update it (servers kept keep their state, checkers of removed
// servers stop), sessions read it to choose a server and report what
// happened.
type poolSet struct {
	logger hclog.Logger

	mu     sync.Mutex
	pools  map[string]map[string]*serverState // backend name -> address -> state
	closed bool
}

func newPoolSet(logger hclog.Logger) *poolSet {
	return &poolSet{logger: logger, pools: map[string]map[string]*serverState{}}
}

// update makes the registry follow cfg: new servers start up, kept ones
// keep their state and take the new health options, removed ones (and
// their active checkers) stop. Original-destination backends have no pool.
func (ps *poolSet) update(cfg *Config) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	if ps.closed {
		return
	}
	seen := map[string]bool{}
	for name, b := range cfg.Backends {
		if b.OriginalDestination {
			continue
		}
		seen[name] = true
		members := ps.pools[name]
		if members == nil {
			members = map[string]*serverState{}
			ps.pools[name] = members
		}
		want := map[string]bool{}
		for _, addr := range b.servers() {
			want[addr] = true
			st := members[addr]
			if st == nil {
				st = newServerState(name, addr, ps.logger)
				members[addr] = st
			}
			st.configure(b)
		}
		for addr, st := range members {
			if !want[addr] {
				st.retire()
				delete(members, addr)
			}
		}
	}
	for name, members := range ps.pools {
		if seen[name] {
			continue
		}
		for _, st := range members {
			st.retire()
		}
		delete(ps.pools, name)
	}
}

// close stops every active checker; the registry takes no more updates.
func (ps *poolSet) close() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.closed = true
	for _, members := range ps.pools {
		for _, st := range members {
			st.retire()
		}
	}
}

// states returns the state of each server of b, in b's configured order.
// b may be from a configuration a reload replaced (a session accepted
// before the reload logs in after it): a server the reload removed is
// left out then, so that no new login goes to a server taken out for
// maintenance, while at least one of b's servers remains. When none
// does, each gets a state of its own that nothing else shares.
func (ps *poolSet) states(b *Backend) []*serverState {
	addrs := b.servers()
	out := make([]*serverState, 0, len(addrs))
	ps.mu.Lock()
	members := ps.pools[b.Name]
	for _, addr := range addrs {
		if st := members[addr]; st != nil {
			out = append(out, st)
		}
	}
	ps.mu.Unlock()
	if len(out) > 0 {
		return out
	}
	for _, addr := range addrs {
		st := newServerState(b.Name, addr, hclog.NewNullLogger())
		st.opts = b.Health.withDefaults()
		out = append(out, st)
	}
	return out
}

// order returns the servers of b in the order a session tries them under
// balance mode, with key the login name (BalanceUser) or client address
// (BalanceSource). Health does not change the order: the dial loop skips
// servers that are down (backend.go).
func order(states []*serverState, mode Balance, key string) []*serverState {
	out := slices.Clone(states)
	switch mode {
	case BalanceUser, BalanceSource:
		w := make(map[*serverState]uint64, len(out))
		for _, st := range out {
			w[st] = rendezvousWeight(key, st.addr)
		}
		slices.SortStableFunc(out, func(a, b *serverState) int {
			switch {
			case w[a] > w[b]:
				return -1
			case w[a] < w[b]:
				return 1
			}
			return strings.Compare(a.addr, b.addr)
		})
	case BalanceLeastConn:
		// The counts move while sessions come and go: sort a snapshot.
		// Ties go in a random order, so that an idle pool spreads its
		// sessions rather than sending all of them to the first server.
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		n := make(map[*serverState]int64, len(out))
		for _, st := range out {
			n[st] = st.open.Load()
		}
		slices.SortStableFunc(out, func(a, b *serverState) int { return cmp.Compare(n[a], n[b]) })
	}
	return out
}

// rendezvousWeight is the highest-random-weight score of server for key
// (Thaler and Ravishankar, 1998): each key goes to the server that scores
// highest, so removing a server moves only the keys it held. The hash is
// FNV-1a with a splitmix64 finaliser: stable across processes and
// versions, so every popgate instance in front of the same pool agrees.
func rendezvousWeight(key, server string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(server))
	h.Write([]byte{0})
	h.Write([]byte(key))
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// balanceFor is the mode s uses for backend b: b's Balance, or the
// listener's default. A session that knows no user (on accept) cannot hash
// one and counts connections instead.
func (s *session) balanceFor(b *Backend) (Balance, string) {
	mode := b.Balance
	if mode == BalanceDefault {
		mode = BalanceUser
		if s.lst.Connect == ConnectOnAccept {
			mode = BalanceLeastConn
		}
	}
	switch mode {
	case BalanceUser:
		if s.lst.Connect == ConnectOnAccept || s.info.Login.BackendUser == "" {
			return BalanceLeastConn, ""
		}
		// Login names are case-insensitive on the mail servers popgate
		// fronts: Alice and alice are one mailbox, on one server.
		return mode, strings.ToLower(s.info.Login.BackendUser)
	case BalanceSource:
		return mode, s.clientIP().String()
	}
	return mode, ""
}

// ServerStatus is the state of one server of a backend's pool, for
// /metrics and /healthz. Every field comes from the configuration or
// from popgate's own observations, never from a client.
type ServerStatus struct {
	Backend string `json:"-"`
	// Pool is true for a backend configured with servers, false for a
	// single address (a pool of one).
	Pool   bool   `json:"-"`
	Server string `json:"server"` // host:port as configured
	Up     bool   `json:"up"`
	// Failures counts every failed connection attempt and check since the
	// server entered the configuration.
	Failures uint64 `json:"failures"`
	// Sessions counts this instance's sessions connected to the server.
	Sessions  int64  `json:"sessions"`
	LastError string `json:"last_error,omitempty"`
}

// Pools returns the state of every server of every pool, sorted by
// backend and server address.
func (s *Server) Pools() []ServerStatus {
	ps := s.pools
	ps.mu.Lock()
	var states []*serverState
	for _, members := range ps.pools {
		for _, st := range members {
			states = append(states, st)
		}
	}
	ps.mu.Unlock()
	out := make([]ServerStatus, 0, len(states))
	for _, st := range states {
		out = append(out, st.status())
	}
	slices.SortFunc(out, func(a, b ServerStatus) int {
		if c := strings.Compare(a.Backend, b.Backend); c != 0 {
			return c
		}
		return strings.Compare(a.Server, b.Server)
	})
	return out
}
