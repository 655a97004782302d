package main

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/proxy"
)

// AuditFilterConfig is a filter "audit" block: an append-only JSON Lines
// record of mailbox access.
type AuditFilterConfig struct {
	Path  string // file to append to; "-" is standard output
	Chain bool   // chain records by hash so tampering is detectable
	// Sync is when records are flushed to disk: audit.SyncInterval
	// (default), audit.SyncRecord or audit.SyncNone.
	Sync         audit.SyncPolicy
	SyncInterval time.Duration // period of SyncInterval; default 1s
}

// APOPFilterConfig is a filter "apop" block: on after-auth listeners
// popgate answers APOP and AUTH CRAM-MD5 itself from a secrets file and
// logs in to the backend with USER and PASS.
type APOPFilterConfig struct {
	SecretsFile string // "user:password" lines; mode 0600 or stricter
	// TimestampHost is the host part of the greeting's APOP timestamp and
	// of CRAM-MD5 challenges (apop.Config.Host); "" means the machine's
	// host name.
	TimestampHost string
}

// RewriteFilterConfig is a filter "rewrite" block: it edits the login name
// sent to the backend.
type RewriteFilterConfig struct {
	StripDomain bool   // drop "@domain" from the login name
	AddDomain   string // append "@" + AddDomain when the name has no domain
	Lowercase   bool   // lower-case the login name
	MapFile     string // "login backend-login" lines (filters/rewrite); "" = none
}

// ClamAVFilterConfig is a filter "clamav" block: messages are scanned by
// clamd (INSTREAM) before they reach the client.
type ClamAVFilterConfig struct {
	Network    string // "tcp" or "unix"
	Address    string // host:port for tcp, socket path for unix
	OnInfected string // "replace" (default) or "reject"
	OnError    string // "reject" (default) or "pass"
	// MaxSize is the largest message sent to clamd; larger ones are
	// handled as a scan error (OnError).
	MaxSize int64
	Timeout time.Duration // one scan, including streaming
	// SpoolDir is where messages spool while scanned: spool_dir, or the
	// spool block's dir when unset; never "" once built. Its files count
	// against the spool block's disk budget either way.
	SpoolDir    string
	SpoolMemory int64 // octets of one message kept in memory before spooling to disk
	AddHeader   bool  // add an X-Virus-Scanned header to clean mail
	// MaxConcurrentScans bounds this filter's scans at once, across all
	// sessions; beyond it a scan waits up to ScanWait, then OnError.
	MaxConcurrentScans int
	ScanWait           time.Duration
	// KeepReplaced refuses a DELE of a message found infected in the
	// session, so the original stays on the server.
	KeepReplaced bool
}

// PolicyFilterConfig is a filter "policy" block.
type PolicyFilterConfig struct {
	Deny []string // upper-cased command keywords answered with -ERR
	// MaxMessageSize refuses RETR and TOP of messages larger than this, as
	// LIST reports their size; 0 = no limit.
	MaxMessageSize int64
}

func (*AuditFilterConfig) filterType() string   { return "audit" }
func (*APOPFilterConfig) filterType() string    { return "apop" }
func (*RewriteFilterConfig) filterType() string { return "rewrite" }
func (*ClamAVFilterConfig) filterType() string  { return "clamav" }
func (*PolicyFilterConfig) filterType() string  { return "policy" }

// filterSchema is the HCL schema of one filter type: gohcl decodes the
// filter block's body into it, and settings converts and checks it.
type filterSchema interface {
	settings(b *builder) FilterSettings
}

// filterSchemas maps each filter type to a constructor of its schema.
var filterSchemas = map[string]func() filterSchema{
	"audit":   func() filterSchema { return new(rawAuditFilter) },
	"apop":    func() filterSchema { return new(rawAPOPFilter) },
	"rewrite": func() filterSchema { return new(rawRewriteFilter) },
	"clamav":  func() filterSchema { return new(rawClamAVFilter) },
	"policy":  func() filterSchema { return new(rawPolicyFilter) },
}

// filterTypes lists the filter types, sorted.
func filterTypes() []string {
	var ts []string
	for t := range filterSchemas {
		ts = append(ts, t)
	}
	sort.Strings(ts)
	return ts
}

// filters converts the filter blocks. It returns one FilterConfig per
// block, in file order; Settings is nil for a block that failed.
func (b *builder) filters(raws []rawFilter) []FilterConfig {
	seen := map[string]hcl.Range{}
	auditPaths := map[string]hcl.Range{}
	var out []FilterConfig
	for _, r := range raws {
		f := FilterConfig{Type: r.Type, Name: or(r.Name, r.Type)}
		nameRng := r.LabelRange
		if r.Name != nil {
			nameRng = attrRange(r.Body, "name")
			if !validFilterName(*r.Name) {
				b.errorf(nameRng, "Invalid name", "%q is not a valid filter name: use letters, digits, - and _.", *r.Name)
			}
		}
		if first, dup := seen[f.Name]; dup {
			b.errorf(nameRng, "Duplicate filter name",
				"A filter named %q is already defined at %s; give one of them a distinct name = \"...\".", f.Name, first)
		}
		seen[f.Name] = nameRng
		newSchema, ok := filterSchemas[r.Type]
		if !ok {
			b.errorf(r.LabelRange, "Unknown filter type", "%q is not a filter type; valid types are %s.", r.Type, quoteList(filterTypes()))
			out = append(out, f)
			continue
		}
		s := newSchema()
		if diags := gohcl.DecodeBody(r.Rest, nil, s); diags.HasErrors() {
			b.diags = append(b.diags, diags...)
		} else {
			b.diags = append(b.diags, diags...)
			f.Settings = s.settings(b)
		}
		b.uniqueAuditPath(f.Settings, r.Rest, auditPaths)
		out = append(out, f)
	}
	return out
}

// uniqueAuditPath refuses a second audit block on a path an earlier one
// writes (standard output included): each would keep its own chain, and
// the file would hold neither.
func (b *builder) uniqueAuditPath(settings FilterSettings, body hcl.Body, seen map[string]hcl.Range) {
	c, ok := settings.(*AuditFilterConfig)
	if !ok {
		return
	}
	key := c.Path
	if key != "-" {
		key = absPath(c.Path)
	}
	rng := attrRange(body, "path")
	if first, dup := seen[key]; dup {
		b.errorf(rng, "Duplicate audit path",
			"Another audit filter already writes %q (at %s); give each audit filter its own path.", c.Path, first)
		return
	}
	seen[key] = rng
}

// validFilterName reports whether s is a non-empty run of letters, digits,
// '-' and '_'.
func validFilterName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// rawAuditFilter is the schema of filter "audit".
type rawAuditFilter struct {
	Path         *string `hcl:"path,optional"`
	Chain        *bool   `hcl:"chain,optional"`
	Sync         *string `hcl:"sync,optional"`
	SyncInterval *string `hcl:"sync_interval,optional"`

	Body hcl.Body `hcl:",body"`
}

func (r *rawAuditFilter) settings(b *builder) FilterSettings {
	c := &AuditFilterConfig{
		Path:         or(r.Path, "-"),
		Chain:        or(r.Chain, false),
		Sync:         audit.SyncPolicy(b.enum(r.Body, "sync", r.Sync, string(audit.SyncInterval), string(audit.SyncRecord), string(audit.SyncInterval), string(audit.SyncNone))),
		SyncInterval: b.duration(r.Body, "sync_interval", r.SyncInterval, audit.DefaultSyncInterval),
	}
	if r.SyncInterval != nil && c.Sync != audit.SyncInterval {
		b.warnf(attrRange(r.Body, "sync_interval"), "sync_interval has no effect", "sync_interval only applies with sync = %q.", audit.SyncInterval)
	}
	switch {
	case c.Path == "":
		b.errorf(attrRange(r.Body, "path"), "Invalid path", "path must name a file, or be \"-\" for standard output.")
	case c.Path != "-":
		b.dirExists(r.Body, "path", filepath.Dir(c.Path))
	}
	return c
}

// rawAPOPFilter is the schema of filter "apop".
type rawAPOPFilter struct {
	SecretsFile   string `hcl:"secrets_file"`
	TimestampHost string `hcl:"timestamp_host,optional"`

	Body hcl.Body `hcl:",body"`
}

func (r *rawAPOPFilter) settings(b *builder) FilterSettings {
	if b.fileExists(r.Body, "secrets_file", r.SecretsFile) {
		b.ownerOnly(r.Body, "secrets_file", r.SecretsFile)
	}
	if r.TimestampHost != "" && !validDNSName(r.TimestampHost) {
		b.errorf(attrRange(r.Body, "timestamp_host"), "Invalid timestamp_host", "%q is not a host name.", r.TimestampHost)
	}
	return &APOPFilterConfig{SecretsFile: r.SecretsFile, TimestampHost: r.TimestampHost}
}

// rawRewriteFilter is the schema of filter "rewrite".
type rawRewriteFilter struct {
	StripDomain *bool  `hcl:"strip_domain,optional"`
	AddDomain   string `hcl:"add_domain,optional"`
	Lowercase   *bool  `hcl:"lowercase,optional"`
	MapFile     string `hcl:"map_file,optional"`

	Body hcl.Body `hcl:",body"`
}

func (r *rawRewriteFilter) settings(b *builder) FilterSettings {
	c := &RewriteFilterConfig{
		StripDomain: or(r.StripDomain, false),
		AddDomain:   r.AddDomain,
		Lowercase:   or(r.Lowercase, false),
		MapFile:     r.MapFile,
	}
	switch {
	case strings.HasPrefix(c.AddDomain, "@"):
		b.errorf(attrRange(r.Body, "add_domain"), "Invalid add_domain", "Give the domain without \"@\": %q.", c.AddDomain[1:])
	case c.AddDomain != "" && !validDNSName(c.AddDomain):
		b.errorf(attrRange(r.Body, "add_domain"), "Invalid add_domain", "%q is not a domain name.", c.AddDomain)
	}
	if c.MapFile != "" {
		b.fileExists(r.Body, "map_file", c.MapFile)
	}
	if !c.StripDomain && c.AddDomain == "" && !c.Lowercase && c.MapFile == "" {
		b.warnf(r.Body.MissingItemRange(), "Rewrite does nothing", "Set strip_domain, add_domain, lowercase or map_file.")
	}
	return c
}

// rawClamAVFilter is the schema of filter "clamav".
type rawClamAVFilter struct {
	Address     *string `hcl:"address,optional"`
	OnInfected  *string `hcl:"on_infected,optional"`
	OnError     *string `hcl:"on_error,optional"`
	MaxSize     *string `hcl:"max_size,optional"`
	Timeout     *string `hcl:"timeout,optional"`
	SpoolDir    string  `hcl:"spool_dir,optional"`
	SpoolMemory *string `hcl:"spool_memory,optional"`
	AddHeader   *bool   `hcl:"add_header,optional"`

	MaxConcurrentScans *int    `hcl:"max_concurrent_scans,optional"`
	ScanWait           *string `hcl:"scan_wait,optional"`
	KeepReplaced       *bool   `hcl:"keep_replaced,optional"`

	Body hcl.Body `hcl:",body"`
}

func (r *rawClamAVFilter) settings(b *builder) FilterSettings {
	body := r.Body
	c := &ClamAVFilterConfig{
		OnInfected:  b.enum(body, "on_infected", r.OnInfected, "replace", "replace", "reject"),
		OnError:     b.enum(body, "on_error", r.OnError, "reject", "reject", "pass"),
		MaxSize:     b.size(body, "max_size", r.MaxSize, defaultClamAVMaxSize),
		Timeout:     b.duration(body, "timeout", r.Timeout, defaultClamAVTimeout),
		SpoolDir:    r.SpoolDir,
		SpoolMemory: b.size(body, "spool_memory", r.SpoolMemory, defaultClamAVSpoolMemory),
		AddHeader:   or(r.AddHeader, false),

		MaxConcurrentScans: b.integer(body, "max_concurrent_scans", r.MaxConcurrentScans, defaultClamAVMaxScans, 1, 1<<16),
		ScanWait:           b.duration(body, "scan_wait", r.ScanWait, defaultClamAVScanWait),
		KeepReplaced:       or(r.KeepReplaced, false),
	}
	c.Network, c.Address = b.clamdAddress(body, or(r.Address, defaultClamAVAddress))
	if c.SpoolDir != "" {
		b.dirExists(body, "spool_dir", c.SpoolDir)
	}
	return c
}

// spool converts the spool block.
func (b *builder) spool(r *rawSpool) SpoolConfig {
	c := SpoolConfig{Memory: defaultSpoolMemory, Disk: defaultSpoolDisk, Dir: os.TempDir()}
	if r == nil {
		return c
	}
	c.Memory = b.size(r.Body, "memory", r.Memory, defaultSpoolMemory)
	c.Disk = b.size(r.Body, "disk", r.Disk, defaultSpoolDisk)
	if r.Dir != "" {
		c.Dir = r.Dir
		b.dirExists(r.Body, "dir", c.Dir)
	}
	return c
}

// filterSpoolDirs gives every clamav filter without its own spool_dir the
// spool block's dir.
func (b *builder) filterSpoolDirs(cfg *Config) {
	for _, f := range cfg.Filters {
		if c, ok := f.Settings.(*ClamAVFilterConfig); ok && c.SpoolDir == "" {
			c.SpoolDir = cfg.Spool.Dir
		}
	}
}

// clamdAddress splits a clamd address, tcp://HOST:PORT or unix://PATH,
// into a network and an address for net.Dial.
func (b *builder) clamdAddress(body hcl.Body, s string) (network, addr string) {
	if rest, ok := strings.CutPrefix(s, "tcp://"); ok {
		b.address(body, "address", rest, false, false)
		return "tcp", rest
	}
	if rest, ok := strings.CutPrefix(s, "unix://"); ok && rest != "" {
		return "unix", rest
	}
	b.errorf(attrRange(body, "address"), "Invalid address",
		"%q is not a clamd address: use tcp://HOST:PORT or unix:///PATH/TO/SOCKET.", s)
	return "", ""
}

// rawPolicyFilter is the schema of filter "policy".
type rawPolicyFilter struct {
	Deny           []string `hcl:"deny,optional"`
	MaxMessageSize string   `hcl:"max_message_size,optional"`

	Body hcl.Body `hcl:",body"`
}

// knownCommands are the POP3 command keywords of RFC 1939, RFC 2449,
// RFC 2595, RFC 5034, RFC 6856 and Dovecot's XCLIENT.
var knownCommands = map[string]bool{
	"USER": true, "PASS": true, "APOP": true, "AUTH": true, "STLS": true, "CAPA": true,
	"STAT": true, "LIST": true, "RETR": true, "DELE": true, "NOOP": true, "RSET": true,
	"QUIT": true, "TOP": true, "UIDL": true, "UTF8": true, "LANG": true, "XCLIENT": true,
}

func (r *rawPolicyFilter) settings(b *builder) FilterSettings {
	c := &PolicyFilterConfig{}
	for i, d := range r.Deny {
		rng := elemRange(r.Body, "deny", i)
		cmd := strings.ToUpper(d)
		switch {
		case cmd == "" || len(cmd) > 16 || strings.IndexFunc(cmd, func(r rune) bool { return (r < 'A' || r > 'Z') && (r < '0' || r > '9') }) >= 0:
			b.errorf(rng, "Invalid deny", "%q is not a POP3 command keyword.", d)
			continue
		case cmd == "QUIT":
			b.errorf(rng, "Invalid deny", "QUIT cannot be denied: clients need it to end a session and commit deletions.")
			continue
		case cmd == "STLS":
			// The session performs STLS itself, before any filter
			// (proxy.ReachesFilters): the rule could never apply.
			b.errorf(rng, "Invalid deny", "STLS cannot be denied: popgate answers STLS itself, before any filter. A listener offers STLS only with tls = \"starttls\"; use tls = \"none\" or \"implicit\" for one that does not.")
			continue
		case !knownCommands[cmd]:
			b.warnf(rng, "Unknown command", "%q is not a command popgate knows: clients sending it get \"-ERR unknown command\" whatever the policy, so this entry has no effect.", d)
		case !proxy.ReachesFilters(cmd):
			b.warnf(rng, "Command never relayed", "popgate does not relay %s: clients sending it get \"-ERR unknown command\" whatever the policy, so this entry has no effect.", cmd)
		}
		c.Deny = append(c.Deny, cmd)
	}
	if r.MaxMessageSize != "" {
		c.MaxMessageSize = b.size(r.Body, "max_message_size", &r.MaxMessageSize, 0)
	}
	return c
}
