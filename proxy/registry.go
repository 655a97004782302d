package proxy

import (
	"crypto/tls"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/popgate/popgate/filters"
)

// The session registry: what the admin interface and the status page see
// of the sessions that are open. Reading it costs the sessions nothing but
// a few atomic stores: the counters they keep anyway (octets, the time of
// the last answer, the POP3 state), a pointer to the command in flight
// stored as an exchange starts, and a view of who the session is,
// published when that changes (after PROXY, at the backend greeting, at
// login).

// SessionInfo is a read-only snapshot of one open session, as
// Server.Snapshot returns it. The JSON names are those of the admin
// interface (`popgate sessions --json`).
type SessionInfo struct {
	ID       string `json:"id"`
	Listener string `json:"listener"`
	// Client is the client's address: the real one, after the PROXY
	// protocol, once the session read its header.
	Client netip.AddrPort `json:"client"`
	// TLS is the client connection's TLS version ("TLS 1.3"), "" while
	// the connection is in plaintext.
	TLS string `json:"tls,omitempty"`
	// State is the RFC 1939 state: AUTHORIZATION, TRANSACTION or UPDATE.
	State string `json:"state"`
	// User is the login name as the client typed it, BackendUser the one
	// used on the backend, after rewriting. Both are "" until a login
	// succeeded.
	User        string `json:"user,omitempty"`
	BackendUser string `json:"backend_user,omitempty"`
	Mechanism   string `json:"mechanism,omitempty"`
	// Backend is the name of the backend the session is connected to,
	// BackendAddr that backend's server address; "" until connected.
	Backend     string `json:"backend,omitempty"`
	BackendAddr string `json:"backend_addr,omitempty"`
	// Started is when the connection was accepted; Age is how long ago.
	Started time.Time     `json:"started"`
	Age     time.Duration `json:"age_ns"`
	// Idle is how long the session has waited for the client: zero while
	// a command is in flight, else the time since the last answer went
	// out (since the greeting, before any).
	Idle     time.Duration `json:"idle_ns"`
	BytesIn  int64         `json:"bytes_in"`  // octets read from the client
	BytesOut int64         `json:"bytes_out"` // octets written to the client
	// Command is the command in flight, with secrets masked
	// (parser.Command.Redacted); "" when the session waits for the
	// client. When several are pipelined it is the last one read.
	Command string `json:"command,omitempty"`
}

// sessionView is who a session is, published whole (never edited) so
// that Snapshot may read it from another goroutine.
type sessionView struct {
	client      netip.AddrPort
	login       filters.Login // Password always ""
	backendAddr string
}

// publish makes the session's current address, login and backend visible
// to Snapshot and Kick. The reading goroutine, owner of Session.Login,
// calls it whenever one of them changed.
func (s *session) publish() {
	v := &sessionView{client: netip.AddrPortFrom(s.clientIP(), addrPort(s.info.ClientAddr).Port())}
	v.login = s.info.Login
	v.login.Password = ""
	if s.be == nil {
		v.login.Backend = ""
	} else {
		v.login.Backend = s.be.name
		v.backendAddr = s.be.addr
	}
	s.view.Store(v)
}

// publishTLS records the client connection's TLS version once a
// handshake completed.
func (s *session) publishTLS(cs *tls.ConnectionState) {
	s.tlsVersion.Store(uint32(cs.Version))
}

// exchangeStarted and exchangeDone keep the command in flight: one
// atomic store as an exchange starts, one compare-and-swap as it ends.
// The Command is never edited once read, so Snapshot may read it.
func (s *session) exchangeStarted(x *exchange) { s.current.Store(&x.ex.Command) }
func (s *session) exchangeDone(x *exchange)    { s.current.CompareAndSwap(&x.ex.Command, nil) }

// snapshot returns the snapshot of s at now. It only reads atomics.
func (s *session) snapshot(now time.Time) SessionInfo {
	si := SessionInfo{
		ID:       s.info.ID,
		Listener: s.lst.Name,
		State:    s.info.State().String(),
		Started:  s.info.Started,
		Age:      now.Sub(s.info.Started),
		BytesIn:  s.in.Load(),
		BytesOut: s.out.Load(),
	}
	if v := s.view.Load(); v != nil {
		si.Client = v.client
		si.User, si.BackendUser, si.Mechanism = v.login.User, v.login.BackendUser, v.login.Mechanism
		si.Backend, si.BackendAddr = v.login.Backend, v.backendAddr
	} else {
		si.Client = addrPort(s.tcp.RemoteAddr()) // PROXY header not read yet
	}
	if tv := s.tlsVersion.Load(); tv != 0 {
		si.TLS = tls.VersionName(uint16(tv))
	}
	if c := s.current.Load(); c != nil {
		si.Command = c.Redacted()
	} else {
		last := s.info.Started
		if n := s.lastAnswer.Load(); n != 0 {
			last = time.Unix(0, n)
		}
		if si.Idle = now.Sub(last); si.Idle < 0 {
			si.Idle = 0
		}
	}
	return si
}

// Snapshot returns every open session, oldest first. It is safe to call
// at any time from any goroutine and never blocks a session: it holds the
// server's lock only to list them and reads each session's atomics.
func (s *Server) Snapshot() []SessionInfo {
	now := time.Now()
	s.mu.Lock()
	out := make([]SessionInfo, 0, len(s.sessions))
	for sess := range s.sessions {
		out = append(out, sess.snapshot(now))
	}
	s.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Started.Equal(out[j].Started) {
			return out[i].Started.Before(out[j].Started)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Match selects sessions for Snapshot filters and Kick. Every field set
// must match; a zero Match matches nothing in Kick (see Kick) and every
// session in Matches.
type Match struct {
	// ID matches the session id exactly.
	ID string
	// User matches the login name after rewriting or as typed,
	// case-insensitively.
	User string
	// Addr matches a client address inside the prefix (a single address
	// is a /32 or /128).
	Addr netip.Prefix
	// Backend matches the backend's name or its server address.
	Backend string
}

// IsZero reports whether m selects nothing in particular.
func (m Match) IsZero() bool { return m == Match{} }

// Matches reports whether si is selected by m.
func (m Match) Matches(si SessionInfo) bool {
	if m.ID != "" && si.ID != m.ID {
		return false
	}
	if m.User != "" && !strings.EqualFold(si.User, m.User) && !strings.EqualFold(si.BackendUser, m.User) {
		return false
	}
	if m.Addr.IsValid() && !m.Addr.Contains(si.Client.Addr().Unmap()) {
		return false
	}
	if m.Backend != "" && si.Backend != m.Backend && si.BackendAddr != m.Backend {
		return false
	}
	return true
}

// Kick closes every session m matches at once, without QUIT to the
// backend, so nothing a kicked session marked for deletion is deleted
// (RFC 1939 section 6: only QUIT in TRANSACTION enters UPDATE). It
// returns how many sessions it closed; a zero Match closes none.
func (s *Server) Kick(m Match) int {
	if m.IsZero() {
		return 0
	}
	now := time.Now()
	var kicked []*session
	s.mu.Lock()
	for sess := range s.sessions {
		if m.Matches(sess.snapshot(now)) {
			kicked = append(kicked, sess)
		}
	}
	s.mu.Unlock()
	for _, sess := range kicked {
		sess.log.Warn("session kicked by an administrator")
		sess.abort("kicked")
	}
	return len(kicked)
}
