package config

import (
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/gohcl"

	"github.com/popgate/popgate/filters/apop"
	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/filters/clamav"
	"github.com/popgate/popgate/filters/policy"
	"github.com/popgate/popgate/filters/rewrite"
	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/proxy"
)

// filterSchema is the HCL schema of one filter type: gohcl decodes the
// filter block's body into it, and settings converts and checks it into
// a pointer to the filter package's Config (Filter.Settings).
type filterSchema interface {
	settings(b *builder) any
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

// filters converts the filter blocks. It returns one Filter per block, in
// file order; Settings is nil for a block that failed.
func (b *builder) filters(raws []rawFilter) []Filter {
	seen := map[string]hcl.Range{}
	auditPaths := map[string]hcl.Range{}
	var out []Filter
	for _, r := range raws {
		f := Filter{Type: r.Type, Name: or(r.Name, r.Type)}
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
func (b *builder) uniqueAuditPath(settings any, body hcl.Body, seen map[string]hcl.Range) {
	c, ok := settings.(*audit.Config)
	if !ok {
		return
	}
	key := c.Path
	if key != audit.Stdout {
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

func (r *rawAuditFilter) settings(b *builder) any {
	c := &audit.Config{
		Path:         or(r.Path, audit.DefaultPath),
		Chain:        or(r.Chain, false),
		Sync:         enum(&b.checker, r.Body, "sync", r.Sync, audit.SyncInterval, audit.SyncRecord, audit.SyncInterval, audit.SyncNone),
		SyncInterval: b.duration(r.Body, "sync_interval", r.SyncInterval, audit.DefaultSyncInterval),
	}
	if r.SyncInterval != nil && c.Sync != audit.SyncInterval {
		b.warnf(attrRange(r.Body, "sync_interval"), "sync_interval has no effect", "sync_interval only applies with sync = %q.", audit.SyncInterval)
	}
	switch {
	case c.Path == "":
		b.errorf(attrRange(r.Body, "path"), "Invalid path", "path must name a file, or be %q for standard output.", audit.Stdout)
	case c.Path != audit.Stdout:
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

func (r *rawAPOPFilter) settings(b *builder) any {
	if b.fileExists(r.Body, "secrets_file", r.SecretsFile) {
		b.ownerOnly(r.Body, "secrets_file", r.SecretsFile)
	}
	if r.TimestampHost != "" && !validDNSName(r.TimestampHost) {
		b.errorf(attrRange(r.Body, "timestamp_host"), "Invalid timestamp_host", "%q is not a host name.", r.TimestampHost)
	}
	return &apop.Config{SecretsFile: r.SecretsFile, Host: r.TimestampHost}
}

// rawRewriteFilter is the schema of filter "rewrite".
type rawRewriteFilter struct {
	StripDomain *bool  `hcl:"strip_domain,optional"`
	AddDomain   string `hcl:"add_domain,optional"`
	Lowercase   *bool  `hcl:"lowercase,optional"`
	MapFile     string `hcl:"map_file,optional"`

	Body hcl.Body `hcl:",body"`
}

func (r *rawRewriteFilter) settings(b *builder) any {
	c := &rewrite.Config{
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

func (r *rawClamAVFilter) settings(b *builder) any {
	body := r.Body
	c := &clamav.Config{
		OnInfected: enum(&b.checker, body, "on_infected", r.OnInfected, clamav.OnInfectedReplace,
			clamav.OnInfectedReplace, clamav.OnInfectedReject),
		OnError: enum(&b.checker, body, "on_error", r.OnError, clamav.OnErrorReject,
			clamav.OnErrorReject, clamav.OnErrorPass),
		MaxSize:     b.size(body, "max_size", r.MaxSize, clamav.DefaultMaxSize),
		Timeout:     b.duration(body, "timeout", r.Timeout, clamav.DefaultScanTimeout),
		SpoolDir:    r.SpoolDir,
		SpoolMemory: b.size(body, "spool_memory", r.SpoolMemory, clamav.DefaultSpoolMemory),
		AddHeader:   or(r.AddHeader, false),

		MaxConcurrentScans: b.integer(body, "max_concurrent_scans", r.MaxConcurrentScans, clamav.DefaultMaxConcurrentScans, 1, 1<<16),
		ScanWait:           b.duration(body, "scan_wait", r.ScanWait, clamav.DefaultScanWait),
		KeepReplaced:       or(r.KeepReplaced, false),
	}
	c.Address = or(r.Address, clamav.DefaultAddress)
	b.clamdAddress(body, c.Address)
	if c.SpoolDir != "" {
		b.dirExists(body, "spool_dir", c.SpoolDir)
	}
	return c
}

// spool converts the spool block.
func (b *builder) spool(r *rawSpool) Spool {
	c := Spool{Memory: spool.DefaultMemory, Disk: spool.DefaultDisk, Dir: os.TempDir()}
	if r == nil {
		return c
	}
	c.Memory = b.size(r.Body, "memory", r.Memory, spool.DefaultMemory)
	c.Disk = b.size(r.Body, "disk", r.Disk, spool.DefaultDisk)
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
		if c, ok := f.Settings.(*clamav.Config); ok && c.SpoolDir == "" {
			c.SpoolDir = cfg.Spool.Dir
		}
	}
}

// clamdAddress checks a clamd address: tcp://HOST:PORT or unix://PATH.
func (b *builder) clamdAddress(body hcl.Body, s string) {
	if rest, ok := strings.CutPrefix(s, "tcp://"); ok {
		b.address(body, "address", rest, false, false)
		return
	}
	if rest, ok := strings.CutPrefix(s, "unix://"); ok && rest != "" {
		return
	}
	b.errorf(attrRange(body, "address"), "Invalid address",
		"%q is not a clamd address: use tcp://HOST:PORT or unix:///PATH/TO/SOCKET.", s)
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

func (r *rawPolicyFilter) settings(b *builder) any {
	c := &policy.Config{}
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
