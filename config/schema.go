package config

import "github.com/hashicorp/hcl/v2"

// The raw* types are the HCL schema: gohcl decodes a file into them, and
// the builder (decode.go) turns them into the typed Config. Optional attributes are
// pointers so that an attribute written with its zero value ("" or 0) is
// validated instead of silently taking the default. Every raw block keeps
// its whole body (hcl:",body") so diagnostics can point at the attribute
// that is wrong. docs/CONFIG.md documents every attribute named here; a test
// keeps the two in step.

// rawFile is the top level of a configuration file.
type rawFile struct {
	StateDir        *string `hcl:"state_dir,optional"`
	ShutdownTimeout *string `hcl:"shutdown_timeout,optional"`

	Log       *rawLog       `hcl:"log,block"`
	Limits    *rawLimits    `hcl:"limits,block"`
	Listeners []rawListener `hcl:"listener,block"`
	Backends  []rawBackend  `hcl:"backend,block"`
	Routes    []rawRoute    `hcl:"route,block"`
	RouteMap  *rawRouteMap  `hcl:"route_map,block"`
	TLS       *rawTLS       `hcl:"tls,block"`
	Filters   []rawFilter   `hcl:"filter,block"`
	Metrics   *rawMetrics   `hcl:"metrics,block"`
	Spool     *rawSpool     `hcl:"spool,block"`
	Admin     *rawAdmin     `hcl:"admin,block"`
	AuthHTTP  []rawAuthHTTP `hcl:"auth_http,block"`
	Cluster   *rawCluster   `hcl:"cluster,block"`

	Body hcl.Body `hcl:",body"`
}

// rawLog is the log block.
type rawLog struct {
	Level  *string `hcl:"level,optional"`
	Format *string `hcl:"format,optional"`

	Body hcl.Body `hcl:",body"`
}

// rawLimits is a limits block, top-level or inside a listener.
type rawLimits struct {
	MaxSessions      *int    `hcl:"max_sessions,optional"`
	MaxSessionsPerIP *int    `hcl:"max_sessions_per_ip,optional"`
	MaxLine          *int    `hcl:"max_line,optional"`
	MaxErrors        *int    `hcl:"max_errors,optional"`
	MaxAuthTries     *int    `hcl:"max_auth_tries,optional"`
	PreloginTimeout  *string `hcl:"prelogin_timeout,optional"`
	IdleTimeout      *string `hcl:"idle_timeout,optional"`
	WriteTimeout     *string `hcl:"write_timeout,optional"`
	BackendTimeout   *string `hcl:"backend_timeout,optional"`
	HandshakeTimeout *string `hcl:"tls_handshake_timeout,optional"`
	PipelineDepth    *int    `hcl:"pipeline_depth,optional"`
	IPv6Prefix       *int    `hcl:"throttle_ipv6_prefix,optional"`
	// MaxSessionsPerUser is top-level only (cluster.go refuses it in a
	// listener's limits).
	MaxSessionsPerUser *int `hcl:"max_sessions_per_user,optional"`

	Body hcl.Body `hcl:",body"`
}

// rawListener is a listener block.
type rawListener struct {
	Name           string    `hcl:"name,label"`
	Address        string    `hcl:"address"`
	TLS            *string   `hcl:"tls,optional"`
	RequireTLS     *bool     `hcl:"require_tls,optional"`
	Connect        *string   `hcl:"connect,optional"`
	Backend        *string   `hcl:"backend,optional"`
	ProxyProtocol  *bool     `hcl:"proxy_protocol,optional"`
	TrustedProxies []string  `hcl:"trusted_proxies,optional"`
	Filters        *[]string `hcl:"filters,optional"`
	ServerName     []string  `hcl:"server_name,optional"`
	TLSMinVersion  *string   `hcl:"tls_min_version,optional"`
	// Interception (intercept.go).
	Intercept       *string `hcl:"intercept,optional"`
	InterceptSTLS   *string `hcl:"intercept_stls,optional"`
	InterceptCACert string  `hcl:"intercept_ca_cert,optional"`
	InterceptCAKey  string  `hcl:"intercept_ca_key,optional"`
	// Auth names an auth_http block (authhttp.go).
	Auth *string `hcl:"auth,optional"`

	Limits *rawLimits `hcl:"limits,block"`

	LabelRange hcl.Range `hcl:"name,label_range"`
	Body       hcl.Body  `hcl:",body"`
}

// rawBackend is a backend block.
type rawBackend struct {
	Name    string `hcl:"name,label"`
	Address string `hcl:"address,optional"` // required unless original_destination or servers
	// Pools (pools.go).
	Servers             []string `hcl:"servers,optional"`
	Balance             *string  `hcl:"balance,optional"`
	HealthCheckInterval *string  `hcl:"health_check_interval,optional"`
	FailThreshold       *int     `hcl:"fail_threshold,optional"`
	DownBackoff         *string  `hcl:"down_backoff,optional"`
	TLS                 *string  `hcl:"tls,optional"`
	CAFile              string   `hcl:"ca_file,optional"`
	ServerName          string   `hcl:"server_name,optional"`
	InsecureSkipVerify  *bool    `hcl:"insecure_skip_verify,optional"`
	Login               *string  `hcl:"login,optional"`
	ForwardClient       *string  `hcl:"forward_client,optional"`
	ConnectTimeout      *string  `hcl:"connect_timeout,optional"`
	ReadTimeout         *string  `hcl:"read_timeout,optional"`
	MasterUser          string   `hcl:"master_user,optional"`
	MasterPassword      string   `hcl:"master_password,optional"`
	// Interception (intercept.go).
	OriginalDestination *bool    `hcl:"original_destination,optional"`
	AllowedDestinations []string `hcl:"allowed_destinations,optional"`
	DeniedDestinations  []string `hcl:"denied_destinations,optional"`
	SpoofSource         *bool    `hcl:"spoof_source,optional"`

	LabelRange hcl.Range `hcl:"name,label_range"`
	Body       hcl.Body  `hcl:",body"`
}

// rawRoute is a route block.
type rawRoute struct {
	User    string `hcl:"user"`
	Backend string `hcl:"backend"`

	Body hcl.Body `hcl:",body"`
}

// rawRouteMap is the route_map block.
type rawRouteMap struct {
	File string `hcl:"file"`

	Body hcl.Body `hcl:",body"`
}

// rawTLS is the tls block.
type rawTLS struct {
	Certificates []rawCertificate `hcl:"certificate,block"`
	ACME         *rawACME         `hcl:"acme,block"`
}

// rawCertificate is a tls.certificate block.
type rawCertificate struct {
	CertFile string `hcl:"cert_file"`
	KeyFile  string `hcl:"key_file"`

	Body hcl.Body `hcl:",body"`
}

// rawACME is a tls.acme block.
type rawACME struct {
	Domains     []string `hcl:"domains"`
	Email       string   `hcl:"email,optional"`
	Directory   *string  `hcl:"directory,optional"`
	CAFile      string   `hcl:"ca_file,optional"`
	Storage     *string  `hcl:"storage,optional"`
	HTTPPort    *int     `hcl:"http_port,optional"`
	TLSALPNPort *int     `hcl:"tls_alpn_port,optional"`
	ListenHost  string   `hcl:"listen_host,optional"`
	Profile     string   `hcl:"profile,optional"`

	Body hcl.Body `hcl:",body"`
}

// rawFilter is a filter block. Its remaining body is decoded by the schema
// of the filter's type (filters.go).
type rawFilter struct {
	Type string  `hcl:"type,label"`
	Name *string `hcl:"name,optional"`

	Rest       hcl.Body  `hcl:",remain"`
	LabelRange hcl.Range `hcl:"type,label_range"`
	Body       hcl.Body  `hcl:",body"`
}

// rawSpool is the spool block: the budget every filter's spooling shares.
type rawSpool struct {
	Memory *string `hcl:"memory,optional"`
	Disk   *string `hcl:"disk,optional"`
	Dir    string  `hcl:"dir,optional"`

	Body hcl.Body `hcl:",body"`
}

// rawCluster is the cluster block: the Redis that instances share.
type rawCluster struct {
	Redis        string  `hcl:"redis"`
	PasswordFile string  `hcl:"password_file,optional"`
	TLSCAFile    string  `hcl:"tls_ca_file,optional"`
	TLSCertFile  string  `hcl:"tls_cert_file,optional"`
	TLSKeyFile   string  `hcl:"tls_key_file,optional"`
	Instance     *string `hcl:"instance,optional"`
	Timeout      *string `hcl:"timeout,optional"`

	Body hcl.Body `hcl:",body"`
}

// rawMetrics is the metrics block.
type rawMetrics struct {
	Address string `hcl:"address"`

	Body hcl.Body `hcl:",body"`
}

// rawAuthHTTP is an auth_http block: an nginx-compatible auth service.
type rawAuthHTTP struct {
	Name             string            `hcl:"name,label"`
	URL              string            `hcl:"url"`
	Timeout          *string           `hcl:"timeout,optional"`
	Headers          map[string]string `hcl:"headers,optional"`
	CacheTTL         *string           `hcl:"cache_ttl,optional"`
	AllowedBackends  []string          `hcl:"allowed_backends,optional"`
	VerifiesPassword *bool             `hcl:"verifies_password,optional"`
	MaxInFlight      *int              `hcl:"max_in_flight,optional"`

	LabelRange hcl.Range `hcl:"name,label_range"`
	Body       hcl.Body  `hcl:",body"`
}
