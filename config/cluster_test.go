package config

import (
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/cluster"
)

func TestClusterBlock(t *testing.T) {
	dir := testFiles(t)
	cfg, _, diags := parseTest(t, base+`
cluster {
  redis         = "unix:///run/redis/redis-server.sock"
  password_file = "{{dir}}/exists"
  instance      = "pg1"
}
limits {
  max_sessions_per_user = 10
}
tls {
  acme {
    domains = ["mail.example.org"]
    email   = "ops@example.org"
  }
}
`, dir)
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	want := cluster.Options{Redis: "unix:///run/redis/redis-server.sock", PasswordFile: dir + "/exists",
		Instance: "pg1", Timeout: cluster.DefaultTimeout}
	if cfg.Cluster == nil || *cfg.Cluster != want {
		t.Fatalf("cluster = %+v, want %+v", cfg.Cluster, want)
	}
	if cfg.Limits.MaxSessionsPerUser != 10 || cfg.Listeners[0].Limits.MaxSessionsPerUser != 10 {
		t.Fatalf("max_sessions_per_user: top %d, listener %d; want 10 both", cfg.Limits.MaxSessionsPerUser, cfg.Listeners[0].Limits.MaxSessionsPerUser)
	}
	if cfg.TLS.ACME.Storage != "" {
		t.Fatalf("ACME storage with a cluster = %q, want \"\" (Redis)", cfg.TLS.ACME.Storage)
	}
}

func TestClusterDefaultsAndExplicitStorage(t *testing.T) {
	cfg, _, diags := parseTest(t, base+`
cluster {
  redis = "redis://127.0.0.1:6379/2"
}
tls {
  acme {
    domains = ["mail.example.org"]
    email   = "ops@example.org"
    storage = "/var/lib/popgate/acme"
  }
}
`, t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	host, _ := os.Hostname()
	if cfg.Cluster.Instance == "" || host != "" && cfg.Cluster.Instance != host {
		t.Fatalf("instance = %q, want the hostname %q", cfg.Cluster.Instance, host)
	}
	if cfg.TLS.ACME.Storage != "/var/lib/popgate/acme" {
		t.Fatalf("explicit ACME storage = %q", cfg.TLS.ACME.Storage)
	}
	if cfg.Limits.MaxSessionsPerUser != 0 {
		t.Fatalf("max_sessions_per_user defaults to %d, want 0 (unlimited)", cfg.Limits.MaxSessionsPerUser)
	}
	noCluster, _, _ := parseTest(t, base, t.TempDir())
	if noCluster.Cluster != nil {
		t.Fatal("a file without a cluster block has a cluster")
	}
}

func TestClusterErrors(t *testing.T) {
	for _, tc := range []struct{ name, src, summary, pos string }{
		{"password in URL", `cluster {
  redis = "redis://user:s3cret@127.0.0.1:6379/0"
}`, "Invalid redis", "test.hcl:8:9"},
		{"password in a URL that does not parse", `cluster {
  redis = "redis://user:s3cret@127.0.0.1:port/0"
}`, "Invalid redis", "test.hcl:8:9"},
		{"scheme", `cluster {
  redis = "http://127.0.0.1:6379"
}`, "Invalid redis", "test.hcl:9:11"},
		{"unix without path", `cluster {
  redis = "unix://"
}`, "Invalid redis", "test.hcl:9:11"},
		{"missing password file", `cluster {
  redis = "redis://127.0.0.1:6379"
  password_file = "/nonexistent/redis.pass"
}`, "", "test.hcl:10:19"},
		{"empty instance", `cluster {
  redis = "redis://127.0.0.1:6379"
  instance = ""
}`, "Invalid instance", "test.hcl:10:14"},
		{"timeout too long", `cluster {
  redis = "redis://127.0.0.1:6379"
  timeout = "1m"
}`, "Invalid timeout", "test.hcl:10:13"},
		{"listener max_sessions_per_user", `listener "b" {
  address = "127.0.0.1:1111"
  limits {
    max_sessions_per_user = 3
  }
}`, "Top-level limit", "test.hcl:11:29"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, files, diags := parseTest(t, base+"\n"+tc.src+"\n", t.TempDir())
			if !diags.HasErrors() {
				t.Fatal("accepted")
			}
			var d *hcl.Diagnostic
			if tc.summary != "" {
				d = findDiag(diags, hcl.DiagError, tc.summary)
			} else {
				d = diags.Errs()[0].(*hcl.Diagnostic)
			}
			if d == nil {
				t.Fatalf("no %q error in %s", tc.summary, diagText(diags))
			}
			if got := pos(d); got != tc.pos {
				t.Fatalf("error at %s, want %s: %s", got, tc.pos, diagText(diags))
			}
			var printed strings.Builder
			WriteDiagnostics(&printed, files, diags) // with source snippets, as validate and a refused reload print them
			if strings.Contains(printed.String(), "s3cret") {
				t.Fatalf("the diagnostic shows the password:\n%s", printed.String())
			}
		})
	}
}
