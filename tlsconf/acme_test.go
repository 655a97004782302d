package tlsconf

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

func TestNewRejectsBadACMESettings(t *testing.T) {
	dir := t.TempDir()
	valid := func() *ACME {
		return &ACME{Domains: []string{"pop.test"}, Email: "postmaster@pop.test", Storage: dir,
			Directory: "https://127.0.0.1:1/dir", CAFile: filepath.Join(dir, "missing.pem")}
	}
	tests := []struct {
		name, want string
		mutate     func(a *ACME, o *Options)
	}{
		{"no domains", "at least one domain", func(a *ACME, _ *Options) { a.Domains = nil }},
		{"no email", "email", func(a *ACME, _ *Options) { a.Email = "" }},
		{"bad domain", "cannot be used", func(a *ACME, _ *Options) { a.Domains = []string{"pop test"} }},
		{"HTTP port out of range", "out of range", func(a *ACME, _ *Options) { a.HTTPPort = 65536 }},
		{"TLS-ALPN port negative", "out of range", func(a *ACME, _ *Options) { a.TLSALPNPort = -1 }},
		{"no storage and no state dir", "storage", func(a *ACME, o *Options) { a.Storage = ""; o.StateDir = "" }},
		{"unreadable CA file", "reading CA file", func(*ACME, *Options) {}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := valid()
			opts := Options{ACME: a}
			tc.mutate(a, &opts)
			m, err := New(context.Background(), opts)
			if err == nil {
				m.Close()
				t.Fatal("New accepted the settings")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestACMEManages(t *testing.T) {
	m := &acmeManager{
		exact:    map[string]bool{"pop.test": true},
		wildcard: map[string]bool{"mail.test": true},
	}
	for name, want := range map[string]bool{
		"pop.test": true, "x.pop.test": false, "imap.mail.test": true,
		"mail.test": false, "a.b.mail.test": false, "": false,
	} {
		if got := m.manages(name); got != want {
			t.Errorf("manages(%q) = %v, want %v", name, got, want)
		}
	}
}
