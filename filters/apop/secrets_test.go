package apop

import (
	"os"
	"strings"
	"testing"
)

func TestSecretsFileMode(t *testing.T) {
	for _, tc := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true},
		{0o400, true},
		{0o700, true},
		{0o644, false},
		{0o640, false},
		{0o604, false},
		{0o620, false},
		{0o602, false},
		{0o610, false},
	} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			p := writeFile(t, testSecrets, tc.mode)
			_, err := New(Config{SecretsFile: p}, nil)
			if tc.ok {
				if err != nil {
					t.Fatalf("mode %04o refused: %v", tc.mode, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("mode %04o accepted", tc.mode)
			}
			msg := err.Error()
			for _, want := range []string{p, "chmod 600", modeOctal(tc.mode)} {
				if !strings.Contains(msg, want) {
					t.Errorf("error %q does not mention %q", msg, want)
				}
			}
		})
	}
}

func modeOctal(m os.FileMode) string {
	const digits = "01234567"
	p := uint32(m.Perm())
	return string([]byte{'0', digits[p>>6&7], digits[p>>3&7], digits[p&7]})
}

func TestSecretsFileMissingOrNotRegular(t *testing.T) {
	if _, err := New(Config{SecretsFile: ""}, nil); err == nil {
		t.Error("empty path accepted")
	}
	if _, err := New(Config{SecretsFile: "/nonexistent/popgate/secrets"}, nil); err == nil {
		t.Error("missing file accepted")
	}
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{SecretsFile: dir}, nil); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: got %v", err)
	}
}

func TestParseSecrets(t *testing.T) {
	content := "# comment: not a user\n" +
		"\n" +
		"\r\n" +
		"plain:pw\n" +
		"colons:a:b::c:\n" +
		"spaces:  two leading and trailing  \n" +
		"crlf:windows\r\n" +
		"hash:#not-a-comment\n" +
		"utf8:pässwörd\n" +
		"last:no newline"
	s, err := parseSecrets(strings.NewReader(content), "f")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"plain":  "pw",
		"colons": "a:b::c:",
		"spaces": "  two leading and trailing  ",
		"crlf":   "windows",
		"hash":   "#not-a-comment",
		"utf8":   "pässwörd",
		"last":   "no newline",
	}
	if len(s) != len(want) {
		t.Errorf("got %d users, want %d", len(s), len(want))
	}
	for u, pw := range want {
		if got, ok := s[u]; !ok || got != pw {
			t.Errorf("user %q: got %q (%v), want %q", u, got, ok, pw)
		}
	}
}

func TestParseSecretsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, content, want string
	}{
		{"no colon", "ok:pw\nsecretwithoutcolon\n", "f:2: no ':'"},
		{"empty user", ":secretpw\n", "f:1: empty user name"},
		{"empty password", "bob:\n", "f:1: empty password"},
		{"space in user", "bo b:secretpw\n", "f:1: user name contains white space"},
		{"indented", " bob:secretpw\n", "f:1: user name contains white space"},
		{"tab in password", "bob:secret\tpw\n", "f:1: password contains a control character"},
		{"NUL in password", "bob:secret\x00pw\n", "f:1: password contains a control character"},
		{"bare CR in password", "bob:secret\rpw\n", "f:1: password contains a control character"},
		{"control in user", "b\x01ob:secretpw\n", "f:1: user name contains a control character"},
		{"duplicate", "bob:secretpw\n#\nbob:secretpw2\n", "f:3: user \"bob\" already defined on line 1"},
		{"long line", "ok:pw\nbob:" + strings.Repeat("x", maxSecretsLine) + "\n", "f:2: line longer than"},
		{"long user", strings.Repeat("u", maxUserLength+1) + ":secretpw\n", "f:1: user name longer than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseSecrets(strings.NewReader(tc.content), "f")
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q reveals a password", err)
			}
		})
	}
}

func TestSecretsFileTooLarge(t *testing.T) {
	r := &cappedReader{r: strings.NewReader(strings.Repeat("a:b\n", 10)), left: 12}
	if _, err := parseSecrets(r, "f"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("got %v, want a size error", err)
	}
}

func TestReloadKeepsOldSecretsOnError(t *testing.T) {
	p := writeFile(t, "mrose:tanstaaf\n", 0o600)
	f, err := New(Config{SecretsFile: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	has := func(user, pw string) bool {
		got, ok := (*f.secrets.Load())[user]
		return ok && got == pw
	}

	// A readable-by-all file is refused and the old secrets stay.
	if err := os.WriteFile(p, []byte("bob:newpw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("Reload of a 0644 file: %v", err)
	}
	if !has("mrose", "tanstaaf") || has("bob", "newpw") {
		t.Fatal("secrets changed by a refused reload")
	}

	// A malformed file is refused too.
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("bob:newpw\nbroken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err == nil {
		t.Fatal("Reload of a malformed file succeeded")
	}
	if !has("mrose", "tanstaaf") {
		t.Fatal("secrets changed by a refused reload")
	}

	// A good file replaces the secrets whole.
	if err := os.WriteFile(p, []byte("bob:newpw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(); err != nil {
		t.Fatal(err)
	}
	if !has("bob", "newpw") || has("mrose", "tanstaaf") {
		t.Fatal("Reload did not replace the secrets")
	}
}
