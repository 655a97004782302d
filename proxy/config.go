package proxy

import (
	"crypto/tls"
	"net"
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
)

// TLSMode says how TLS is used on a connection.
type TLSMode int

// The TLS modes of listeners and backends.
const (
	TLSNone     TLSMode = iota // plaintext only
	TLSStartTLS                // plaintext, upgraded with STLS (RFC 2595)
	TLSImplicit                // TLS from the first byte (RFC 8314)
)

// ConnectMode says when a listener's sessions connect to their backend.
type ConnectMode int

// The connect modes.
const (
	// ConnectOnAccept dials the listener's backend at once and relays its
	// greeting; the client logs in to the backend directly.
	ConnectOnAccept ConnectMode = iota
	// ConnectAfterAuth makes popgate greet and take the login itself, then
	// route, dial and log in to the backend.
	ConnectAfterAuth
)

// LoginMethod is how popgate logs in to a backend in after-auth mode.
type LoginMethod int

// The backend login methods.
const (
	LoginUser      LoginMethod = iota // USER/PASS
	LoginAPOP                         // APOP with the backend greeting's timestamp
	LoginSASLPlain                    // AUTH PLAIN (RFC 5034), optionally as a master user
)

// ForwardMode is how the client's address is passed to a backend.
type ForwardMode int

// The client address forwarding modes.
const (
	ForwardNone    ForwardMode = iota
	ForwardXCLIENT             // Dovecot's XCLIENT ADDR/PORT, when the greeting offers [XCLIENT]
	ForwardProxyV1             // PROXY protocol v1 header
	ForwardProxyV2             // PROXY protocol v2 header
)

// InterceptMode says whether a listener takes connections the firewall
// redirected to it, and how it learns where they were going (intercept.go).
type InterceptMode int

// The interception modes of listeners.
const (
	InterceptNone     InterceptMode = iota // an ordinary listener
	InterceptRedirect                      // nat redirect/DNAT: getsockopt(SO_ORIGINAL_DST)
	InterceptTProxy                        // TPROXY: IP_TRANSPARENT listener; the local address
)

// InterceptSTLSMode is what an intercept listener does when the client
// sends STLS (engineer B's intercept_stls.go implements it).
type InterceptSTLSMode int

// The STLS modes of intercept listeners.
const (
	// InterceptSTLSTunnel relays STLS to the server and then the bytes,
	// untouched: the session goes opaque to every filter.
	InterceptSTLSTunnel InterceptSTLSMode = iota
	// InterceptSTLSInspect terminates STLS with a certificate minted for
	// the destination by Listener.InterceptCA, and speaks STLS to the server.
	InterceptSTLSInspect
	// InterceptSTLSRefuse hides STLS from the client: a downgrade, opt-in.
	InterceptSTLSRefuse
)

// Backend is one backend POP3 server, or a pool of interchangeable ones
// (pool.go).
type Backend struct {
	Name    string
	Address string // host:port; unused when Servers is set
	// Servers makes the backend a pool: each session picks one of these
	// host:port addresses by Balance and fails over to the next one when
	// it cannot be reached (pool.go). Empty means Address is a pool of one.
	Servers []string
	// Balance says how a pool's sessions pick their server.
	Balance Balance
	// Health tunes the servers' health checks (pool_health.go).
	Health HealthOptions
	TLS    TLSMode
	// TLSConfig verifies the backend for TLSStartTLS and TLSImplicit.
	TLSConfig *tls.Config
	// ServerTLS, when it has an entry for a server's address, verifies
	// that server instead of TLSConfig (each pool server is checked
	// against its own host name).
	ServerTLS      map[string]*tls.Config
	Login          LoginMethod
	Forward        ForwardMode
	ConnectTimeout time.Duration // zero means 10s
	ReadTimeout    time.Duration // zero means the listener's Limits.BackendTimeout
	// MasterUser and MasterPassword, when set with LoginSASLPlain, log in
	// as the master user on behalf of the client's login (authzid).
	MasterUser     string
	MasterPassword string
	// OriginalDestination makes the backend the server the client meant
	// to reach: the session's filters.Session.OriginalDest, checked
	// against Allowed and Denied (destination.go); Address is unused.
	OriginalDestination bool
	// Allowed lists the destinations an OriginalDestination backend may
	// connect to; empty allows none.
	Allowed []DestinationRule
	// Denied lists destinations refused even when allowed. popgate's own
	// listening addresses and the host's own addresses are always denied
	// too (destination.go).
	Denied []DestinationRule
	// SpoofSource connects to an OriginalDestination backend from the
	// client's own address (IP_TRANSPARENT); TPROXY listeners only.
	SpoofSource bool
}

// Limits bound what one session, or all of them, may use.
type Limits struct {
	MaxLine          int           // command line octets incl. CRLF; 0 = 255
	MaxErrors        int           // consecutive -ERR answers before closing; 0 = 5
	MaxAuthTries     int           // failed logins per connection; 0 = 3
	PreLoginTimeout  time.Duration // 0 = 60s
	IdleTimeout      time.Duration // 0 = 10m (RFC 1939 minimum)
	WriteTimeout     time.Duration // a client that reads nothing for this long is dropped; 0 = 60s
	PipelineDepth    int           // commands in flight per session; 0 = 128
	BackendTimeout   time.Duration // backend read timeout when the backend sets none; 0 = 60s
	HandshakeTimeout time.Duration // client TLS handshake; 0 = Config.HandshakeTimeout, else 15s
	MaxSessions      int           // per listener group; 0 = unlimited
	MaxSessionsPerIP int           // 0 = unlimited
	// MaxSessionsPerUser bounds the sessions one login name (after
	// rewriting) holds at once, across the cluster when the Server's
	// LoginState is shared; 0 = unlimited. It is a top-level limit: every
	// listener has the same value.
	MaxSessionsPerUser int
	// IPv6Prefix groups IPv6 clients into one address for login
	// throttling and MaxSessionsPerIP; 0 = 64. IPv4 counts per /32.
	IPv6Prefix int
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	d := DefaultLimits
	def(&l.MaxLine, d.MaxLine)
	def(&l.MaxErrors, d.MaxErrors)
	def(&l.MaxAuthTries, d.MaxAuthTries)
	def(&l.PipelineDepth, d.PipelineDepth)
	def(&l.IPv6Prefix, d.IPv6Prefix)
	defd(&l.PreLoginTimeout, d.PreLoginTimeout)
	defd(&l.IdleTimeout, d.IdleTimeout)
	defd(&l.WriteTimeout, d.WriteTimeout)
	defd(&l.BackendTimeout, d.BackendTimeout)
	return l
}

// Listener is one listening address and how its sessions behave.
type Listener struct {
	Name       string
	Address    string
	TLS        TLSMode
	RequireTLS bool // refuse USER/PASS/APOP/AUTH until TLS is up
	Connect    ConnectMode
	Backend    string // default backend name
	// ProxyProtocol expects a PROXY v1/v2 header from TrustedProxies and
	// refuses connections from anyone else.
	ProxyProtocol  bool
	TrustedProxies []netip.Prefix
	// TLSConfig terminates this listener's client TLS; nil means
	// Config.ServerTLS.
	TLSConfig *tls.Config
	// Filters is the chain for this listener's sessions, outermost first.
	Filters []filters.Filter
	Limits  Limits
	// Intercept makes the listener take firewall-redirected connections
	// and record where each was going (intercept.go).
	Intercept InterceptMode
	// InterceptSTLS is what an intercept listener does with STLS.
	InterceptSTLS InterceptSTLSMode
	// InterceptCA is the organisation's CA that mints per-destination
	// certificates for InterceptSTLSInspect; nil otherwise.
	InterceptCA *tls.Certificate
	// Auth, when set on an after-auth listener, is asked about every
	// login (authservice.go); nil means popgate's own routing only.
	Auth *AuthService

	ch *filters.Chain // Filters as a chain, built once when the server takes the Config
	// originalDest, when set, replaces the kernel's answer to where an
	// intercepted connection was going: a hook for tests.
	originalDest func(net.Conn) (netip.AddrPort, error)
}

// chain returns the listener's filter chain.
func (l *Listener) chain() *filters.Chain {
	if l.ch == nil {
		return filters.NewChain(l.Filters...)
	}
	return l.ch
}

// Router picks a backend name for a login name in after-auth mode. It
// returns "" to use the listener's backend.
type Router interface {
	Route(login string) string
}

// RouterFunc adapts a function to Router.
type RouterFunc func(login string) string

// Route calls f.
func (f RouterFunc) Route(login string) string { return f(login) }

// Config is one immutable snapshot of what the server runs. Reload swaps
// snapshots; sessions keep the one they started with.
type Config struct {
	Listeners []Listener
	Backends  map[string]*Backend
	Router    Router // nil: always the listener's backend
	// ServerTLS terminates client TLS (STLS and implicit). It may pick
	// certificates per SNI and change them across reloads.
	ServerTLS *tls.Config
	// HandshakeTimeout bounds client TLS handshakes; 0 = 15s.
	HandshakeTimeout time.Duration
	// Hooks receives events for metrics; nil fields are skipped.
	Hooks Hooks
	// Retired, when set, is called once, on a goroutine of the server,
	// after a Reload replaced this configuration and its last session has
	// ended: from then on no session uses its filters, and their owner
	// may close them. A configuration still in force at Shutdown is not
	// retired; its owner closes what it built after Shutdown returns.
	Retired func()
}

// Hooks are optional callbacks for metrics and health. They must be fast
// and safe for concurrent use.
type Hooks struct {
	SessionStarted func(listener string, tls bool)
	SessionEnded   func(listener string, tls bool, end filters.SessionEnd)
	Login          func(listener, mechanism, result string)
	Command        func(verb, status string)
	// Verdict reports a virus scanner's verdict on a RETR or TOP.
	Verdict     func(listener string, v *filters.Verdict)
	BackendDial func(backend string, d time.Duration, err error)
	// AuthService reports one login asked of an auth_http service:
	// result is "ok", "refused", "error" (no usable answer) or "cached"
	// (an OK from the cache), d how long the answer took.
	AuthService func(service, result string, d time.Duration)
	Throttled   func(listener, reason string)
}

// Logger is the logging interface the proxy uses.
type Logger = hclog.Logger
