package config

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/proxy"
)

// authBase is an after-auth listener asking auth_http "dir"; text
// appended to it starts on line 16.
const authBase = `listener "pop3" {
  address = "127.0.0.1:1110"
  connect = "after-auth"
  auth    = "dir"
  backend = "local"
}
backend "local" {
  address = "127.0.0.1:110"
}
backend "other" {
  address = "10.0.0.9:110"
}
auth_http "dir" {
  url = "http://127.0.0.1:9000/auth"
}
`

func TestAuthHTTPBlock(t *testing.T) {
	src := `listener "pop3" {
  address = "127.0.0.1:1110"
  connect = "after-auth"
  auth    = "directory"
}
backend "local" {
  address = "127.0.0.1:110"
}
auth_http "directory" {
  url               = "https://auth.example.com/auth"
  timeout           = "2s"
  headers           = { "X-Auth-Key" = "secret" }
  cache_ttl         = "30s"
  allowed_backends  = ["10.0.0.0/8", "10.0.0.0/8:110", "[2001:db8::/32]:110"]
  verifies_password = true
  max_in_flight     = 8
}
`
	cfg, _, diags := parseTest(t, src, t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if cfg.Listeners[0].AuthName != "directory" {
		t.Fatalf("listener auth %q", cfg.Listeners[0].AuthName)
	}
	a := cfg.AuthService("directory")
	if a == nil {
		t.Fatal("no auth_http block")
	}
	o := a.Options
	if o.URL != "https://auth.example.com/auth" || o.Timeout != 2*time.Second || o.CacheTTL != 30*time.Second ||
		o.MaxInFlight != 8 || o.Headers["X-Auth-Key"] != "secret" || !a.VerifiesPassword {
		t.Fatalf("%+v", a)
	}
	var rules []string
	for _, r := range a.AllowedBackends {
		rules = append(rules, r.String())
	}
	if got := strings.Join(rules, " "); got != "10.0.0.0/8 10.0.0.0/8:110 [2001:db8::/32]:110" {
		t.Fatalf("allowed_backends %s", got)
	}
}

func TestAuthHTTPDefaults(t *testing.T) {
	cfg, _, diags := parseTest(t, authBase, t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	a := cfg.AuthService("dir")
	if a.Options.Timeout != 5*time.Second || a.Options.CacheTTL != 0 || a.VerifiesPassword || a.AllowedBackends != nil {
		t.Fatalf("%+v", a)
	}
	// Backends not named by the listener are not "unused": the service may name them.
	if d := findDiag(diags, hcl.DiagWarning, "Unused backend"); d != nil {
		t.Errorf("warning %s", d.Detail)
	}
}

func TestAuthHTTPErrors(t *testing.T) {
	for _, tc := range []validationCase{
		{name: "unknown auth", full: true, src: strings.Replace(authBase, `auth    = "dir"`, `auth    = "nope"`, 1),
			summary: "Unknown auth", at: "test.hcl:4:13"},
		{name: "on-accept", full: true, src: strings.Replace(authBase, `connect = "after-auth"`, `connect = "on-accept"`, 1),
			summary: "auth needs after-auth", at: "test.hcl:4:13"},
		{name: "ftp url", src: "auth_http \"x\" {\n  url = \"ftp://h/auth\"\n}\n", summary: "Invalid url", at: "test.hcl:17:9"},
		{name: "url without scheme", src: "auth_http \"x\" {\n  url = \"127.0.0.1:9000/auth\"\n}\n", summary: "Invalid url", at: "test.hcl:17:9"},
		{name: "timeout", src: "auth_http \"x\" {\n  url = \"http://127.0.0.1/\"\n  timeout = \"0s\"\n}\n", summary: "Invalid timeout", at: "test.hcl:18:13"},
		{name: "cache_ttl", src: "auth_http \"x\" {\n  url = \"http://127.0.0.1/\"\n  cache_ttl = \"soon\"\n}\n", summary: "Invalid cache_ttl", at: "test.hcl:18:15"},
		{name: "allowed_backends", src: "auth_http \"x\" {\n  url = \"http://127.0.0.1/\"\n  allowed_backends = [\"10.0.0.0/8\", \"mail.example.com\"]\n}\n",
			summary: "Invalid allowed_backends", at: "test.hcl:18:37"},
		{name: "reserved header", src: "auth_http \"x\" {\n  url = \"http://127.0.0.1/\"\n  headers = { \"Auth-User\" = \"x\" }\n}\n",
			summary: "Invalid headers", at: "test.hcl:18:13"},
		{name: "bad header name", src: "auth_http \"x\" {\n  url = \"http://127.0.0.1/\"\n  headers = { \"X Key\" = \"x\" }\n}\n",
			summary: "Invalid headers", at: "test.hcl:18:13"},
		{name: "duplicate", src: "auth_http \"dir\" {\n  url = \"http://127.0.0.1/\"\n}\n", summary: "Duplicate auth_http", at: "test.hcl:16:11"},
		{name: "max_in_flight", src: "auth_http \"x\" {\n  url = \"http://127.0.0.1/\"\n  max_in_flight = 0\n}\n", summary: "Invalid max_in_flight", at: "test.hcl:18:19"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if !tc.full {
				src = authBase + src
			}
			cfg, _, diags := parseTest(t, src, t.TempDir())
			if cfg != nil {
				t.Error("got a Config despite the error")
			}
			d := findDiag(diags, hcl.DiagError, tc.summary)
			if d == nil {
				t.Fatalf("no error %q:%s", tc.summary, diagText(diags))
			}
			if got := pos(d); got != tc.at {
				t.Errorf("at %s, want %s", got, tc.at)
			}
		})
	}
}

func TestAuthHTTPSecretsNotInDiagnostics(t *testing.T) {
	src := authBase + "auth_http \"x\" {\n  url = \"ftp://user:urlsecret@h/auth?key=querysecret\"\n  headers = { \"Auth-Pass\" = \"hdrsecret\" }\n}\n"
	_, _, diags := parseTest(t, src, t.TempDir())
	text := diagText(diags)
	for _, s := range []string{"urlsecret", "querysecret", "hdrsecret"} {
		if strings.Contains(text, s) {
			t.Errorf("diagnostics leak %s:%s", s, text)
		}
	}
}

func TestAuthHTTPWarnings(t *testing.T) {
	src := authBase + "auth_http \"remote\" {\n  url = \"http://auth.example.com/auth\"\n}\n"
	_, _, diags := parseTest(t, src, t.TempDir())
	if findDiag(diags, hcl.DiagWarning, "Auth service in clear") == nil {
		t.Errorf("no warning for plain http to another host:%s", diagText(diags))
	}
	if findDiag(diags, hcl.DiagWarning, "Unused auth_http") == nil {
		t.Errorf("no warning for an unused auth_http:%s", diagText(diags))
	}
}

func TestAuthHTTPMasterUser(t *testing.T) {
	master := `backend "m" {
  address         = "127.0.0.1:111"
  login           = "sasl-plain"
  master_user     = "m"
  master_password = "p"
}
`
	// The service may name any backend: without verifies_password the
	// master backend is refused even though no route names it.
	_, _, diags := parseTest(t, authBase+master, t.TempDir())
	if findDiag(diags, hcl.DiagError, "Master login without password check") == nil {
		t.Errorf("master backend reachable through a routing-only service accepted:%s", diagText(diags))
	}
	src := strings.Replace(authBase, `url = "http://127.0.0.1:9000/auth"`, "url = \"http://127.0.0.1:9000/auth\"\n  verifies_password = true", 1) + master
	cfg, _, diags := parseTest(t, src, t.TempDir())
	if diags.HasErrors() {
		t.Fatalf("verifies_password = true refused:%s", diagText(diags))
	}
	if cfg.Listeners[0].Connect != proxy.ConnectAfterAuth {
		t.Fatal("listener not after-auth")
	}
}
