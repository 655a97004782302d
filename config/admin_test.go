package config

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

// The admin block: each mistake is reported where it was written.
func TestAdminValidation(t *testing.T) {
	long := "/" + strings.Repeat("d", 100) + "/admin.sock"
	for _, tc := range []validationCase{
		{name: "socket empty", src: "admin {\n  socket = \"\"\n}\n", summary: "Invalid socket", at: "test.hcl:8:12"},
		{name: "socket too long", src: "admin {\n  socket = \"" + long + "\"\n}\n", summary: "Admin socket path too long", at: "test.hcl:8:12"},
		{name: "default socket too long", src: "state_dir = \"/" + strings.Repeat("s", 100) + "\"\n",
			summary: "Admin socket path too long", at: "test.hcl:7:13"},
		{name: "address without token", src: "admin {\n  address = \"127.0.0.1:9111\"\n}\n", summary: "Admin address without token", at: "test.hcl:8:13"},
		{name: "address invalid", src: "admin {\n  address = \"nowhere\"\n  token = \"0123456789abcdef\"\n}\n", summary: "Invalid address", at: "test.hcl:8:13"},
		{name: "address shared with listener", src: "admin {\n  address = \"127.0.0.1:1110\"\n  token = \"0123456789abcdef\"\n}\n", summary: "Duplicate address", at: "test.hcl:8:13"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _, diags := parseTest(t, base+tc.src, "")
			if cfg != nil {
				t.Errorf("got a Config despite the error")
			}
			d := findDiag(diags, hcl.DiagError, tc.summary)
			if d == nil {
				t.Fatalf("no error %q in:%s", tc.summary, diagText(diags))
			}
			if got := pos(d); got != tc.at {
				t.Errorf("%q reported at %s, want %s", tc.summary, got, tc.at)
			}
		})
	}
}

// Without an admin block the socket is admin.sock in $RUNTIME_DIRECTORY
// when systemd sets it, else in state_dir; a short token is a warning.
func TestAdminDefaults(t *testing.T) {
	t.Setenv("RUNTIME_DIRECTORY", "")
	cfg, _, diags := parseTest(t, base+"state_dir = \"/var/lib/popgate\"\n", "")
	if diags.HasErrors() || cfg.Admin.Socket != "/var/lib/popgate/admin.sock" || cfg.Admin.SocketSet {
		t.Fatalf("admin = %+v, diags:%s", cfg.Admin, diagText(diags))
	}
	t.Setenv("RUNTIME_DIRECTORY", "/run/popgate:/run/other")
	cfg, _, _ = parseTest(t, base, "")
	if cfg.Admin.Socket != "/run/popgate/admin.sock" {
		t.Fatalf("socket with RUNTIME_DIRECTORY = %q", cfg.Admin.Socket)
	}
	cfg, _, diags = parseTest(t, base+"admin {\n  socket = \"rel/a.sock\"\n  address = \"127.0.0.1:0\"\n  token = \"short\"\n}\n", "")
	if cfg == nil || cfg.Admin.Socket != absPath("rel/a.sock") || !cfg.Admin.SocketSet || cfg.Admin.Token != "short" {
		t.Fatalf("admin = %+v, diags:%s", cfg.Admin, diagText(diags))
	}
	if findDiag(diags, hcl.DiagWarning, "Short admin token") == nil {
		t.Errorf("no warning for a short token:%s", diagText(diags))
	}
}
