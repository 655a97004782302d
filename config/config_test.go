package config

import (
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/admin"
	"github.com/popgate/popgate/filters/apop"
	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/filters/clamav"
	"github.com/popgate/popgate/filters/policy"
	"github.com/popgate/popgate/filters/rewrite"
	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// base is the smallest valid configuration: six lines, so text appended
// to it starts on line 7.
const base = `listener "pop3" {
  address = "127.0.0.1:1110"
}
backend "local" {
  address = "127.0.0.1:110"
}
`

// parseTest parses src as the file test.hcl after replacing {{dir}} with
// dir.
func parseTest(t *testing.T, src, dir string) (*Config, map[string]*hcl.File, hcl.Diagnostics) {
	t.Helper()
	src = strings.ReplaceAll(src, "{{dir}}", filepath.ToSlash(dir))
	return Parse([]byte(src), "test.hcl")
}

// chdirRoot runs the rest of the test in the repository's root, where the
// example config.hcl, testdata/config and docs/CONFIG.md are, and where
// the paths in testdata/config/full.hcl are relative to.
func chdirRoot(t *testing.T) {
	t.Helper()
	t.Chdir("..")
}

// testFiles makes a directory with the files the table tests refer to.
func testFiles(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"exists":    "x\n",
		"routes":    "# comment\n\nAlice local\n",
		"routes-3":  "alice local\nbob local extra\n",
		"routes-be": "alice local\n  bob   nowhere\n",
		"routes-dd": "alice local\nALICE local\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, []byte("u:p\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o644); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// pos renders a diagnostic's subject as file:line:column.
func pos(d *hcl.Diagnostic) string {
	if d.Subject == nil {
		return "<none>"
	}
	return fmt.Sprintf("%s:%d:%d", d.Subject.Filename, d.Subject.Start.Line, d.Subject.Start.Column)
}

// findDiag returns the first diagnostic of severity sev whose summary
// contains summary.
func findDiag(diags hcl.Diagnostics, sev hcl.DiagnosticSeverity, summary string) *hcl.Diagnostic {
	for _, d := range diags {
		if d.Severity == sev && strings.Contains(d.Summary, summary) {
			return d
		}
	}
	return nil
}

// diagText renders diagnostics for failure messages.
func diagText(diags hcl.Diagnostics) string {
	var b strings.Builder
	for _, d := range diags {
		fmt.Fprintf(&b, "\n  %s: %s: %s", pos(d), d.Summary, d.Detail)
	}
	return b.String()
}

func TestExampleConfigValidates(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	chdirRoot(t)
	cfg, _, diags := Load("config.hcl")
	if len(diags) != 0 {
		t.Fatalf("config.hcl: want no diagnostics, got:%s", diagText(diags))
	}
	if len(cfg.Listeners) != 2 || len(cfg.Backends) != 1 {
		t.Fatalf("config.hcl: got %d listeners and %d backends, want 2 and 1", len(cfg.Listeners), len(cfg.Backends))
	}
	pop3, pop3s := cfg.Listeners[0], cfg.Listeners[1]
	if pop3.Address != "127.0.0.1:1110" || pop3.TLS != proxy.TLSStartTLS || pop3.RequireTLS || pop3.Connect != proxy.ConnectOnAccept {
		t.Errorf("config.hcl listener pop3 = %+v; want 127.0.0.1:1110, starttls, TLS not required, on-accept", pop3)
	}
	if pop3s.Address != "127.0.0.1:1995" || pop3s.TLS != proxy.TLSImplicit || !pop3s.RequireTLS {
		t.Errorf("config.hcl listener pop3s = %+v; want 127.0.0.1:1995, implicit", pop3s)
	}
	if be := cfg.Backends[0]; be.Address != "127.0.0.1:110" || be.TLS != proxy.TLSNone {
		t.Errorf("config.hcl backend = %+v; want 127.0.0.1:110 without TLS", be)
	}
	if want := absPath("popgate-state"); cfg.StateDir != want {
		t.Errorf("config.hcl state_dir = %q, want %q", cfg.StateDir, want)
	}
	if len(cfg.Filters) != 0 || cfg.MetricsAddress != "" || cfg.TLS.ACME != nil || len(cfg.TLS.Certificates) != 0 {
		t.Errorf("config.hcl: optional blocks should be commented out: %+v", cfg)
	}
}

// fixTestdataModes gives testdata's secrets file the mode the apop filter
// requires; git does not keep it.
func fixTestdataModes(t *testing.T) {
	t.Helper()
	if err := os.Chmod("testdata/config/apop.secrets", 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestFullConfig(t *testing.T) {
	chdirRoot(t)
	fixTestdataModes(t)
	cfg, _, diags := Load("testdata/config/full.hcl")
	if len(diags) != 0 {
		t.Fatalf("full.hcl: want no diagnostics, got:%s", diagText(diags))
	}
	top := proxy.Limits{
		MaxSessions: 5000, MaxSessionsPerIP: 20, MaxLine: 1024, MaxErrors: 4, MaxAuthTries: 2,
		PreLoginTimeout: 30 * time.Second, IdleTimeout: 15 * time.Minute, WriteTimeout: 45 * time.Second,
		BackendTimeout: 90 * time.Second, HandshakeTimeout: 15 * time.Second, PipelineDepth: 64, IPv6Prefix: 64,
	}
	state := absPath("testdata/config/state")
	want := &Config{
		StateDir:        state,
		ShutdownTimeout: 45 * time.Second,
		Log:             Log{Level: hclog.Debug, JSON: true},
		Limits:          top,
		Listeners: []Listener{{
			Listener: proxy.Listener{
				Name: "pop3", Address: "127.0.0.1:1110", TLS: proxy.TLSStartTLS, RequireTLS: true,
				Connect: proxy.ConnectAfterAuth, Backend: "local", ProxyProtocol: true,
				TrustedProxies: []netip.Prefix{
					netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("::1/128"), netip.MustParsePrefix("10.0.0.0/8"),
				},
				Limits: proxy.Limits{
					MaxSessions: 100, MaxSessionsPerIP: 0, MaxLine: 8192, MaxErrors: 10, MaxAuthTries: 5,
					PreLoginTimeout: 2 * time.Minute, IdleTimeout: 30 * time.Minute, WriteTimeout: 2 * time.Minute,
					BackendTimeout: 2 * time.Minute, HandshakeTimeout: 15 * time.Second, PipelineDepth: 1, IPv6Prefix: 64,
				},
			},
			FilterNames:   []string{"audit", "apop", "rewrite", "clamav", "policy"},
			TLSMinVersion: tls.VersionTLS13,
		}, {
			Listener: proxy.Listener{
				Name: "pop3s", Address: "[::1]:1995", TLS: proxy.TLSImplicit, RequireTLS: true,
				Connect: proxy.ConnectAfterAuth, Backend: "dovecot",
				Limits: top,
			},
			FilterNames: []string{"audit", "apop", "rewrite", "clamav", "policy", "no-dele"},
		}},
		Backends: []Backend{{
			Backend: proxy.Backend{
				Name: "local", Address: "127.0.0.1:110", TLS: proxy.TLSNone,
				Login: proxy.LoginUser, Forward: proxy.ForwardXCLIENT,
				ConnectTimeout: 5 * time.Second, Health: defHealth, ReadTimeout: 30 * time.Second,
			},
			ServerName: "127.0.0.1",
		}, {
			Backend: proxy.Backend{
				Name: "dovecot", Address: "localhost:995", TLS: proxy.TLSImplicit,
				Login: proxy.LoginSASLPlain, Forward: proxy.ForwardProxyV2,
				ConnectTimeout: 3 * time.Second, Health: defHealth, ReadTimeout: 2 * time.Minute,
				MasterUser: "popgate", MasterPassword: "not-a-real-password",
			},
			CAFile: "testdata/config/ca.pem", ServerName: "mail.internal.example.com",
		}, {
			Backend: proxy.Backend{
				Name: "legacy", Address: "192.0.2.10:110", TLS: proxy.TLSStartTLS,
				Login: proxy.LoginAPOP, Forward: proxy.ForwardProxyV1, ConnectTimeout: 10 * time.Second, Health: defHealth,
			},
			ServerName: "legacy.example.com",
		}},
		Routes: Routes{
			MapFile: "testdata/config/routes",
			Users: map[string]string{
				"alice@example.com": "local", "bob@legacy.example.com": "legacy", "carol": "dovecot",
			},
			Rules: []Route{
				{User: "*@legacy.example.com", Backend: "legacy"},
				{User: "[a-m]*", Backend: "local"},
			},
		},
		TLS: tlsconf.Options{
			StateDir: state,
			Certificates: []tlsconf.Certificate{
				{CertFile: "testdata/config/cert.pem", KeyFile: "testdata/config/key.pem"},
				{CertFile: "testdata/config/cert.pem", KeyFile: "testdata/config/key.pem"},
			},
			ACME: &tlsconf.ACME{
				Domains: []string{"pop.example.com", "pop3.example.com"}, Email: "postmaster@example.com",
				Directory: "https://127.0.0.1:14000/dir", CAFile: "testdata/config/ca.pem",
				Storage: absPath("testdata/config/state/acme"), HTTPPort: 5002, TLSALPNPort: 5001,
				ListenHost: "127.0.0.1", Profile: "default",
			},
			SelfSignedNames: []string{"pop.example.com", "127.0.0.1", "localhost", "127.0.0.1", "::1"},
		},
		Filters: []Filter{
			{Type: "audit", Name: "audit", Settings: &audit.Config{Path: "testdata/config/audit.jsonl", Chain: true, Sync: audit.SyncInterval, SyncInterval: time.Second}},
			{Type: "apop", Name: "apop", Settings: &apop.Config{SecretsFile: "testdata/config/apop.secrets", Host: "pop.example.com"}},
			{Type: "rewrite", Name: "rewrite", Settings: &rewrite.Config{
				StripDomain: true, AddDomain: "example.com", Lowercase: true, MapFile: "testdata/config/rewrite.map"}},
			{Type: "clamav", Name: "clamav", Settings: &clamav.Config{
				Address: "unix:///run/clamav/clamd.ctl", OnInfected: "reject", OnError: "pass",
				MaxSize: 50 << 20, Timeout: 2 * time.Minute, SpoolDir: "testdata/config", SpoolMemory: 512 << 10, AddHeader: true,
				MaxConcurrentScans: 4, ScanWait: 30 * time.Second, KeepReplaced: true}},
			{Type: "policy", Name: "policy", Settings: &policy.Config{Deny: []string{"DELE", "TOP"}, MaxMessageSize: 100_000_000}},
			{Type: "policy", Name: "no-dele", Settings: &policy.Config{Deny: []string{"DELE"}}},
		},
		MetricsAddress: "127.0.0.1:9110",
		Spool:          Spool{Memory: 64 << 20, Disk: 1 << 30, Dir: "testdata"},
		Admin: admin.Options{Socket: filepath.Join(state, "admin.sock"), SocketSet: true,
			Address: "127.0.0.1:9111", Token: "an-admin-token-of-32-characters!"},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("full.hcl decoded to\n%s\nwant\n%s", dump(cfg), dump(want))
	}
	if be := cfg.Backend("dovecot"); be == nil || be.Address != "localhost:995" {
		t.Errorf("Backend(dovecot) = %+v", be)
	}
	if cfg.Backend("nowhere") != nil || cfg.Filter("nowhere") != nil {
		t.Error("lookups of unknown names should return nil")
	}
	if f := cfg.Filter("no-dele"); f == nil || f.Type != "policy" {
		t.Errorf("Filter(no-dele) = %+v", f)
	}
}

// dump renders a Config field by field, filters' settings included.
func dump(c *Config) string {
	var b strings.Builder
	v := reflect.ValueOf(c).Elem()
	for i := 0; i < v.NumField(); i++ {
		fmt.Fprintf(&b, "  %s: %+v\n", v.Type().Field(i).Name, v.Field(i).Interface())
	}
	for _, f := range c.Filters {
		fmt.Fprintf(&b, "  filter %s: %+v\n", f.Name, f.Settings)
	}
	if c.TLS.ACME != nil {
		fmt.Fprintf(&b, "  acme: %+v\n", *c.TLS.ACME)
	}
	return b.String()
}

func TestBuiltinConfig(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	cfg, _, diags := Builtin()
	if len(diags) != 0 {
		t.Fatalf("built-in configuration: %s", diagText(diags))
	}
	state := absPath("popgate-state")
	want := &Config{
		StateDir:        state,
		ShutdownTimeout: 30 * time.Second,
		Log:             Log{Level: hclog.Info},
		Limits:          proxy.DefaultLimits,
		Listeners: []Listener{{Listener: proxy.Listener{
			Name: "pop3", Address: "127.0.0.1:1110", TLS: proxy.TLSNone, Connect: proxy.ConnectOnAccept,
			Backend: "local", Limits: proxy.DefaultLimits,
		}}},
		Backends: []Backend{{
			Backend: proxy.Backend{
				Name: "local", Address: "127.0.0.1:110", TLS: proxy.TLSNone,
				Login: proxy.LoginUser, Forward: proxy.ForwardNone, ConnectTimeout: 10 * time.Second, Health: defHealth,
			},
			ServerName: "127.0.0.1",
		}},
		TLS:   tlsconf.Options{StateDir: state},
		Spool: Spool{Memory: 256 << 20, Disk: 4 << 30, Dir: os.TempDir()},
		Admin: admin.Options{Socket: filepath.Join(state, "admin.sock")},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("built-in configuration is\n%s\nwant\n%s", dump(cfg), dump(want))
	}
}

// TestDefaultLimitValues: the limits of a file that sets none are the
// documented ones, proxy.DefaultLimits.
func TestDefaultLimitValues(t *testing.T) {
	want := proxy.Limits{
		MaxSessions: 10000, MaxSessionsPerIP: 50, MaxLine: 255, MaxErrors: 5, MaxAuthTries: 3,
		PreLoginTimeout: 60 * time.Second, IdleTimeout: 10 * time.Minute, WriteTimeout: 60 * time.Second,
		BackendTimeout: 60 * time.Second, HandshakeTimeout: 15 * time.Second, PipelineDepth: 128, IPv6Prefix: 64,
	}
	if proxy.DefaultLimits != want {
		t.Errorf("proxy.DefaultLimits = %+v, want the documented %+v", proxy.DefaultLimits, want)
	}
	cfg, _, diags := parseTest(t, base, "")
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if cfg.Limits != want || cfg.Listeners[0].Limits != want {
		t.Errorf("a file without limits has limits %+v and %+v, want %+v", cfg.Limits, cfg.Listeners[0].Limits, want)
	}
}

func TestStateDirFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STATE_DIRECTORY", dir+":/elsewhere")
	cfg, _, diags := parseTest(t, base, "")
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if cfg.StateDir != dir {
		t.Errorf("StateDir = %q, want the first entry of $STATE_DIRECTORY, %q", cfg.StateDir, dir)
	}
}

func TestFilterDefaults(t *testing.T) {
	dir := testFiles(t)
	src := base + `
filter "audit" {}
filter "apop" {
  secrets_file = "{{dir}}/exists"
}
filter "rewrite" {
  lowercase = true
}
filter "clamav" {}
filter "policy" {}
`
	cfg, _, diags := parseTest(t, src, dir)
	if len(diags) != 1 || findDiag(diags, hcl.DiagWarning, "APOP filter inactive") == nil {
		t.Fatalf("want only the warning that apop does nothing on an on-accept listener, got:%s", diagText(diags))
	}
	want := []Filter{
		{Type: "audit", Name: "audit", Settings: &audit.Config{Path: "-", Sync: audit.SyncInterval, SyncInterval: time.Second}},
		{Type: "apop", Name: "apop", Settings: &apop.Config{SecretsFile: dir + "/exists"}},
		{Type: "rewrite", Name: "rewrite", Settings: &rewrite.Config{Lowercase: true}},
		{Type: "clamav", Name: "clamav", Settings: &clamav.Config{
			Address: "tcp://127.0.0.1:3310", OnInfected: "replace", OnError: "reject",
			MaxSize: 25 << 20, Timeout: 60 * time.Second, SpoolDir: os.TempDir(), SpoolMemory: 1 << 20,
			MaxConcurrentScans: 10, ScanWait: 10 * time.Second}},
		{Type: "policy", Name: "policy", Settings: &policy.Config{}},
	}
	if !reflect.DeepEqual(cfg.Filters, want) {
		for i := range cfg.Filters {
			t.Errorf("filter %d: got %+v", i, cfg.Filters[i].Settings)
		}
		t.Fatal("filter defaults differ")
	}
	if l := cfg.Listeners[0]; !reflect.DeepEqual(l.FilterNames, []string{"audit", "apop", "rewrite", "clamav", "policy"}) {
		t.Errorf("listener without filters attribute applies %q, want every filter in file order", l.FilterNames)
	}
}

func TestListenerDefaults(t *testing.T) {
	src := `
listener "a" {
  address = ":1110"
  tls     = "starttls"
  filters = []
}
listener "b" {
  address     = "127.0.0.1:0"
  tls         = "implicit"
  require_tls = false
  backend     = "two"
}
listener "c" {
  address = "127.0.0.1:0"
  backend = "one"
  limits {
    max_line = 512
  }
}
limits {
  max_errors = 9
}
backend "one" {
  address     = "[2001:db8::1]:110"
  tls         = "starttls"
  server_name = "pop.example.com"
}
backend "two" {
  address = "mail.example.com:995"
  tls     = "implicit"
}
`
	_, _, diags := parseTest(t, src, "")
	if d := findDiag(diags, hcl.DiagError, "Missing backend"); d == nil || pos(d) != "test.hcl:2:10" {
		t.Fatalf("listener a without backend among two: want Missing backend at test.hcl:2:10, got:%s", diagText(diags))
	}
	src = strings.Replace(src, `filters = []`, `filters = []
  backend = "one"`, 1)
	cfg, _, diags := parseTest(t, src, "")
	if len(diags) != 0 {
		t.Fatalf("want no diagnostics, got:%s", diagText(diags))
	}
	a, b, c := cfg.Listeners[0], cfg.Listeners[1], cfg.Listeners[2]
	if !a.RequireTLS || a.Connect != proxy.ConnectOnAccept || len(a.FilterNames) != 0 {
		t.Errorf("listener a = %+v; want require_tls true for starttls, on-accept, explicitly no filters", a)
	}
	if !b.RequireTLS {
		t.Error("listener b: implicit TLS always requires TLS")
	}
	wantC := proxy.DefaultLimits
	wantC.MaxErrors = 9
	wantC.MaxLine = 512
	if c.Limits != wantC {
		t.Errorf("listener c limits = %+v, want top-level limits with max_line overridden: %+v", c.Limits, wantC)
	}
	if a.Limits.MaxLine != 255 || a.Limits.MaxErrors != 9 {
		t.Errorf("listener a limits = %+v, want top-level limits", a.Limits)
	}
	if one := cfg.Backend("one"); one.ServerName != "pop.example.com" {
		t.Errorf("backend one server name = %q", one.ServerName)
	}
	if two := cfg.Backend("two"); two.ServerName != "mail.example.com" || two.ReadTimeout != 0 {
		t.Errorf("backend two = %+v; want server name from the address and read_timeout 0 (use limits)", two)
	}
}

// defHealth is the health options of a backend that sets none.
var defHealth = proxy.HealthOptions{FailThreshold: proxy.DefaultFailThreshold, DownBackoff: proxy.DefaultDownBackoff}
