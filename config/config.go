package config

import (
	"path"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/admin"
	"github.com/popgate/popgate/authhttp"
	"github.com/popgate/popgate/cluster"
	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// Config is popgate's complete configuration, validated and with every
// default filled in. Load, Parse and Builtin produce it; nothing in it
// needs parsing again, and nothing changes it afterwards. Relative file
// names are kept as written and are relative to the working directory;
// StateDir is absolute.
//
// Each block decodes into the option type of the package that runs it:
// proxy.Limits, proxy.Listener and proxy.Backend, tlsconf.Options, and
// each filter package's Config. Config adds only what those types cannot
// hold before popgate runs: names that run resolves into instances (a
// listener's filters, its TLS configuration, a backend's TLS client
// configuration, whose CA file is read when popgate starts).
type Config struct {
	// StateDir holds generated state: the self-signed certificate, ACME
	// account and certificates (unless tls.acme.storage says otherwise).
	StateDir string
	// ShutdownTimeout bounds a graceful shutdown: sessions still open when
	// it expires are closed.
	ShutdownTimeout time.Duration
	Log             Log
	// Limits are the top-level limits; every listener's Limits start from
	// them.
	Limits    proxy.Limits
	Listeners []Listener // at least one, in file order
	Backends  []Backend  // at least one, in file order
	// Routes route after-auth logins: the route map, then the route
	// blocks. It is the proxy.Router of every after-auth listener.
	Routes Routes
	// TLS is the tls block, with StateDir and the self-signed names of
	// every listener's server_name filled in; Logger is left to the
	// caller. With neither certificates nor ACME, TLS listeners use a
	// self-signed certificate kept under StateDir.
	TLS tlsconf.Options
	// Filters are all configured filters in file order; a listener's
	// FilterNames name those it applies.
	Filters []Filter
	// MetricsAddress is the metrics block's host:port, where /metrics and
	// /healthz are served; "" when there is no metrics block.
	MetricsAddress string
	// Spool is the spool block, defaults filled in.
	Spool Spool
	// Admin is the admin block: the admin interface's socket (always set,
	// even without the block) and its optional TCP address and token.
	Admin admin.Options
	// Cluster is the cluster block; nil without one, and then popgate
	// keeps all its state in the process, as a single instance.
	Cluster *cluster.Options
	// AuthHTTP are the auth_http blocks, in file order; a listener's
	// AuthName names the one it asks.
	AuthHTTP []AuthHTTP
}

// AuthHTTP is an auth_http block: the authhttp.Options of its client and
// the proxy.AuthService settings. The caller builds the authhttp.Client.
type AuthHTTP struct {
	Name    string
	Options authhttp.Options
	// AllowedBackends are the servers outside backend blocks the service
	// may name; empty allows only servers of backend blocks.
	AllowedBackends  []proxy.DestinationRule
	VerifiesPassword bool
}

// AuthService returns the auth_http block called name, or nil.
func (c *Config) AuthService(name string) *AuthHTTP {
	for i := range c.AuthHTTP {
		if c.AuthHTTP[i].Name == name {
			return &c.AuthHTTP[i]
		}
	}
	return nil
}

// Backend returns the backend called name, or nil.
func (c *Config) Backend(name string) *Backend {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i]
		}
	}
	return nil
}

// Filter returns the filter called name, or nil.
func (c *Config) Filter(name string) *Filter {
	for i := range c.Filters {
		if c.Filters[i].Name == name {
			return &c.Filters[i]
		}
	}
	return nil
}

// Log is the log block.
type Log struct {
	Level hclog.Level // hclog.Trace ... hclog.Error; default hclog.Info
	JSON  bool        // format = "json"; default false (text)
}

// Listener is a listener block: the proxy.Listener it configures, with
// its effective Limits (the top-level ones overridden by the listener's
// own limits block). Listener.Filters and Listener.TLSConfig are nil: the
// caller builds them from FilterNames and TLSMinVersion.
type Listener struct {
	proxy.Listener
	// FilterNames names the filters applied, in order, each the Name of a
	// Config.Filters entry. When the block has no filters attribute it
	// lists every filter in file order.
	FilterNames []string
	// TLSMinVersion is tls.VersionTLS13 for tls_min_version = "1.3", and
	// otherwise 0: the server configuration's own minimum, TLS 1.2
	// (tlsconf.Options.MinVersion).
	TLSMinVersion uint16
	// InterceptCACert and InterceptCAKey are the PEM files of the CA that
	// mints certificates for intercept_stls = "inspect"; the caller loads
	// them into Listener.InterceptCA. "" otherwise.
	InterceptCACert string
	InterceptCAKey  string
	// AuthName names the auth_http block the listener asks about every
	// login (Config.AuthService); "" for none. The caller sets
	// Listener.Auth from it.
	AuthName string
}

// Backend is a backend block: the proxy.Backend it configures. Its
// TLSConfig is nil: the caller builds it with tlsconf.ClientConfig from
// the fields below when popgate starts, which is when the CA file is read.
type Backend struct {
	proxy.Backend
	// CAFile holds the PEM roots that verify the backend; "" means the
	// system roots.
	CAFile string
	// ServerName is verified in the backend's certificate; default the
	// host part of Address. It stays "" for a pool (servers) without
	// server_name: each server is then verified against its own host.
	ServerName         string
	InsecureSkipVerify bool
}

// Routes routes after-auth logins to backends: exact entries of the route
// map first, then the route blocks' patterns in file order. It implements
// proxy.Router and is immutable.
type Routes struct {
	// MapFile is the route_map block's file; "" when there is none.
	MapFile string
	// Users maps a lower-cased login name to a backend name, from the
	// route map; every backend named exists.
	Users map[string]string
	// Rules are the route blocks, in file order.
	Rules []Route
}

var _ proxy.Router = (*Routes)(nil)

// Route is a route block.
type Route struct {
	// User is a path.Match pattern, lower-cased; it is matched against
	// the lower-cased login name.
	User    string
	Backend string // always names an existing backend
}

// Route returns the backend for login: the route map's entry, else the
// first route block whose pattern matches, else "" (the listener's
// backend). It implements proxy.Router.
func (r *Routes) Route(login string) string {
	login = strings.ToLower(login)
	if b, ok := r.Users[login]; ok {
		return b
	}
	for _, rt := range r.Rules {
		if ok, _ := path.Match(rt.User, login); ok {
			return rt.Backend
		}
	}
	return ""
}

// backends lists every backend the routes name.
func (r *Routes) backends() map[string]bool {
	out := map[string]bool{}
	for _, rt := range r.Rules {
		out[rt.Backend] = true
	}
	for _, be := range r.Users {
		out[be] = true
	}
	return out
}

// Filter is a filter block.
type Filter struct {
	Type string // "audit", "apop", "rewrite", "clamav" or "policy"
	Name string // the name attribute, default Type; unique
	// Settings is the filter package's Config, defaults filled in:
	// *audit.Config, *apop.Config, *rewrite.Config, *clamav.Config or
	// *policy.Config. Fields that only exist at run time (callbacks, the
	// shared spool budget) are left zero for the caller to set on a copy.
	// It is nil only while a Config with errors is being built.
	Settings any
}

// Spool is the spool block: the budget shared by every message a filter
// holds while it waits for a verdict (spool.Budget). Memory and Disk
// bound all such messages together; a message that finds the memory used
// up goes to disk, one that finds the disk used up is not scanned and
// follows the filter's on_error.
type Spool struct {
	Memory int64  // octets in memory, all messages together; default spool.DefaultMemory
	Disk   int64  // octets in temporary files, all together; default spool.DefaultDisk
	Dir    string // temporary files' directory; never "" (default os.TempDir())
}
