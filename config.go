package main

import (
	"net/netip"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config is popgate's complete configuration, validated and with every
// default filled in. loadConfig and builtinConfig produce it; nothing in
// it needs parsing again. Relative file names are kept as written and are
// relative to the working directory; StateDir is absolute.
type Config struct {
	// StateDir holds generated state: the self-signed certificate, ACME
	// account and certificates (unless tls.acme.storage says otherwise).
	StateDir string
	// ShutdownTimeout bounds a graceful shutdown: sessions still open when
	// it expires are closed.
	ShutdownTimeout time.Duration
	Log             LogConfig
	// Limits are the top-level limits; every listener's Limits start from
	// them.
	Limits    LimitsConfig
	Listeners []ListenerConfig // at least one, in file order
	Backends  []BackendConfig  // at least one, in file order
	// Routes are tried in file order after RouteMap; the first match wins.
	Routes []RouteConfig
	// RouteMap is nil when no route_map block is given.
	RouteMap *RouteMapConfig
	TLS      TLSConfig
	// Filters are all configured filters in file order; a listener's
	// Filters name those it applies.
	Filters []FilterConfig
	// Metrics is nil when no metrics block is given (no metrics endpoint).
	Metrics *MetricsConfig
	// Spool is the spool block, defaults filled in.
	Spool SpoolConfig
}

// SpoolConfig is the spool block: the budget shared by every message a
// filter holds while it waits for a verdict (spool.Budget). Memory and
// Disk bound all such messages together; a message that finds the memory
// used up goes to disk, one that finds the disk used up is not scanned
// and follows the filter's on_error.
type SpoolConfig struct {
	Memory int64  // octets in memory, all messages together; default 256 MiB
	Disk   int64  // octets in temporary files, all together; default 4 GiB
	Dir    string // temporary files' directory; never "" (default os.TempDir())
}

// Backend returns the backend called name, or nil.
func (c *Config) Backend(name string) *BackendConfig {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i]
		}
	}
	return nil
}

// Filter returns the filter called name, or nil.
func (c *Config) Filter(name string) *FilterConfig {
	for i := range c.Filters {
		if c.Filters[i].Name == name {
			return &c.Filters[i]
		}
	}
	return nil
}

// LogConfig is the log block.
type LogConfig struct {
	Level hclog.Level // hclog.Trace ... hclog.Error; default hclog.Info
	JSON  bool        // format = "json"; default false (text)
}

// LimitsConfig is a limits block: the top-level one, or a listener's
// effective limits (top-level values overridden by the listener's own
// limits block). All values are positive unless noted.
type LimitsConfig struct {
	// MaxSessions is the most concurrent client sessions on one listener.
	MaxSessions int
	// MaxSessionsPerIP is the most concurrent sessions from one client
	// IP address on one listener; 0 means no per-address limit.
	MaxSessionsPerIP int
	// MaxLine is the longest command line accepted from a client, in
	// octets including CRLF (RFC 2449 section 4: at least 255), 255..8192.
	MaxLine int
	// MaxErrors is how many -ERR answers (bad commands) a session may
	// collect before it is closed.
	MaxErrors int
	// MaxAuthTries is how many failed logins a session may make before it
	// is closed.
	MaxAuthTries int
	// PreloginTimeout bounds the whole AUTHORIZATION state: a client that
	// has not logged in by then is disconnected.
	PreloginTimeout time.Duration
	// IdleTimeout is the inactivity timer of RFC 1939 section 3 (at least
	// 10 minutes by the RFC; smaller values are allowed with a warning).
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to the client.
	WriteTimeout time.Duration
	// BackendTimeout bounds a wait for the backend's response; a backend's
	// own read_timeout overrides it.
	BackendTimeout time.Duration
	// HandshakeTimeout bounds a client TLS handshake (implicit TLS or
	// after STLS).
	HandshakeTimeout time.Duration
	// PipelineDepth is the most client commands read ahead of their
	// responses (RFC 2449 PIPELINING); 1 disables pipelining.
	PipelineDepth int
	// IPv6Prefix is the prefix length that makes one IPv6 client "one
	// address" for login throttling and max_sessions_per_ip: a /64 is
	// what one customer typically gets. IPv4 addresses count one by one.
	IPv6Prefix int
}

// TLSMode is how TLS is used on a listener or towards a backend.
type TLSMode string

// The TLS modes.
const (
	TLSNone     TLSMode = "none"     // plaintext only
	TLSStartTLS TLSMode = "starttls" // plaintext, upgraded by STLS (RFC 2595)
	TLSImplicit TLSMode = "implicit" // TLS from the first octet (POP3S)
)

// ConnectMode is when a listener connects to the backend.
type ConnectMode string

// The connect modes.
const (
	// ConnectOnAccept connects when the client connects and relays the
	// backend's greeting: the most transparent mode.
	ConnectOnAccept ConnectMode = "on-accept"
	// ConnectAfterAuth greets the client itself and connects after the
	// client's credentials are known, so routing can choose the backend.
	ConnectAfterAuth ConnectMode = "after-auth"
)

// LoginMode is how popgate logs in to a backend after connect = after-auth.
type LoginMode string

// The backend login modes.
const (
	LoginUser      LoginMode = "user"       // USER and PASS (RFC 1939)
	LoginAPOP      LoginMode = "apop"       // APOP (RFC 1939 section 7)
	LoginSASLPlain LoginMode = "sasl-plain" // AUTH PLAIN (RFC 5034, RFC 4616)
)

// ForwardMode is how the client's address is told to a backend.
type ForwardMode string

// The client forwarding modes.
const (
	ForwardNone    ForwardMode = "none"
	ForwardXCLIENT ForwardMode = "xclient"  // XCLIENT ADDR= PORT= (Dovecot)
	ForwardProxyV1 ForwardMode = "proxy-v1" // HAProxy PROXY protocol, text
	ForwardProxyV2 ForwardMode = "proxy-v2" // HAProxy PROXY protocol, binary
)

// ListenerConfig is a listener block.
type ListenerConfig struct {
	Name    string // the block label, unique
	Address string // host:port as written; host may be empty (all addresses)
	TLS     TLSMode
	// RequireTLS refuses everything but CAPA, STLS and QUIT before TLS.
	// Default true for starttls; always true for implicit; false for none.
	RequireTLS bool
	Connect    ConnectMode // default ConnectOnAccept
	// Backend is the listener's default backend, used when no route
	// matches; always names an existing backend.
	Backend string
	// ProxyProtocol accepts a HAProxy PROXY header (v1 or v2) from
	// TrustedProxies; connections from other addresses are refused.
	ProxyProtocol  bool
	TrustedProxies []netip.Prefix // masked; non-empty when ProxyProtocol
	// Filters names the filters applied, in order. When the listener has
	// no filters attribute it lists every filter in file order.
	Filters []string
	// ServerNames are the names put in the self-signed certificate made
	// when no certificate or ACME is configured; may be empty.
	ServerNames []string
	// TLSMinVersion is tls.VersionTLS12 (default) or tls.VersionTLS13.
	TLSMinVersion uint16
	// Limits are the effective limits of this listener.
	Limits LimitsConfig
}

// BackendConfig is a backend block.
type BackendConfig struct {
	Name    string // the block label, unique
	Address string // host:port, host not empty
	TLS     TLSMode
	CAFile  string // PEM roots to verify the backend; "" = system roots
	// ServerName is verified in the backend's certificate; default the
	// host part of Address.
	ServerName         string
	InsecureSkipVerify bool
	Login              LoginMode   // default LoginUser
	ForwardClient      ForwardMode // default ForwardNone
	ConnectTimeout     time.Duration
	// ReadTimeout bounds a wait for a response from this backend; 0 means
	// the listener's Limits.BackendTimeout applies.
	ReadTimeout time.Duration
	// MasterUser and MasterPassword, when set (both or neither, only with
	// LoginSASLPlain), log in as MasterUser with MasterPassword on behalf
	// of the user (the user is the SASL authorization identity).
	// MasterPassword is a secret: never log it.
	MasterUser     string
	MasterPassword string
}

// RouteConfig is a route block.
type RouteConfig struct {
	// User is a path.Match pattern, lower-cased; match it against the
	// lower-cased login name.
	User    string
	Backend string // always names an existing backend
}

// RouteMapConfig is the route_map block with its file already read.
type RouteMapConfig struct {
	File string
	// Users maps a lower-cased login name to a backend name; every backend
	// named exists. Exact entries are consulted before route blocks.
	Users map[string]string
}

// TLSConfig is the tls block. With neither certificates nor ACME, TLS
// listeners use a self-signed certificate kept under Config.StateDir.
type TLSConfig struct {
	Certificates []CertificateConfig
	ACME         *ACMEConfig // nil when no acme block is given
}

// CertificateConfig is a tls.certificate block: a PEM certificate chain and
// its private key.
type CertificateConfig struct {
	CertFile string
	KeyFile  string
}

// ACMEConfig is a tls.acme block: certificates obtained from an ACME CA
// (RFC 8555) through HTTP-01 or TLS-ALPN-01 challenges.
type ACMEConfig struct {
	Domains     []string // at least one; no wildcards
	Email       string   // may be empty
	Directory   string   // default Let's Encrypt production
	CAFile      string   // PEM roots trusted for the directory; "" = system
	Storage     string   // default Config.StateDir
	HTTPPort    int      // HTTP-01 challenge port, default 80
	TLSALPNPort int      // TLS-ALPN-01 challenge port, default 443
	ListenHost  string   // challenge listeners' host; "" = all addresses
	Profile     string   // ACME profile to request; "" = the CA's default
}

// MetricsConfig is the metrics block: a Prometheus endpoint.
type MetricsConfig struct {
	Address string // host:port of the HTTP listener serving /metrics
}

// FilterConfig is a filter block.
type FilterConfig struct {
	Type     string // "audit", "apop", "rewrite", "clamav" or "policy"
	Name     string // the name attribute, default Type; unique
	Settings FilterSettings
}

// FilterSettings is one of *AuditFilterConfig, *APOPFilterConfig,
// *RewriteFilterConfig, *ClamAVFilterConfig or *PolicyFilterConfig.
type FilterSettings interface {
	filterType() string
}
