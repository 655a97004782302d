package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
)

// FuzzSession drives one whole session with arbitrary client bytes against
// a scripted backend and checks what reaches the backend:
//
//   - every line the backend reads ends in CRLF and holds no other CR, LF
//     or NUL;
//   - the commands the backend reads are, in order, a subsequence of the
//     commands parser.ReadCommand yields from the client's CRLF-terminated
//     lines, each re-serialised (Command.String); a SASL response line the
//     backend reads after its own "+ " is one of the client's lines, or the
//     "*" popgate sends to cancel;
//   - in after-auth mode each backend connection opens with the login the
//     proxy is documented to generate (USER+PASS, APOP or AUTH PLAIN, as
//     the backend is configured), for credentials a client PASS or AUTH
//     gave, and only once that PASS or AUTH has been read; a master-user
//     login only for credentials the listener's verifier accepts;
//   - QUIT reaches the backend only for a client QUIT, and nothing reaches
//     it afterwards;
//   - nothing reaches the backend once the client was told to begin TLS
//     (plaintext pipelined after STLS is never executed);
//   - the session ends within fuzzStall once the client's bytes run out,
//     before any of its timeouts: nothing waits for what will never come
//     (POPGATE_FUZZ_ALLOW_STALL=1 turns this check off, to fuzz past a
//     known stall).
//
// The first argument picks the configuration (fuzzMode); the second is
// what the client sends before half-closing its side.
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSessionSeeds() {
		for _, m := range []fuzzMode{0, fuzzAfterAuth, fuzzFilter, fuzzAfterAuth | fuzzFilter} {
			f.Add(byte(m), []byte(s))
		}
	}
	stls := "CAPA\r\nSTLS\r\nUSER evil\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n"
	f.Add(byte(fuzzSTLS), []byte(stls))
	f.Add(byte(fuzzSTLS|fuzzAfterAuth|fuzzFilter), []byte(stls))
	login := "USER alice\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n"
	plain := "AUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nDELE 1\r\nQUIT\r\n"
	for _, m := range []fuzzMode{fuzzLoginAPOP, fuzzLoginPlain, fuzzMaster, fuzzMaster | fuzzManyErrors} {
		f.Add(byte(fuzzAfterAuth|m), []byte(login))
		f.Add(byte(fuzzAfterAuth|m), []byte(plain))
		f.Add(byte(fuzzAfterAuth|m), []byte("USER alice\r\nPASS wrong\r\nAUTH PLAIN Ym9iAGJvYgB4\r\nSTAT\r\nQUIT\r\n"))
	}
	f.Fuzz(func(t *testing.T, mode byte, client []byte) {
		runFuzzSession(t, fuzzMode(mode), client)
	})
}

// fuzzMode is FuzzSession's configuration byte.
type fuzzMode byte

const (
	fuzzAfterAuth  fuzzMode = 1 << iota // ConnectAfterAuth, else ConnectOnAccept
	fuzzFilter                          // a pass-through filter in the chain (the general pipeline, not the relay)
	fuzzSTLS                            // the listener offers STLS
	fuzzLoginAPOP                       // after-auth backend login by APOP
	fuzzLoginPlain                      // after-auth backend login by AUTH PLAIN
	fuzzMaster                          // after-auth: AUTH PLAIN as a master user, with a local verifier
	fuzzManyErrors                      // max_errors and max_auth_tries 100 instead of the defaults
	fuzzExclusive                       // the filter makes RETR and TOP exclusive
)

func (m fuzzMode) String() string {
	var parts []string
	for _, b := range []struct {
		m    fuzzMode
		name string
	}{{fuzzAfterAuth, "after-auth"}, {fuzzFilter, "filter"}, {fuzzSTLS, "stls"}, {fuzzLoginAPOP, "login-apop"},
		{fuzzLoginPlain, "login-plain"}, {fuzzMaster, "master"}, {fuzzManyErrors, "many-errors"}, {fuzzExclusive, "exclusive"}} {
		if m&b.m != 0 {
			parts = append(parts, b.name)
		}
	}
	if len(parts) == 0 {
		return "on-accept"
	}
	return strings.Join(parts, ",")
}

// The master-user login of fuzzMaster, and the one password its verifier
// accepts (for any user).
const (
	fuzzMasterUser     = "popgate-master"
	fuzzMasterPassword = "master-secret"
	fuzzVerifiedPass   = "secret"
)

func fuzzSessionSeeds() []string {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	return []string{
		"USER alice\r\nPASS secret\r\nSTAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nQUIT\r\n",
		"USER a\r\nPASS secret\r\nRETR 1\r\nRETR 2\r\nDELE 1\r\nDELE 2\r\nTOP 3 5\r\nLIST 2\r\nRSET\r\nQUIT\r\n",
		"AUTH PLAIN " + b64("\x00alice\x00secret") + "\r\nSTAT\r\nQUIT\r\n",
		"AUTH PLAIN\r\n" + b64("\x00alice\x00secret") + "\r\nRETR 1\r\nQUIT\r\n",
		"AUTH PLAIN " + b64("bob\x00alice\x00secret") + "\r\nRETR 1\r\nQUIT\r\n",
		"AUTH LOGIN\r\n" + b64("alice") + "\r\n" + b64("secret") + "\r\nNOOP\r\nQUIT\r\n",
		"AUTH LOGIN " + b64("alice") + "\r\n" + b64("secret") + "\r\nDELE 1\r\nQUIT\r\n",
		"AUTH PLAIN\r\n*\r\nAUTH PLAIN\r\nnot base64!\r\nAUTH\r\nUSER a\r\nPASS secret\r\nQUIT\r\n",
		"CAPA\r\nSTLS\r\nUSER evil\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n",
		"USER a\r\nPASS secret\r\nNOOP\nDELE 1\r\nNOOP\rDELE 1\r\nNOOP\x00DELE 1\r\nSTAT\r\nQUIT\r\n",
		"USER a\r\nPASS secret\r\nDELE 1\r\nQUIT\r",
		"USER a\r\nPASS secret\r\nDELE 1\r\nQUIT",
		"USER a\r\nPASS secret\r\nDELE 1\r\nDELE 2\r\n",
		"USER a\r\nPASS secret\r\nDELE 1\r\nQUIT\r\nDELE 2\r\nNOOP\r\n",
		"USER " + strings.Repeat("A", 300) + "\r\nUSER a\r\nPASS pass word \r\nRETR 99999999999\r\nTOP 1 -1\r\n" +
			"AUTH PLAIN\r\n" + strings.Repeat("QUFB", 300) + "\r\nQUIT\r\n",
		"USER a\r\nPASS bad\r\nUSER a\r\nPASS secret\r\nRETR 3\r\nQUIT\r\n",
		"RETR 1\r\nDELE 1\r\nQUIT \r\nquit\r\n",
		"APOP alice c4c9334bac560ecc979e58001b3e22fb\r\nSTAT\r\nQUIT\r\n",
		"USER a\r\nPASS secret\r\n" + strings.Repeat("NOOP\r\n", 150) + "RETR 2\r\nBOGUS\r\nRETR 1\r\nQUIT\r\n",
		"user a\r\npass secret\r\nretr 1\r\ndele 1\r\nquit\r\n",
		"\r\n\r\n \r\nUSER\r\nPASS\r\nAUTH A B C\r\n\xff\xfe\r\nUSER a\r\nPASS secret\r\nSTLS\r\nQUIT\r\n",
	}
}

// fuzzTap is a filter with both sides that passes every exchange on
// unchanged, so bodies are decoded and re-encoded.
type fuzzTap struct{ exclusive bool }

func (f *fuzzTap) Name() string { return "fuzz-tap" }

// Command passes the command on.
func (f *fuzzTap) Command(ctx context.Context, ex *filters.Exchange) error { return nil }

// Response passes the answer on.
func (f *fuzzTap) Response(ctx context.Context, ex *filters.Exchange) error { return nil }

// Exclusive makes RETR and TOP exclusive exchanges when asked to.
func (f *fuzzTap) Exclusive(ex *filters.Exchange) bool {
	return f.exclusive && (ex.Command.Verb == "RETR" || ex.Command.Verb == "TOP")
}

// fuzzVerifier is fuzzTap with a local password check, for master logins.
type fuzzVerifier struct{ fuzzTap }

// VerifyPassword accepts fuzzVerifiedPass for any user.
func (f *fuzzVerifier) VerifyPassword(user, password string) bool {
	return user != "" && password == fuzzVerifiedPass
}

var (
	fuzzTLSOnce sync.Once
	fuzzTLS     *tls.Config
)

// fuzzStall is how long a session may take to end once the client's bytes
// ran out; every timeout of the session is longer.
const fuzzStall = 2 * time.Second

// fuzzAllowStall turns the stall check off (POPGATE_FUZZ_ALLOW_STALL=1), to
// fuzz past a known stall.
var fuzzAllowStall = os.Getenv("POPGATE_FUZZ_ALLOW_STALL") != ""

// runFuzzSession runs one input and returns what the backend read.
func runFuzzSession(t *testing.T, mode fuzzMode, client []byte) []fuzzLine {
	if mode&fuzzMaster != 0 {
		mode |= fuzzAfterAuth // a master login only exists in after-auth mode
	}
	// The fuzzing engine has no per-input timeout: a session that never
	// ends would stall it silently. Crash with every goroutine's stack
	// instead, so the engine records the input.
	watchdog := time.AfterFunc(30*time.Second, func() {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		panic(fmt.Sprintf("FuzzSession: input still running after 30s (mode %v, client %q)\n%s", mode, client, buf))
	})
	defer watchdog.Stop()
	fb := newFuzzBackend(t)
	lst := Listener{
		Name:    "fuzz",
		Address: "127.0.0.1:0",
		Backend: "b",
		Limits: Limits{
			PreLoginTimeout:  3 * time.Second,
			IdleTimeout:      3 * time.Second,
			WriteTimeout:     3 * time.Second,
			BackendTimeout:   3 * time.Second,
			HandshakeTimeout: time.Second,
		},
	}
	if fuzzAllowStall {
		// A stall waits for the backend read timeout: keep it short, so
		// that fuzzing past a known stall stays quick.
		lst.Limits.BackendTimeout = 300 * time.Millisecond
	}
	if mode&fuzzManyErrors != 0 {
		lst.Limits.MaxErrors, lst.Limits.MaxAuthTries = 100, 100
	}
	be := &Backend{Name: "b", Address: fb.ln.Addr().String(), ConnectTimeout: 2 * time.Second}
	if mode&fuzzAfterAuth != 0 {
		lst.Connect = ConnectAfterAuth
		switch {
		case mode&fuzzMaster != 0:
			be.Login, be.MasterUser, be.MasterPassword = LoginSASLPlain, fuzzMasterUser, fuzzMasterPassword
		case mode&fuzzLoginPlain != 0:
			be.Login = LoginSASLPlain
		case mode&fuzzLoginAPOP != 0:
			be.Login = LoginAPOP
		}
	}
	switch {
	case mode&fuzzMaster != 0:
		lst.Filters = []filters.Filter{&fuzzVerifier{fuzzTap{exclusive: mode&fuzzExclusive != 0}}}
	case mode&fuzzFilter != 0:
		lst.Filters = []filters.Filter{&fuzzTap{exclusive: mode&fuzzExclusive != 0}}
	}
	cfg := &Config{Listeners: []Listener{lst}, Backends: map[string]*Backend{"b": be}, HandshakeTimeout: time.Second}
	if mode&fuzzSTLS != 0 {
		fuzzTLSOnce.Do(func() { fuzzTLS = reviewTLSConfig(t) })
		cfg.Listeners[0].TLS = TLSStartTLS
		cfg.ServerTLS = fuzzTLS
	}
	srv := New(hclog.NewNullLogger())
	if err := srv.Start(cfg); err != nil {
		t.Fatal(err)
	}
	fuzzNoThrottle(srv)
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	}()

	conn, err := net.Dial("tcp", srv.Addr("fuzz").String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	conn.SetDeadline(start.Add(8 * time.Second))
	// The client reads everything, so the proxy never blocks on it, and
	// notes how much the backend had read when it was told to begin TLS.
	stlsAt := -1
	readErr := make(chan error, 1)
	go func() {
		br := bufio.NewReader(conn)
		for {
			line, err := br.ReadString('\n')
			if line == "+OK begin TLS negotiation\r\n" && stlsAt < 0 {
				stlsAt = fb.count()
			}
			if err != nil {
				readErr <- err
				return
			}
		}
	}()
	conn.Write(client) // an error means the proxy closed first: fine
	conn.(*net.TCPConn).CloseWrite()
	exhausted := time.Now()
	if err := <-readErr; err != io.EOF && !errors.Is(err, net.ErrClosed) && !isResetErr(err) {
		t.Fatalf("mode %v: session did not end within %v after the client's bytes ran out: %v\nclient: %q",
			mode, time.Since(start).Round(time.Millisecond), err, client)
	}
	// The backend answers at once and the client has said all it will, so
	// a session that needs one of its 3s timeouts to end was waiting for
	// something that was never going to come: a stall.
	if d := time.Since(exhausted); d > fuzzStall && !fuzzAllowStall {
		t.Fatalf("mode %v: session took %v to end after the client's bytes ran out (timeouts are 3s): it stalled\nclient: %q",
			mode, d.Round(time.Millisecond), client)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	lines := fb.close(t)
	if msg := checkFuzzSession(mode, client, lines, stlsAt, fb.timestamp); msg != "" {
		var b strings.Builder
		for _, l := range lines {
			fmt.Fprintf(&b, "  conn %d #%d %-5s %q\n", l.conn, l.idx, l.kind, l.raw)
		}
		t.Fatalf("mode %v: %s\nclient: %q\nbackend read:\n%s", mode, msg, client, b.String())
	}
	return lines
}

// fuzzNoThrottle turns off the login throttle's delays: a failed login is
// otherwise answered after up to seconds, and every input must be quick.
func fuzzNoThrottle(srv *Server) {
	srv.throttle.base = 0
}

func isResetErr(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && !op.Timeout()
}
