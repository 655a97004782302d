package config

import (
	"fmt"
	"os"
	"sort"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"
	"github.com/hashicorp/hcl/v2/hclparse"

	"github.com/popgate/popgate/proxy"
)

// Load reads, decodes and validates the configuration file at path. It
// returns the Config (nil when diags has errors), every source it read by
// file name (for WriteDiagnostics to show snippets), and all diagnostics,
// warnings included.
func Load(path string) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read configuration file",
			Detail:   fmt.Sprintf("%s.", trimPathErr(err)),
		}}
	}
	return Parse(src, path)
}

// Parse decodes and validates the HCL native-syntax configuration src,
// read from filename, like Load.
//
// Decoding runs in two passes. gohcl first checks the structure (known
// blocks and attributes, required ones present, value types); if that
// fails the values are not checked, since missing ones would only cause
// follow-on errors. The values are then checked and converted all at once,
// so a file with several mistakes reports all of them.
func Parse(src []byte, filename string) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	p := hclparse.NewParser()
	f, diags := p.ParseHCL(src, filename)
	files := p.Files()
	if diags.HasErrors() {
		return nil, files, diags
	}
	var raw rawFile
	diags = append(diags, gohcl.DecodeBody(f.Body, nil, &raw)...)
	if diags.HasErrors() {
		return nil, files, diags
	}
	b := &builder{files: files}
	cfg := b.build(&raw)
	sortDiagnostics(b.diags)
	diags = append(diags, b.diags...)
	if diags.HasErrors() {
		return nil, files, diags
	}
	return cfg, files, diags
}

// builder turns a decoded rawFile into a Config, collecting diagnostics.
type builder struct {
	checker
	// files receives the sources of files the configuration refers to
	// and popgate parses (the route map), for diagnostic snippets.
	files map[string]*hcl.File
}

// build converts and validates the whole file.
func (b *builder) build(raw *rawFile) *Config {
	cfg := &Config{}
	body := raw.Body
	stateDir := defaultStateDirectory()
	if raw.StateDir != nil {
		stateDir = *raw.StateDir
		if stateDir == "" {
			b.errorf(attrRange(body, "state_dir"), "Invalid state_dir", "state_dir must not be empty.")
		}
	}
	cfg.StateDir = absPath(stateDir)
	cfg.ShutdownTimeout = b.duration(body, "shutdown_timeout", raw.ShutdownTimeout, DefaultShutdownTimeout)
	cfg.Log = b.log(raw.Log)
	cfg.Limits = b.limits(raw.Limits, proxy.DefaultLimits)
	cfg.Cluster = b.cluster(raw.Cluster)
	cfg.Backends = b.backends(raw.Backends, body)
	cfg.Spool = b.spool(raw.Spool)
	cfg.Filters = b.filters(raw.Filters)
	cfg.AuthHTTP = b.authHTTP(raw.AuthHTTP) // authhttp.go
	b.filterSpoolDirs(cfg)
	cfg.Listeners = b.listeners(raw.Listeners, body, cfg)
	cfg.Routes.Rules = b.routes(raw.Routes, cfg)
	cfg.Routes.MapFile, cfg.Routes.Users = b.routeMap(raw.RouteMap, cfg)
	cfg.TLS = b.tls(raw.TLS, raw.Listeners, cfg)
	b.topLevelOnly(raw)
	cfg.MetricsAddress = b.metrics(raw.Metrics)
	cfg.Admin = b.admin(raw.Admin, cfg.StateDir, body)
	b.uniqueAddresses(raw)
	b.masterVerifiers(raw, cfg)
	b.interceptUses(raw, cfg) // intercept.go
	b.poolUses(raw, cfg)      // pools.go
	b.unused(raw, cfg)
	b.unusedAuth(raw, cfg) // authhttp.go
	return cfg
}

// log converts the log block.
func (b *builder) log(r *rawLog) Log {
	if r == nil {
		return defaultLog
	}
	level := enum(&b.checker, r.Body, "level", r.Level, defaultLog.Level,
		hclog.Trace, hclog.Debug, hclog.Info, hclog.Warn, hclog.Error)
	format := enum(&b.checker, r.Body, "format", r.Format, "text", "text", "json")
	return Log{Level: level, JSON: format == "json"}
}

// limits converts a limits block, starting from base.
func (b *builder) limits(r *rawLimits, base proxy.Limits) proxy.Limits {
	if r == nil {
		return base
	}
	const most = 1 << 30
	body := r.Body
	l := base
	l.MaxSessions = b.integer(body, "max_sessions", r.MaxSessions, base.MaxSessions, 1, most)
	l.MaxSessionsPerIP = b.integer(body, "max_sessions_per_ip", r.MaxSessionsPerIP, base.MaxSessionsPerIP, 0, most)
	l.MaxLine = b.integer(body, "max_line", r.MaxLine, base.MaxLine, minMaxLine, maxMaxLine)
	l.MaxErrors = b.integer(body, "max_errors", r.MaxErrors, base.MaxErrors, 1, most)
	l.MaxAuthTries = b.integer(body, "max_auth_tries", r.MaxAuthTries, base.MaxAuthTries, 1, most)
	l.PipelineDepth = b.integer(body, "pipeline_depth", r.PipelineDepth, base.PipelineDepth, 1, 4096)
	l.IPv6Prefix = b.integer(body, "throttle_ipv6_prefix", r.IPv6Prefix, base.IPv6Prefix, 32, 128)
	l.MaxSessionsPerUser = b.integer(body, "max_sessions_per_user", r.MaxSessionsPerUser, base.MaxSessionsPerUser, 0, most)
	l.PreLoginTimeout = b.duration(body, "prelogin_timeout", r.PreloginTimeout, base.PreLoginTimeout)
	l.IdleTimeout = b.duration(body, "idle_timeout", r.IdleTimeout, base.IdleTimeout)
	l.WriteTimeout = b.duration(body, "write_timeout", r.WriteTimeout, base.WriteTimeout)
	l.BackendTimeout = b.duration(body, "backend_timeout", r.BackendTimeout, base.BackendTimeout)
	l.HandshakeTimeout = b.duration(body, "tls_handshake_timeout", r.HandshakeTimeout, base.HandshakeTimeout)
	if r.IdleTimeout != nil && l.IdleTimeout < rfc1939IdleMinimum {
		b.warnf(attrRange(body, "idle_timeout"), "Short idle_timeout",
			"RFC 1939 section 3 requires an inactivity timer of at least %s; %s may disconnect slow clients.",
			rfc1939IdleMinimum, l.IdleTimeout)
	}
	return l
}

// sortDiagnostics orders diagnostics by file and position, so they read
// in the order of the source.
func sortDiagnostics(diags hcl.Diagnostics) {
	sort.SliceStable(diags, func(i, j int) bool {
		a, b := diags[i].Subject, diags[j].Subject
		switch {
		case a == nil || b == nil:
			return a != nil && b == nil
		case a.Filename != b.Filename:
			return a.Filename < b.Filename
		}
		return a.Start.Byte < b.Start.Byte
	})
}
