package apop

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// server is a fake innermost handler playing the proxy's after-auth
// AUTHORIZATION server: USER records the login as the proxy does (from the
// client's command) and PASS checks the password against pass.
type server struct {
	mu   sync.Mutex
	sent []string // Out of every call, unredacted: test secrets only
	pass map[string]string
	// userResp, when set, answers USER instead of +OK.
	userResp *parser.Response
	err      error
}

func (b *server) Serve(_ context.Context, ex *filters.Exchange) error {
	b.mu.Lock()
	b.sent = append(b.sent, ex.Out.String())
	b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	l := &ex.Session.Login
	switch ex.Out.Verb {
	case "USER":
		if b.userResp != nil {
			ex.Response = *b.userResp
			return nil
		}
		*l = filters.Login{User: ex.Command.Arg(0), BackendUser: ex.Out.Arg(0), Mechanism: "user"}
		ex.Response = parser.OK("send PASS")
	case "PASS":
		if l.User == "" {
			ex.Response = parser.Err("", "send USER first")
			return nil
		}
		if pw, ok := b.pass[l.BackendUser]; ok && pw == ex.Out.Arg(0) {
			ex.Session.SetState(filters.Transaction)
			ex.Response = parser.OK("logged in")
			return nil
		}
		ex.Response = parser.Err(parser.CodeAuth, "backend says no")
	default:
		ex.Response = parser.OK("passed through")
	}
	return nil
}

func (b *server) commands() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string{}, b.sent...)
}

// testSecrets is the secrets file content used by most tests.
const testSecrets = "# test users\n" +
	"mrose:tanstaaf\n" +
	"tim:tanstaaftanstaaf\n" +
	"alice:s3cret: with colon and space \r\n" +
	"\n"

// writeFile writes content to a new file with the given mode and returns
// its path.
func writeFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secrets")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// newFilter returns a filter over testSecrets with host "test.example".
func newFilter(t *testing.T) *Filter {
	t.Helper()
	f, err := New(Config{SecretsFile: writeFile(t, testSecrets, 0o600), Host: "test.example"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// newSession returns an after-auth session in AUTHORIZATION whose greeting
// carried timestamp.
func newSession(afterAuth bool, timestamp string) *filters.Session {
	return &filters.Session{ID: "t1", AfterAuth: afterAuth, Timestamp: timestamp}
}

// exchange returns an exchange for the command line.
func exchange(t *testing.T, s *filters.Session, line string) *filters.Exchange {
	t.Helper()
	cmd, err := parser.ParseCommand([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return &filters.Exchange{
		Session: s,
		Command: cmd,
		Out:     parser.Command{Verb: cmd.Verb, Args: append([]string(nil), cmd.Args...)},
	}
}

// backendPasswords are the passwords the fake server accepts: the same
// secrets as the file, as a USER/PASS backend would hold them.
func backendPasswords() map[string]string {
	return map[string]string{
		"mrose": "tanstaaf",
		"tim":   "tanstaaftanstaaf",
		"alice": "s3cret: with colon and space ",
	}
}
