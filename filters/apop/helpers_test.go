package apop

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// server is a filtertest.Backend playing the proxy's after-auth
// AUTHORIZATION server: USER names the pending login and PASS checks the
// password against pass.
type server struct {
	sent []string // every command received, unredacted: test secrets only
	pass map[string]string
	// userResp, when set, answers USER instead of +OK.
	userResp *parser.Response
	user     string // the pending USER
}

func (b *server) answer(cmd parser.Command) (parser.Response, string) {
	b.sent = append(b.sent, cmd.String())
	switch cmd.Verb {
	case "USER":
		if b.userResp != nil {
			return *b.userResp, ""
		}
		b.user = cmd.Arg(0)
		return parser.OK("send PASS"), ""
	case "PASS":
		if b.user == "" {
			return parser.Err("", "send USER first"), ""
		}
		if pw, ok := b.pass[b.user]; ok && pw == cmd.Arg(0) {
			return parser.OK("logged in"), ""
		}
		return parser.Err(parser.CodeAuth, "backend says no"), ""
	}
	return parser.OK("passed through"), ""
}

func (b *server) commands() []string { return append([]string{}, b.sent...) }

// run runs ex through a chain of f alone, with srv answering, as the
// session does.
func run(f *Filter, ex *filters.Exchange, srv *server) error {
	return filtertest.Run(context.Background(), filters.NewChain(f), ex, srv.answer)
}

// failingBackend is an Exchange.Backend whose every Call fails.
type failingBackend struct{ err error }

func (b failingBackend) Call(context.Context, parser.Command) (parser.Response, io.Reader, error) {
	return parser.Response{}, nil, b.err
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
	return filtertest.Exchange(s, cmd)
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
