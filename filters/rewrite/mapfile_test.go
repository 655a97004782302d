package rewrite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeMap(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "logins.map")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestParseMap(t *testing.T) {
	content := "# comment\n" +
		"   # indented comment\n" +
		"\n" +
		"  \t \r\n" +
		"alice@example.org a.smith\n" +
		"Bob\t\tBob@Legacy.Example.org\r\n" +
		"  carol   c.jones  \n" +
		"dave d#1\n" +
		"last lastuser"
	m, err := parseMap(strings.NewReader(content), "f")
	if err != nil {
		t.Fatal(err)
	}
	want := loginMap{
		"alice@example.org": "a.smith",
		"bob":               "Bob@Legacy.Example.org",
		"carol":             "c.jones",
		"dave":              "d#1",
		"last":              "lastuser",
	}
	if len(m) != len(want) {
		t.Errorf("got %d entries %v, want %d", len(m), m, len(want))
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%q maps to %q, want %q", k, m[k], v)
		}
	}
}

func TestParseMapErrors(t *testing.T) {
	for _, tc := range []struct{ name, content, want string }{
		{"one field", "ok fine\nalice\n", "f:2: want two fields"},
		{"three fields", "alice a b\n", "f:1: want two fields"},
		{"colon format", "alice: a.smith\n", "f:1: login \"alice:\" ends with ':'"},
		{"duplicate", "Alice a\n# x\nalice b\n", "f:3: login \"alice\" already mapped on line 1"},
		{"control in backend", "alice a\x01b\n", "f:1: backend login"},
		{"control in login", "al\x00ice ab\n", "f:1: login"},
		{"bare CR", "alice a\rb\n", "f:1: backend login"},
		{"long backend login", "alice " + strings.Repeat("b", MaxLoginLength+1) + "\n", "f:1: backend login"},
		{"long line", "ok fine\n" + strings.Repeat("x", maxMapLine) + " y\n", "f:2: line longer than 1024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseMap(strings.NewReader(tc.content), "f")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestMapFileLoadAndReload(t *testing.T) {
	p := writeMap(t, "alice first\n")
	f, err := New(Config{MapFile: p, StripDomain: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rewrite := func(in string) string {
		t.Helper()
		out, err := f.Rewrite(in)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	if got := rewrite("Alice"); got != "first" {
		t.Fatalf("Alice -> %q, want first", got)
	}

	// A broken file is refused and the old map stays.
	if err := os.WriteFile(p, []byte("alice second\nbroken\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = f.Reload()
	if err == nil || !strings.Contains(err.Error(), p+":2:") {
		t.Fatalf("Reload of a broken file: %v, want an error naming %s:2", err, p)
	}
	if got := rewrite("alice"); got != "first" {
		t.Fatalf("after a refused reload alice -> %q, want first", got)
	}

	// A missing file too.
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil {
		t.Fatal("Reload of a missing file succeeded")
	}
	if got := rewrite("alice"); got != "first" {
		t.Fatalf("after a refused reload alice -> %q, want first", got)
	}

	// A good file replaces the map whole.
	if err := os.WriteFile(p, []byte("bob third\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := rewrite("bob@x.org"); got != "bob" { // rules, not the map: the key is "bob"
		t.Fatalf("bob@x.org -> %q, want bob", got)
	}
	if got := rewrite("BOB"); got != "third" {
		t.Fatalf("BOB -> %q, want third", got)
	}
	if got := rewrite("alice@x.org"); got != "alice" {
		t.Fatalf("alice@x.org -> %q, want alice (old entry gone)", got)
	}
}

func TestNewRefusesBadMapFile(t *testing.T) {
	if _, err := New(Config{MapFile: "/nonexistent/popgate/map"}, nil); err == nil {
		t.Error("missing map file accepted")
	}
	p := writeMap(t, "alice\n")
	if _, err := New(Config{MapFile: p}, nil); err == nil || !strings.Contains(err.Error(), p+":1:") {
		t.Errorf("got %v, want an error naming %s:1", err, p)
	}
}

func TestReloadWithoutMapFile(t *testing.T) {
	f, err := New(Config{Lowercase: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil {
		t.Errorf("Reload without a map file: %v", err)
	}
}
