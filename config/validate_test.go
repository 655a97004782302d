package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// validationCase is a configuration with one problem and where it must be
// reported. at is file:line:column; src is appended to base unless full.
type validationCase struct {
	name    string
	src     string
	full    bool
	summary string
	at      string
}

// errorCases each hold one error. Lines 1-6 are base, so appended text
// starts on line 7; an attribute "  name = value" has its value at column
// len(name)+6.
var errorCases = []validationCase{
	// Syntax and structure, reported by the HCL parser and gohcl.
	{name: "syntax", src: "log {\n  level = \n}\n", summary: "Invalid expression", at: "test.hcl:8:11"},
	{name: "unknown block", src: "listner \"x\" {\n}\n", summary: "Unsupported block type", at: "test.hcl:7:1"},
	{name: "unknown attribute", src: "log {\n  colour = true\n}\n", summary: "Unsupported argument", at: "test.hcl:8:3"},
	{name: "wrong type", src: "limits {\n  max_line = \"long\"\n}\n", summary: "Unsuitable value type", at: "test.hcl:8:15"},
	{name: "missing required", src: "metrics {\n}\n", summary: "Missing required argument", at: "test.hcl:7:9"},
	{name: "two log blocks", src: "log {\n}\nlog {\n}\n", summary: "Duplicate log block", at: "test.hcl:9:1"},

	// Top level and log.
	{name: "state_dir empty", src: "state_dir = \"\"\n", summary: "Invalid state_dir", at: "test.hcl:7:13"},
	{name: "shutdown_timeout unit", src: "shutdown_timeout = \"30\"\n", summary: "Invalid shutdown_timeout", at: "test.hcl:7:20"},
	{name: "shutdown_timeout negative", src: "shutdown_timeout = \"-5s\"\n", summary: "Invalid shutdown_timeout", at: "test.hcl:7:20"},
	{name: "shutdown_timeout zero", src: "shutdown_timeout = \"0s\"\n", summary: "Invalid shutdown_timeout", at: "test.hcl:7:20"},
	{name: "log level", src: "log {\n  level = \"loud\"\n}\n", summary: "Invalid level", at: "test.hcl:8:11"},
	{name: "log format", src: "log {\n  format = \"xml\"\n}\n", summary: "Invalid format", at: "test.hcl:8:12"},

	// Limits.
	{name: "max_line short", src: "limits {\n  max_line = 100\n}\n", summary: "Invalid max_line", at: "test.hcl:8:14"},
	{name: "max_line long", src: "limits {\n  max_line = 9000\n}\n", summary: "Invalid max_line", at: "test.hcl:8:14"},
	{name: "max_sessions zero", src: "limits {\n  max_sessions = 0\n}\n", summary: "Invalid max_sessions", at: "test.hcl:8:18"},
	{name: "max_sessions_per_ip negative", src: "limits {\n  max_sessions_per_ip = -1\n}\n", summary: "Invalid max_sessions_per_ip", at: "test.hcl:8:25"},
	{name: "max_errors zero", src: "limits {\n  max_errors = 0\n}\n", summary: "Invalid max_errors", at: "test.hcl:8:16"},
	{name: "max_auth_tries zero", src: "limits {\n  max_auth_tries = 0\n}\n", summary: "Invalid max_auth_tries", at: "test.hcl:8:20"},
	{name: "pipeline_depth zero", src: "limits {\n  pipeline_depth = 0\n}\n", summary: "Invalid pipeline_depth", at: "test.hcl:8:20"},
	{name: "prelogin_timeout", src: "limits {\n  prelogin_timeout = \"soon\"\n}\n", summary: "Invalid prelogin_timeout", at: "test.hcl:8:22"},
	{name: "idle_timeout", src: "limits {\n  idle_timeout = \"0s\"\n}\n", summary: "Invalid idle_timeout", at: "test.hcl:8:18"},
	{name: "write_timeout", src: "limits {\n  write_timeout = \"1x\"\n}\n", summary: "Invalid write_timeout", at: "test.hcl:8:19"},
	{name: "backend_timeout", src: "limits {\n  backend_timeout = \"-1m\"\n}\n", summary: "Invalid backend_timeout", at: "test.hcl:8:21"},
	{name: "throttle_ipv6_prefix short", src: "limits {\n  throttle_ipv6_prefix = 16\n}\n", summary: "Invalid throttle_ipv6_prefix", at: "test.hcl:8:26"},
	{name: "throttle_ipv6_prefix long", src: "limits {\n  throttle_ipv6_prefix = 129\n}\n", summary: "Invalid throttle_ipv6_prefix", at: "test.hcl:8:26"},
	{name: "tls_handshake_timeout", src: "limits {\n  tls_handshake_timeout = \"fast\"\n}\n", summary: "Invalid tls_handshake_timeout", at: "test.hcl:8:27"},

	// Listeners.
	{name: "no listener", full: true, src: "backend \"b\" {\n  address = \"127.0.0.1:110\"\n}\n", summary: "No listener", at: "test.hcl:1:1"},
	{name: "listener duplicate name", src: "listener \"pop3\" {\n  address = \"127.0.0.1:1111\"\n}\n", summary: "Duplicate listener", at: "test.hcl:7:10"},
	{name: "listener duplicate address", src: "listener \"other\" {\n  address = \"127.0.0.1:1110\"\n}\n", summary: "Duplicate address", at: "test.hcl:8:13"},
	{name: "listener address without port", src: "listener \"x\" {\n  address = \"localhost\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "listener port range", src: "listener \"x\" {\n  address = \"127.0.0.1:70000\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "listener port name", src: "listener \"x\" {\n  address = \"127.0.0.1:pop3\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "listener bad host", src: "listener \"x\" {\n  address = \"bad host:110\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "listener tls", src: "listener \"x\" {\n  address = \":1\"\n  tls = \"startls\"\n}\n", summary: "Invalid tls", at: "test.hcl:9:9"},
	{name: "require_tls without tls", src: "listener \"x\" {\n  address = \":1\"\n  require_tls = true\n}\n", summary: "Invalid require_tls", at: "test.hcl:9:17"},
	{name: "connect", src: "listener \"x\" {\n  address = \":1\"\n  connect = \"later\"\n}\n", summary: "Invalid connect", at: "test.hcl:9:13"},
	{name: "listener unknown backend", src: "listener \"x\" {\n  address = \":1\"\n  backend = \"nope\"\n}\n", summary: "Unknown backend", at: "test.hcl:9:13"},
	{name: "proxy_protocol without trusted", src: "listener \"x\" {\n  address = \":1\"\n  proxy_protocol = true\n}\n", summary: "Missing trusted_proxies", at: "test.hcl:9:20"},
	{name: "trusted_proxies CIDR", src: "listener \"x\" {\n  address = \":1\"\n  proxy_protocol = true\n  trusted_proxies = [\"10.0.0.0/8\", \"10.0.0.0/33\"]\n}\n", summary: "Invalid trusted_proxies", at: "test.hcl:10:36"},
	{name: "filters unknown", src: "listener \"x\" {\n  address = \":1\"\n  filters = [\"audit\", \"nope\"]\n}\nfilter \"audit\" {}\n", summary: "Unknown filter", at: "test.hcl:9:23"},
	{name: "filters without filter blocks", src: "listener \"x\" {\n  address = \":1\"\n  filters = [\"audit\"]\n}\n", summary: "Unknown filter", at: "test.hcl:9:14"},
	{name: "filters duplicate", src: "listener \"x\" {\n  address = \":1\"\n  filters = [\"audit\", \"audit\"]\n}\nfilter \"audit\" {}\n", summary: "Duplicate filter", at: "test.hcl:9:23"},
	{name: "server_name", src: "listener \"x\" {\n  address = \":1\"\n  tls = \"implicit\"\n  server_name = [\"ok.example\", \"not ok\"]\n}\n", summary: "Invalid server_name", at: "test.hcl:10:32"},
	{name: "tls_min_version", src: "listener \"x\" {\n  address = \":1\"\n  tls_min_version = \"1.1\"\n}\n", summary: "Invalid tls_min_version", at: "test.hcl:9:21"},
	{name: "listener limits", src: "listener \"x\" {\n  address = \":1\"\n  limits {\n    max_line = 254\n  }\n}\n", summary: "Invalid max_line", at: "test.hcl:10:16"},

	// Backends.
	{name: "no backend", full: true, src: "listener \"l\" {\n  address = \":1\"\n}\n", summary: "No backend", at: "test.hcl:1:1"},
	{name: "backend duplicate", src: "backend \"local\" {\n  address = \"127.0.0.1:111\"\n}\n", summary: "Duplicate backend", at: "test.hcl:7:9"},
	{name: "backend without host", src: "backend \"b\" {\n  address = \":110\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "backend port zero", src: "backend \"b\" {\n  address = \"127.0.0.1:0\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "backend tls", src: "backend \"b\" {\n  address = \"h:1\"\n  tls = \"ssl\"\n}\n", summary: "Invalid tls", at: "test.hcl:9:9"},
	{name: "backend ca_file", src: "backend \"b\" {\n  address = \"h:1\"\n  tls = \"implicit\"\n  ca_file = \"{{dir}}/missing.pem\"\n}\n", summary: "File not found", at: "test.hcl:10:13"},
	{name: "backend ca_file directory", src: "backend \"b\" {\n  address = \"h:1\"\n  tls = \"implicit\"\n  ca_file = \"{{dir}}/sub\"\n}\n", summary: "Not a file", at: "test.hcl:10:13"},
	{name: "backend server_name", src: "backend \"b\" {\n  address = \"h:1\"\n  tls = \"implicit\"\n  server_name = \"a b\"\n}\n", summary: "Invalid server_name", at: "test.hcl:10:17"},
	{name: "backend login", src: "backend \"b\" {\n  address = \"h:1\"\n  login = \"plain\"\n}\n", summary: "Invalid login", at: "test.hcl:9:11"},
	{name: "backend forward_client", src: "backend \"b\" {\n  address = \"h:1\"\n  forward_client = \"proxy\"\n}\n", summary: "Invalid forward_client", at: "test.hcl:9:20"},
	{name: "backend connect_timeout", src: "backend \"b\" {\n  address = \"h:1\"\n  connect_timeout = \"10\"\n}\n", summary: "Invalid connect_timeout", at: "test.hcl:9:21"},
	{name: "backend read_timeout", src: "backend \"b\" {\n  address = \"h:1\"\n  read_timeout = \"0s\"\n}\n", summary: "Invalid read_timeout", at: "test.hcl:9:18"},
	{name: "master_user alone", src: "backend \"b\" {\n  address = \"h:1\"\n  login = \"sasl-plain\"\n  master_user = \"m\"\n}\n", summary: "Missing master_password", at: "test.hcl:10:17"},
	{name: "master_password alone", src: "backend \"b\" {\n  address = \"h:1\"\n  login = \"sasl-plain\"\n  master_password = \"p\"\n}\n", summary: "Missing master_user", at: "test.hcl:10:21"},
	{name: "master login needs sasl-plain", src: "backend \"b\" {\n  address = \"h:1\"\n  master_user = \"m\"\n  master_password = \"p\"\n}\n", summary: "Invalid master_user", at: "test.hcl:9:17"},

	// Routes.
	{name: "route glob", src: "route {\n  user = \"[a-\"\n  backend = \"local\"\n}\n", summary: "Invalid user", at: "test.hcl:8:10"},
	{name: "route empty user", src: "route {\n  user = \"\"\n  backend = \"local\"\n}\n", summary: "Invalid user", at: "test.hcl:8:10"},
	{name: "route backend", src: "route {\n  user = \"*\"\n  backend = \"nope\"\n}\n", summary: "Unknown backend", at: "test.hcl:9:13"},
	{name: "route_map missing", src: "route_map {\n  file = \"{{dir}}/missing\"\n}\n", summary: "Cannot read route map", at: "test.hcl:8:10"},
	{name: "route_map empty", src: "route_map {\n  file = \"\"\n}\n", summary: "Invalid file", at: "test.hcl:8:10"},
	{name: "route_map fields", src: "route_map {\n  file = \"{{dir}}/routes-3\"\n}\n", summary: "Invalid route map line", at: "{{dir}}/routes-3:2:1"},
	{name: "route_map backend", src: "route_map {\n  file = \"{{dir}}/routes-be\"\n}\n", summary: "Unknown backend", at: "{{dir}}/routes-be:2:1"},
	{name: "route_map duplicate", src: "route_map {\n  file = \"{{dir}}/routes-dd\"\n}\n", summary: "Duplicate route map user", at: "{{dir}}/routes-dd:2:1"},

	// TLS.
	{name: "cert_file", src: "tls {\n  certificate {\n    cert_file = \"{{dir}}/nope.crt\"\n    key_file = \"{{dir}}/exists\"\n  }\n}\n", summary: "File not found", at: "test.hcl:9:17"},
	{name: "key_file", src: "tls {\n  certificate {\n    cert_file = \"{{dir}}/exists\"\n    key_file = \"{{dir}}/nope.key\"\n  }\n}\n", summary: "File not found", at: "test.hcl:10:16"},
	{name: "acme no domains", src: "tls {\n  acme {\n    domains = []\n  }\n}\n", summary: "Missing domains", at: "test.hcl:9:15"},
	{name: "acme wildcard", src: "tls {\n  acme {\n    domains = [\"*.example.com\"]\n  }\n}\n", summary: "Invalid domains", at: "test.hcl:9:16"},
	{name: "acme IP", src: "tls {\n  acme {\n    domains = [\"a.example\", \"192.0.2.1\"]\n  }\n}\n", summary: "Invalid domains", at: "test.hcl:9:29"},
	{name: "acme email", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    email = \"postmaster\"\n  }\n}\n", summary: "Invalid email", at: "test.hcl:10:13"},
	{name: "acme directory", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    directory = \"ftp://ca.example/dir\"\n  }\n}\n", summary: "Invalid directory", at: "test.hcl:10:17"},
	{name: "acme ca_file", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    ca_file = \"{{dir}}/nope\"\n  }\n}\n", summary: "File not found", at: "test.hcl:10:15"},
	{name: "acme storage", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    storage = \"\"\n  }\n}\n", summary: "Invalid storage", at: "test.hcl:10:15"},
	{name: "acme http_port", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    http_port = 0\n  }\n}\n", summary: "Invalid http_port", at: "test.hcl:10:17"},
	{name: "acme tls_alpn_port", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    tls_alpn_port = 65536\n  }\n}\n", summary: "Invalid tls_alpn_port", at: "test.hcl:10:21"},
	{name: "acme listen_host", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n    listen_host = \"no such host\"\n  }\n}\n", summary: "Invalid listen_host", at: "test.hcl:10:19"},

	// Filters.
	{name: "filter type", src: "filter \"antivirus\" {}\n", summary: "Unknown filter type", at: "test.hcl:7:8"},
	{name: "filter duplicate", src: "filter \"audit\" {}\nfilter \"audit\" {}\n", summary: "Duplicate filter name", at: "test.hcl:8:8"},
	{name: "filter duplicate name", src: "filter \"audit\" {}\nfilter \"policy\" {\n  name = \"audit\"\n}\n", summary: "Duplicate filter name", at: "test.hcl:9:10"},
	{name: "filter name", src: "filter \"audit\" {\n  name = \"my audit\"\n}\n", summary: "Invalid name", at: "test.hcl:8:10"},
	{name: "filter attribute of another type", src: "filter \"audit\" {\n  secrets_file = \"x\"\n}\n", summary: "Unsupported argument", at: "test.hcl:8:3"},
	{name: "audit path empty", src: "filter \"audit\" {\n  path = \"\"\n}\n", summary: "Invalid path", at: "test.hcl:8:10"},
	{name: "audit path directory", src: "filter \"audit\" {\n  path = \"{{dir}}/nodir/audit.jsonl\"\n}\n", summary: "Directory not found", at: "test.hcl:8:10"},
	{name: "apop secrets_file required", src: "filter \"apop\" {\n}\n", summary: "Missing required argument", at: "test.hcl:7:15"},
	{name: "apop secrets_file", src: "filter \"apop\" {\n  secrets_file = \"{{dir}}/nope\"\n}\n", summary: "File not found", at: "test.hcl:8:18"},
	{name: "apop secrets_file mode", src: "filter \"apop\" {\n  secrets_file = \"{{dir}}/open\"\n}\n", summary: "Secrets file readable by others", at: "test.hcl:8:18"},
	{name: "apop timestamp_host", src: "filter \"apop\" {\n  secrets_file = \"{{dir}}/exists\"\n  timestamp_host = \"a..b\"\n}\n", summary: "Invalid timestamp_host", at: "test.hcl:9:20"},
	{name: "rewrite add_domain at", src: "filter \"rewrite\" {\n  add_domain = \"@example.com\"\n}\n", summary: "Invalid add_domain", at: "test.hcl:8:16"},
	{name: "rewrite add_domain", src: "filter \"rewrite\" {\n  add_domain = \"exa mple\"\n}\n", summary: "Invalid add_domain", at: "test.hcl:8:16"},
	{name: "rewrite map_file", src: "filter \"rewrite\" {\n  map_file = \"{{dir}}/nope\"\n}\n", summary: "File not found", at: "test.hcl:8:14"},
	{name: "clamav address scheme", src: "filter \"clamav\" {\n  address = \"127.0.0.1:3310\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "clamav unix without path", src: "filter \"clamav\" {\n  address = \"unix://\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "clamav tcp port", src: "filter \"clamav\" {\n  address = \"tcp://127.0.0.1\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "clamav on_infected", src: "filter \"clamav\" {\n  on_infected = \"delete\"\n}\n", summary: "Invalid on_infected", at: "test.hcl:8:17"},
	{name: "clamav on_error", src: "filter \"clamav\" {\n  on_error = \"ignore\"\n}\n", summary: "Invalid on_error", at: "test.hcl:8:14"},
	{name: "clamav max_size unit", src: "filter \"clamav\" {\n  max_size = \"50XB\"\n}\n", summary: "Invalid max_size", at: "test.hcl:8:14"},
	{name: "clamav max_size zero", src: "filter \"clamav\" {\n  max_size = \"0\"\n}\n", summary: "Invalid max_size", at: "test.hcl:8:14"},
	{name: "clamav timeout", src: "filter \"clamav\" {\n  timeout = \"0s\"\n}\n", summary: "Invalid timeout", at: "test.hcl:8:13"},
	{name: "clamav spool_dir", src: "filter \"clamav\" {\n  spool_dir = \"{{dir}}/nope\"\n}\n", summary: "Directory not found", at: "test.hcl:8:15"},
	{name: "clamav spool_dir file", src: "filter \"clamav\" {\n  spool_dir = \"{{dir}}/exists\"\n}\n", summary: "Not a directory", at: "test.hcl:8:15"},
	{name: "clamav max_concurrent_scans", src: "filter \"clamav\" {\n  max_concurrent_scans = 0\n}\n", summary: "Invalid max_concurrent_scans", at: "test.hcl:8:26"},
	{name: "clamav scan_wait", src: "filter \"clamav\" {\n  scan_wait = \"soon\"\n}\n", summary: "Invalid scan_wait", at: "test.hcl:8:15"},
	{name: "clamav spool_memory", src: "filter \"clamav\" {\n  spool_memory = \"-1\"\n}\n", summary: "Invalid spool_memory", at: "test.hcl:8:18"},
	{name: "policy deny QUIT", src: "filter \"policy\" {\n  deny = [\"DELE\", \"quit\"]\n}\n", summary: "Invalid deny", at: "test.hcl:8:19"},
	{name: "policy deny STLS", src: "filter \"policy\" {\n  deny = [\"DELE\", \"stls\"]\n}\n", summary: "Invalid deny", at: "test.hcl:8:19"},
	{name: "policy deny keyword", src: "filter \"policy\" {\n  deny = [\"RE TR\"]\n}\n", summary: "Invalid deny", at: "test.hcl:8:11"},
	{name: "policy max_message_size", src: "filter \"policy\" {\n  max_message_size = \"big\"\n}\n", summary: "Invalid max_message_size", at: "test.hcl:8:22"},

	// Spool.
	{name: "spool memory zero", src: "spool {\n  memory = \"0\"\n}\n", summary: "Invalid memory", at: "test.hcl:8:12"},
	{name: "spool disk fraction", src: "spool {\n  disk = \"1.5GiB\"\n}\n", summary: "Invalid disk", at: "test.hcl:8:10"},
	{name: "spool dir", src: "spool {\n  dir = \"{{dir}}/nope\"\n}\n", summary: "Directory not found", at: "test.hcl:8:9"},

	// Metrics.
	{name: "metrics address", src: "metrics {\n  address = \"9110\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
	{name: "metrics address clash", src: "metrics {\n  address = \"127.0.0.1:1110\"\n}\n", summary: "Duplicate address", at: "test.hcl:8:13"},
}

func TestValidationErrors(t *testing.T) {
	dir := testFiles(t)
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if !tc.full {
				src = base + src
			}
			cfg, _, diags := parseTest(t, src, dir)
			if cfg != nil {
				t.Errorf("got a Config despite the error")
			}
			want := strings.ReplaceAll(tc.at, "{{dir}}", dir)
			d := findDiag(diags, hcl.DiagError, tc.summary)
			if d == nil {
				t.Fatalf("no error %q; got:%s", tc.summary, diagText(diags))
			}
			if got := pos(d); got != want {
				t.Errorf("error %q at %s, want %s; all:%s", tc.summary, got, want, diagText(diags))
			}
			if d.Detail == "" {
				t.Errorf("error %q has no detail", tc.summary)
			}
		})
	}
}

// wbase is base with the listener naming its backend, so that warning
// cases may add backends; text appended to it starts on line 8.
const wbase = `listener "pop3" {
  address = "127.0.0.1:1110"
  backend = "local"
}
backend "local" {
  address = "127.0.0.1:110"
}
`

// useB is a listener that uses backend "b", so that it is not unused.
const useB = "listener \"x\" {\n  address = \":1\"\n  backend = \"b\"\n}\n"

// warningCases each hold one warning and no error; src is appended to
// wbase unless full.
var warningCases = []validationCase{
	{name: "short idle_timeout", src: "limits {\n  idle_timeout = \"5m\"\n}\n", summary: "Short idle_timeout", at: "test.hcl:9:18"},
	{name: "trusted_proxies unused", src: "listener \"x\" {\n  address = \":1\"\n  trusted_proxies = [\"::1\"]\n}\n", summary: "Unused trusted_proxies", at: "test.hcl:10:21"},
	{name: "server_name without TLS", src: "listener \"x\" {\n  address = \":1\"\n  server_name = [\"a.example\"]\n}\n", summary: "Unused server_name", at: "test.hcl:10:17"},
	{name: "unused backend", src: "backend \"spare\" {\n  address = \"h:1\"\n}\n", summary: "Unused backend", at: "test.hcl:8:9"},
	{name: "unused filter", full: true, src: "listener \"x\" {\n  address = \":1\"\n  filters = []\n}\nbackend \"local\" {\n  address = \"h:1\"\n}\nfilter \"audit\" {}\n", summary: "Unused filter", at: "test.hcl:8:8"},
	{name: "ca_file without TLS", src: "backend \"b\" {\n  address = \"h:1\"\n  ca_file = \"{{dir}}/exists\"\n}\n" + useB, summary: "Unused ca_file", at: "test.hcl:10:13"},
	{name: "insecure_skip_verify", src: "backend \"b\" {\n  address = \"h:1\"\n  tls = \"implicit\"\n  insecure_skip_verify = true\n}\n" + useB, summary: "Backend certificate not verified", at: "test.hcl:11:26"},
	{name: "master password in plaintext", src: "backend \"b\" {\n  address = \"192.0.2.1:110\"\n  login = \"sasl-plain\"\n  master_user = \"m\"\n  master_password = \"p\"\n}\n" + useB, summary: "Master password in plaintext", at: "test.hcl:12:21"},
	{name: "routes without after-auth", src: "route {\n  user = \"*\"\n  backend = \"local\"\n}\n", summary: "Routes unused", at: "test.hcl:8:7"},
	{name: "route map without after-auth", src: "route_map {\n  file = \"{{dir}}/routes\"\n}\n", summary: "Route map unused", at: "test.hcl:8:11"},
	{name: "rewrite does nothing", src: "filter \"rewrite\" {}\n", summary: "Rewrite does nothing", at: "test.hcl:8:18"},
	{name: "apop on on-accept listener", full: true, src: "listener \"x\" {\n  address = \":1\"\n  filters = [\"apop\"]\n}\nbackend \"local\" {\n  address = \"h:1\"\n}\nfilter \"apop\" {\n  secrets_file = \"{{dir}}/exists\"\n}\n", summary: "APOP filter inactive", at: "test.hcl:3:14"},
	{name: "apop on every on-accept listener", src: "filter \"apop\" {\n  secrets_file = \"{{dir}}/exists\"\n}\n", summary: "APOP filter inactive", at: "test.hcl:1:10"},
	{name: "unknown deny command", src: "filter \"policy\" {\n  deny = [\"XYZZY\"]\n}\n", summary: "Unknown command", at: "test.hcl:9:11"},
	{name: "deny command never relayed", src: "filter \"policy\" {\n  deny = [\"UTF8\"]\n}\n", summary: "Command never relayed", at: "test.hcl:9:11"},
	{name: "acme without TLS listener", src: "tls {\n  acme {\n    domains = [\"a.example\"]\n  }\n}\n", summary: "ACME unused", at: "test.hcl:9:8"},
	{name: "acme over http", src: "listener \"s\" {\n  address = \":2\"\n  tls = \"implicit\"\n}\ntls {\n  acme {\n    domains = [\"a.example\"]\n    directory = \"http://127.0.0.1:14000/dir\"\n  }\n}\n", summary: "ACME directory without TLS", at: "test.hcl:15:17"},
}

func TestValidationWarnings(t *testing.T) {
	dir := testFiles(t)
	for _, tc := range warningCases {
		t.Run(tc.name, func(t *testing.T) {
			src := tc.src
			if !tc.full {
				src = wbase + src
			}
			cfg, _, diags := parseTest(t, src, dir)
			if diags.HasErrors() || cfg == nil {
				t.Fatalf("want only warnings, got:%s", diagText(diags))
			}
			d := findDiag(diags, hcl.DiagWarning, tc.summary)
			if d == nil {
				t.Fatalf("no warning %q; got:%s", tc.summary, diagText(diags))
			}
			if got := pos(d); got != tc.at {
				t.Errorf("warning %q at %s, want %s", tc.summary, got, tc.at)
			}
			if len(diags) != 1 {
				t.Errorf("want exactly one diagnostic, got:%s", diagText(diags))
			}
		})
	}
}

func TestAllErrorsReported(t *testing.T) {
	src := base + `log {
  level  = "loud"
  format = "xml"
}
limits {
  max_line = 10
}
filter "policy" {
  deny = ["QUIT"]
}
`
	_, _, diags := parseTest(t, src, "")
	var errs []string
	for _, d := range diags {
		if d.Severity == hcl.DiagError {
			errs = append(errs, pos(d))
		}
	}
	want := []string{"test.hcl:8:12", "test.hcl:9:12", "test.hcl:12:14", "test.hcl:15:11"}
	if strings.Join(errs, " ") != strings.Join(want, " ") {
		t.Errorf("errors at %q, want all four in source order: %q%s", errs, want, diagText(diags))
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	cfg, _, diags := Load(t.TempDir() + "/nope.hcl")
	if cfg != nil || !diags.HasErrors() || !strings.Contains(diags.Error(), "no such file") {
		t.Errorf("loading a missing file: cfg %v, diags %v", cfg, diags)
	}
}

// masterBase is an after-auth listener in front of a backend that logs in
// as a master user; text appended to it starts on line 11.
const masterBase = `listener "pop3" {
  address = "127.0.0.1:1110"
  connect = "after-auth"
}
backend "local" {
  address         = "127.0.0.1:110"
  login           = "sasl-plain"
  master_user     = "m"
  master_password = "p"
}
`

// TestMasterLoginNeedsVerifier: a master login acts for any mailbox, so
// every after-auth listener that can reach the backend, as its default or
// through a route, must check passwords itself (an apop filter).
func TestMasterLoginNeedsVerifier(t *testing.T) {
	dir := testFiles(t)
	refused := map[string]string{
		"default backend": masterBase,
		// pop3 checks passwords and uses the master backend; other
		// does not, and reaches it only through the route.
		"routed": `listener "pop3" {
  address = "127.0.0.1:1110"
  connect = "after-auth"
  backend = "local"
  filters = ["apop"]
}
backend "local" {
  address         = "127.0.0.1:110"
  login           = "sasl-plain"
  master_user     = "m"
  master_password = "p"
}
listener "other" {
  address = "127.0.0.1:1111"
  connect = "after-auth"
  backend = "plain"
  filters = []
}
backend "plain" {
  address = "127.0.0.1:111"
}
route {
  user    = "*"
  backend = "local"
}
filter "apop" {
  secrets_file = "{{dir}}/exists"
}
`,
	}
	for name, src := range refused {
		_, _, diags := parseTest(t, src, dir)
		d := findDiag(diags, hcl.DiagError, "Master login without password check")
		if d == nil {
			t.Errorf("%s: not refused:%s", name, diagText(diags))
			continue
		}
		want := "test.hcl:8:21"
		if name == "routed" {
			want = "test.hcl:10:21"
		}
		if got := pos(d); got != want {
			t.Errorf("%s: error at %s, want at master_user (%s)", name, got, want)
		}
		if name == "routed" && !strings.Contains(d.Detail, `listener "other"`) {
			t.Errorf("%s: error names the wrong listener: %s", name, d.Detail)
		}
	}
	accepted := map[string]string{
		"apop filter": masterBase + "filter \"apop\" {\n  secrets_file = \"{{dir}}/exists\"\n}\n",
		"on-accept":   strings.Replace(masterBase, "after-auth", "on-accept", 1),
	}
	for name, src := range accepted {
		cfg, _, diags := parseTest(t, src, dir)
		if cfg == nil || diags.HasErrors() {
			t.Errorf("%s: refused:%s", name, diagText(diags))
		}
	}
}
