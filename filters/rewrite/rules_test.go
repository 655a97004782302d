package rewrite

import (
	"errors"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	m := loginMap{
		"alice@example.org": "a.smith",
		"bob":               "Bob@Legacy.Example.org",
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		useM  bool
		in    string
		want  string
		wantE bool
	}{
		{"no rules", Config{}, false, "Alice@Example.org", "Alice@Example.org", false},
		{"lowercase", Config{Lowercase: true}, false, "Alice@Example.ORG", "alice@example.org", false},
		{"lowercase non-ASCII", Config{Lowercase: true}, false, "ÅSA", "åsa", false},
		{"strip domain", Config{StripDomain: true}, false, "alice@example.org", "alice", false},
		{"strip domain without one", Config{StripDomain: true}, false, "alice", "alice", false},
		{"strip from last @", Config{StripDomain: true}, false, "a@b@example.org", "a@b", false},
		{"add domain", Config{AddDomain: "example.org"}, false, "alice", "alice@example.org", false},
		{"add domain keeps existing", Config{AddDomain: "example.org"}, false, "alice@other.net", "alice@other.net", false},
		{"replace domain", Config{StripDomain: true, AddDomain: "example.org"}, false, "alice@other.net", "alice@example.org", false},
		{"lowercase and strip", Config{Lowercase: true, StripDomain: true}, false, "ALICE@X", "alice", false},
		{"lowercase does not touch add_domain", Config{Lowercase: true, AddDomain: "Example.ORG"}, false, "ALICE", "alice@Example.ORG", false},
		{"all rules", Config{Lowercase: true, StripDomain: true, AddDomain: "example.org"}, false, "Alice@Old.Example", "alice@example.org", false},
		{"map wins", Config{Lowercase: true, StripDomain: true, AddDomain: "x.org"}, true, "alice@example.org", "a.smith", false},
		{"map case-insensitive", Config{}, true, "ALICE@Example.Org", "a.smith", false},
		{"map verbatim", Config{Lowercase: true, StripDomain: true}, true, "bob", "Bob@Legacy.Example.org", false},
		{"map miss falls to rules", Config{Lowercase: true, StripDomain: true}, true, "Carol@example.org", "carol", false},
		{"map miss without rules", Config{}, true, "Carol", "Carol", false},
		{"strip to empty", Config{StripDomain: true}, false, "@example.org", "", true},
		{"strip to empty then add", Config{StripDomain: true, AddDomain: "example.org"}, false, "@old.org", "", true},
		{"empty", Config{}, false, "", "", true},
		{"space", Config{}, false, "ali ce", "", true},
		{"tab", Config{}, false, "ali\tce", "", true},
		{"control", Config{}, false, "ali\x01ce", "", true},
		{"DEL", Config{}, false, "ali\x7fce", "", true},
		{"unicode space", Config{}, false, "ali\u00a0ce", "", true},
		{"not UTF-8", Config{}, false, "ali\xffce", "", true},
		{"too long", Config{}, false, strings.Repeat("a", MaxLoginLength+1), "", true},
		{"longest", Config{}, false, strings.Repeat("a", MaxLoginLength), strings.Repeat("a", MaxLoginLength), false},
		{"too long after add", Config{AddDomain: "example.org"}, false, strings.Repeat("a", MaxLoginLength-5), "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(tc.cfg, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.useM {
				mm := m
				f.m.Store(&mm)
			}
			got, err := f.Rewrite(tc.in)
			if tc.wantE {
				if err == nil || !errors.Is(err, ErrBadLogin) {
					t.Fatalf("Rewrite(%q) = %q, %v; want an ErrBadLogin", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Rewrite(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestNewRefusesBadAddDomain(t *testing.T) {
	for _, d := range []string{"@example.org", "a@b", "exa mple.org", "x\x00y"} {
		if _, err := New(Config{AddDomain: d}, nil); err == nil {
			t.Errorf("add_domain %q accepted", d)
		}
	}
}
