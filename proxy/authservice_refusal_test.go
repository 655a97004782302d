package proxy

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/popgate/popgate/parser"
)

// TestServiceRefusalText: the Auth-Status text of a refusal reaches the
// client without control characters, with its RFC 3206 code kept, and
// bounded without cutting a character in half.
func TestServiceRefusalText(t *testing.T) {
	long := strings.Repeat("a", 199) + "é" + strings.Repeat("b", 50)
	for _, tc := range []struct {
		status, code, text string
	}{
		{"Invalid login or password", parser.CodeAuth, "Invalid login or password"},
		{"[IN-USE] mailbox busy", parser.CodeInUse, "mailbox busy"},
		{"bad\x00 \x7fpass\x1bword", parser.CodeAuth, "bad password"},
		{"[SYS/TEMP]", parser.CodeSysTemp, "authentication failed"},
		{long, parser.CodeAuth, strings.Repeat("a", 199)},
	} {
		r := serviceRefusal(tc.status)
		if r.Code != tc.code || r.Text != tc.text || !utf8.ValidString(r.Text) {
			t.Errorf("serviceRefusal(%q) = [%s] %q; want [%s] %q", tc.status, r.Code, r.Text, tc.code, tc.text)
		}
	}
}
