package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
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

// fuzzLineKind is how the backend read a line: as a command, as the answer
// to its own SASL continuation, or as the login opening an after-auth
// connection (classified later, by checkFuzzSession).
type fuzzLineKind string

const (
	kindCommand fuzzLineKind = "cmd"
	kindSASL    fuzzLineKind = "sasl"
)

type fuzzLine struct {
	conn, idx int // connection number (in accept order) and line number in it
	kind      fuzzLineKind
	raw       string // without CRLF
	framing   string // what is wrong with the line's framing, if anything
}

// fuzzBackend is a scripted POP3 server that records, in arrival order,
// every line popgate sends it. It accepts any login whose password or user
// does not start with "bad" and any SASL exchange not cancelled with "*".
type fuzzBackend struct {
	ln        net.Listener
	timestamp string
	wg        sync.WaitGroup

	mu    sync.Mutex
	lines []fuzzLine
	conns []net.Conn
}

func newFuzzBackend(t *testing.T) *fuzzBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fuzzBackend{ln: ln, timestamp: "<1.2@fuzz>"}
	fb.wg.Add(1)
	go func() {
		defer fb.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fb.mu.Lock()
			fb.conns = append(fb.conns, c)
			fb.mu.Unlock()
			fb.wg.Add(1)
			go func() {
				defer fb.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fb.serve(n, c)
			}()
		}
	}()
	return fb
}

func (fb *fuzzBackend) count() int {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return len(fb.lines)
}

// close stops the backend once popgate is done with it and returns what
// it read.
func (fb *fuzzBackend) close(t *testing.T) []fuzzLine {
	fb.ln.Close()
	done := make(chan struct{})
	go func() { fb.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		fb.mu.Lock()
		for _, c := range fb.conns {
			c.Close()
		}
		fb.mu.Unlock()
		<-done
		t.Fatal("popgate kept a backend connection open after its session ended")
	}
	return fb.lines
}

var fuzzMessages = []string{
	"Subject: one\r\n\r\nhello\r\n",
	"Subject: two\r\n\r\n..leading dot\r\n.\r\nnot the end\r\n",
	"Subject: three\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n",
}

func (fb *fuzzBackend) serve(n int, c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "+OK fuzz backend ready %s\r\n", fb.timestamp)
	w.Flush()
	sasl := 0 // continuation answers still expected
	for idx := 0; ; idx++ {
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			return
		}
		l := fuzzLine{conn: n, idx: idx, kind: kindCommand, raw: strings.TrimSuffix(line, "\r\n")}
		if sasl > 0 {
			l.kind = kindSASL
		}
		switch {
		case err != nil:
			l.framing = "line cut off without CRLF"
		case !strings.HasSuffix(line, "\r\n"):
			l.framing = "line ends in a bare LF"
		case strings.ContainsAny(l.raw, "\r\n\x00"):
			l.framing = "line holds a bare CR, LF or NUL"
		}
		fb.mu.Lock()
		fb.lines = append(fb.lines, l)
		fb.mu.Unlock()
		if err != nil {
			return
		}
		if sasl > 0 {
			switch sasl--; {
			case l.raw == "*":
				sasl = 0
				io.WriteString(w, "-ERR cancelled\r\n")
			case sasl > 0:
				io.WriteString(w, "+ UGFzc3dvcmQ6\r\n")
			default:
				io.WriteString(w, "+OK sasl ok\r\n")
			}
			w.Flush()
			continue
		}
		verb, arg, _ := strings.Cut(l.raw, " ")
		args := strings.Fields(arg)
		msg := func() (string, bool) {
			if len(args) == 0 {
				return "", false
			}
			i, err := strconv.Atoi(args[0])
			if err != nil || i < 1 || i > len(fuzzMessages) {
				return "", false
			}
			return fuzzMessages[i-1], true
		}
		switch strings.ToUpper(verb) {
		case "USER":
			io.WriteString(w, "+OK\r\n")
		case "PASS":
			if strings.HasPrefix(arg, "bad") {
				io.WriteString(w, "-ERR [AUTH] bad password\r\n")
			} else {
				io.WriteString(w, "+OK logged in\r\n")
			}
		case "APOP":
			if strings.HasPrefix(arg, "bad") {
				io.WriteString(w, "-ERR [AUTH] bad digest\r\n")
			} else {
				io.WriteString(w, "+OK logged in\r\n")
			}
		case "AUTH":
			switch {
			case len(args) == 0:
				io.WriteString(w, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n")
			case strings.EqualFold(args[0], "LOGIN") && len(args) == 1:
				sasl = 2
				io.WriteString(w, "+ VXNlcm5hbWU6\r\n")
			case len(args) == 1 || strings.EqualFold(args[0], "LOGIN"):
				sasl = 1
				io.WriteString(w, "+ \r\n")
			default:
				io.WriteString(w, "+OK sasl ok\r\n")
			}
		case "CAPA":
			io.WriteString(w, "+OK\r\nTOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN LOGIN\r\n.\r\n")
		case "STAT":
			io.WriteString(w, "+OK 3 2100\r\n")
		case "LIST", "UIDL":
			if len(args) == 0 {
				io.WriteString(w, "+OK\r\n1 20\r\n2 50\r\n3 2030\r\n.\r\n")
			} else if _, ok := msg(); ok {
				fmt.Fprintf(w, "+OK %s 20\r\n", args[0])
			} else {
				io.WriteString(w, "-ERR no such message\r\n")
			}
		case "RETR", "TOP":
			if m, ok := msg(); ok {
				fmt.Fprintf(w, "+OK message follows\r\n%s.\r\n", m)
			} else {
				io.WriteString(w, "-ERR no such message\r\n")
			}
		case "DELE":
			if _, ok := msg(); ok {
				io.WriteString(w, "+OK marked\r\n")
			} else {
				io.WriteString(w, "-ERR no such message\r\n")
			}
		case "NOOP", "RSET":
			io.WriteString(w, "+OK\r\n")
		case "QUIT":
			io.WriteString(w, "+OK bye\r\n")
			w.Flush()
			return
		default:
			io.WriteString(w, "-ERR unknown command\r\n")
		}
		w.Flush()
	}
}

// fuzzClientLine is one CRLF-terminated line of the client's bytes, as
// the parser frames it.
type fuzzClientLine struct {
	raw    string          // the line without CRLF; "" with ok false when refused
	ok     bool            // the parser returned the line (not ErrBadLine or ErrLineTooLong)
	cmd    *parser.Command // the line parsed as a command, if it does
	logins []fuzzCreds     // credentials a login that completes on this line gives
}

type fuzzCreds struct{ user, pass string }

// fuzzClientLines frames the client's bytes with parser.Reader, as the
// session does (with the larger bound of SASL continuation lines), and
// works out which lines complete a login and with what credentials. The
// credentials are a superset of what the session may use: any earlier
// USER with any later PASS, and every SASL reading of the lines after an
// AUTH.
func fuzzClientLines(client []byte) []fuzzClientLine {
	r := parser.NewReader(bufio.NewReader(bytes.NewReader(client)), maxSASLLine)
	var lines []fuzzClientLine
	for {
		b, err := r.ReadLine()
		if errors.Is(err, parser.ErrBadLine) || errors.Is(err, parser.ErrLineTooLong) {
			lines = append(lines, fuzzClientLine{})
			continue
		}
		if err != nil {
			break // io.EOF, or io.ErrUnexpectedEOF: a last line without CRLF is no line
		}
		l := fuzzClientLine{raw: string(b), ok: true}
		if c, err := parser.ParseCommand(b); err == nil {
			l.cmd = &c
		}
		lines = append(lines, l)
	}
	decode := func(v string) (string, bool) {
		if v == "=" {
			return "", true
		}
		b, err := base64.StdEncoding.DecodeString(v)
		return string(b), err == nil
	}
	// answer returns the SASL response on client line k, decoded.
	answer := func(k int) (string, bool) {
		if k >= len(lines) || !lines[k].ok {
			return "", false
		}
		return decode(lines[k].raw)
	}
	var users []string
	for i := range lines {
		c := lines[i].cmd
		if c == nil {
			continue
		}
		switch {
		case c.Verb == "USER" && len(c.Args) == 1:
			users = append(users, c.Args[0])
		case c.Verb == "PASS" && len(c.Args) == 1:
			for _, u := range users {
				lines[i].logins = append(lines[i].logins, fuzzCreds{u, c.Args[0]})
			}
		case c.Verb == "AUTH" && (len(c.Args) == 1 || len(c.Args) == 2):
			// first is the mechanism's first answer: the initial response
			// on the AUTH line itself, else the next line.
			first, at := "", i+1
			ok := false
			if len(c.Args) == 2 {
				first, ok = decode(c.Args[1])
				at = i
			} else {
				first, ok = answer(i + 1)
			}
			if !ok {
				continue
			}
			switch strings.ToUpper(c.Args[0]) {
			case "PLAIN":
				// Only the authentication identity: a login as another
				// (authorization) identity is never the client's own.
				if p := strings.Split(first, "\x00"); len(p) == 3 {
					lines[at].logins = append(lines[at].logins, fuzzCreds{p[1], p[2]})
				}
			case "LOGIN":
				if p, ok := answer(at + 1); ok {
					lines[at+1].logins = append(lines[at+1].logins, fuzzCreds{first, p})
				}
			}
		}
	}
	return lines
}

// checkFuzzSession returns what is wrong with the backend's view of the
// session, or "".
func checkFuzzSession(mode fuzzMode, client []byte, got []fuzzLine, stlsAt int, timestamp string) string {
	cl := fuzzClientLines(client)
	next := 0 // the first client line the next backend line may come from
	quit := false
	conn := -1
	loginLeft := false // after-auth: this connection's login is still to come
	skip := 0          // login lines already checked
	for i, l := range got {
		if l.framing != "" {
			return fmt.Sprintf("backend line %d %q: %s", i, l.raw, l.framing)
		}
		if quit {
			return fmt.Sprintf("backend line %d %q arrived after QUIT", i, l.raw)
		}
		if stlsAt >= 0 && i >= stlsAt {
			return fmt.Sprintf("backend line %d %q arrived after the client was told to begin TLS", i, l.raw)
		}
		if l.conn != conn {
			conn = l.conn
			loginLeft, skip = mode&fuzzAfterAuth != 0, 0
		}
		switch {
		case skip > 0:
			skip-- // the PASS of a USER+PASS login, checked with its USER
		case loginLeft:
			loginLeft = false
			j, n, msg := matchFuzzLogin(mode, cl, next, got, i, timestamp)
			if msg != "" {
				return fmt.Sprintf("backend line %d %q: %s", i, l.raw, msg)
			}
			skip = n - 1
			next = j + 1
		case l.kind == kindSASL:
			if l.raw == "*" {
				continue // popgate cancels a SASL exchange with "*"
			}
			j := next
			for j < len(cl) && !(cl[j].ok && cl[j].raw == l.raw) {
				j++
			}
			if j == len(cl) {
				return fmt.Sprintf("backend SASL line %d %q is no client line at or after client line %d", i, l.raw, next)
			}
			next = j + 1
		default:
			j := next
			for j < len(cl) && !(cl[j].cmd != nil && cl[j].cmd.String() == l.raw) {
				j++
			}
			if j == len(cl) {
				if l.raw == "QUIT" {
					return fmt.Sprintf("backend line %d: QUIT reached the backend without a client QUIT at or after client line %d", i, next)
				}
				return fmt.Sprintf("backend line %d %q is not a command parsed from a client line at or after client line %d (in order)", i, l.raw, next)
			}
			next = j + 1
			quit = l.raw == "QUIT"
		}
	}
	return ""
}

// matchFuzzLogin checks that backend line i opens an after-auth connection
// with the login popgate is documented to send, for credentials the client
// gave on a line at or after client line next. It returns that client line
// and how many backend lines the login took.
func matchFuzzLogin(mode fuzzMode, cl []fuzzClientLine, next int, got []fuzzLine, i int, timestamp string) (int, int, string) {
	l := got[i]
	var ok func(c fuzzCreds) bool
	n := 1
	verb, arg, _ := strings.Cut(l.raw, " ")
	switch {
	case mode&(fuzzMaster|fuzzLoginPlain) != 0:
		v, isPlain := strings.CutPrefix(l.raw, "AUTH PLAIN ")
		raw, err := base64.StdEncoding.DecodeString(v)
		p := strings.Split(string(raw), "\x00")
		if !isPlain || err != nil || len(p) != 3 {
			return 0, 0, "want AUTH PLAIN with an initial response as the backend login"
		}
		if mode&fuzzMaster != 0 {
			if p[1] != fuzzMasterUser || p[2] != fuzzMasterPassword {
				return 0, 0, "master login with the wrong master credentials"
			}
			ok = func(c fuzzCreds) bool { return c.user == p[0] && c.pass == fuzzVerifiedPass }
		} else {
			if p[0] != "" {
				return 0, 0, "AUTH PLAIN login with an authorization identity"
			}
			ok = func(c fuzzCreds) bool { return c.user == p[1] && c.pass == p[2] }
		}
	case mode&fuzzLoginAPOP != 0:
		user, digest, _ := strings.Cut(arg, " ")
		if verb != "APOP" {
			return 0, 0, "want APOP as the backend login"
		}
		ok = func(c fuzzCreds) bool {
			sum := md5.Sum([]byte(timestamp + c.pass))
			return c.user == user && hex.EncodeToString(sum[:]) == digest
		}
	default:
		user, hasUser := strings.CutPrefix(l.raw, "USER ")
		if !hasUser {
			return 0, 0, "want USER as the backend login"
		}
		pass, hasPass := "", false
		if i+1 < len(got) && got[i+1].conn == l.conn {
			pass, hasPass = strings.CutPrefix(got[i+1].raw, "PASS ")
			if !hasPass {
				return 0, 0, "want PASS after the login's USER"
			}
			n = 2
		}
		ok = func(c fuzzCreds) bool { return c.user == user && (!hasPass || c.pass == pass) }
	}
	for j := next; j < len(cl); j++ {
		for _, c := range cl[j].logins {
			if ok(c) {
				return j, n, ""
			}
		}
	}
	if mode&fuzzMaster != 0 {
		return 0, 0, fmt.Sprintf("master login for a client whose password was not verified (no verified credentials at or after client line %d)", next)
	}
	return 0, 0, fmt.Sprintf("backend login with credentials no client PASS or AUTH gave at or after client line %d", next)
}

// TestFuzzSessionOracle checks FuzzSession's own checks: they pass real
// sessions and catch each violation they are meant to catch.
func TestFuzzSessionOracle(t *testing.T) {
	raws := func(ls []fuzzLine) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.raw)
		}
		return out
	}
	plain := func(authz, authc, pw string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte(authz+"\x00"+authc+"\x00"+pw))
	}
	t.Run("live", func(t *testing.T) {
		for _, tc := range []struct {
			mode   fuzzMode
			client string
			want   []string
		}{
			{0, "user a\r\nPASS secret\r\nNOOP\nDELE 1\r\nDELE 2\r\nQUIT\r\n", []string{"USER a", "PASS secret", "DELE 2", "QUIT"}},
			{fuzzFilter, "USER a\r\nPASS secret\r\nRETR 1\r\nDELE 1\r\n", []string{"USER a", "PASS secret", "RETR 1", "DELE 1"}},
			{fuzzAfterAuth, "USER a\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n", []string{"USER a", "PASS secret", "DELE 1", "QUIT"}},
			{fuzzAfterAuth | fuzzLoginPlain, "AUTH LOGIN YWxpY2U=\r\nc2VjcmV0\r\nQUIT\r\n", []string{plain("", "alice", "secret"), "QUIT"}},
			{fuzzMaster, "USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nSTAT\r\n",
				[]string{plain("alice", fuzzMasterUser, fuzzMasterPassword), "STAT"}},
			{0, "AUTH PLAIN\r\nnot base64!\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nQUIT\r\n",
				[]string{"AUTH PLAIN", "*", "AUTH PLAIN", "AGFsaWNlAHNlY3JldA==", "QUIT"}},
		} {
			got := raws(runFuzzSession(t, tc.mode, []byte(tc.client)))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("mode %v, client %q: backend read %q, want %q", tc.mode, tc.client, got, tc.want)
			}
		}
	})
	cmd := func(conn int, raw string) fuzzLine { return fuzzLine{conn: conn, kind: kindCommand, raw: raw} }
	for _, tc := range []struct {
		name   string
		mode   fuzzMode
		client string
		got    []fuzzLine
		stlsAt int
	}{
		{"not sent", 0, "USER a\r\nPASS secret\r\n", []fuzzLine{cmd(0, "USER a"), cmd(0, "PASS secret"), cmd(0, "DELE 1")}, -1},
		{"smuggled", 0, "NOOP\nDELE 1\r\n", []fuzzLine{cmd(0, "DELE 1")}, -1},
		{"out of order", 0, "DELE 1\r\nDELE 2\r\n", []fuzzLine{cmd(0, "DELE 2"), cmd(0, "DELE 1")}, -1},
		{"quit without client quit", 0, "DELE 1\r\nQUIT", []fuzzLine{cmd(0, "DELE 1"), cmd(0, "QUIT")}, -1},
		{"after quit", 0, "QUIT\r\nDELE 1\r\n", []fuzzLine{cmd(0, "QUIT"), cmd(1, "DELE 1")}, -1},
		{"bare LF", 0, "NOOP\r\n", []fuzzLine{{kind: kindCommand, raw: "NOOP", framing: "line ends in a bare LF"}}, -1},
		{"after STLS", 0, "NOOP\r\nSTLS\r\nNOOP\r\n", []fuzzLine{cmd(0, "NOOP"), cmd(0, "NOOP")}, 1},
		{"SASL line not sent", 0, "AUTH PLAIN\r\n", []fuzzLine{cmd(0, "AUTH PLAIN"), {kind: kindSASL, raw: "AGFsaWNlAHNlY3JldA=="}}, -1},
		{"invented login", fuzzAfterAuth, "USER a\r\nPASS secret\r\n", []fuzzLine{cmd(0, "USER b"), cmd(0, "PASS secret")}, -1},
		{"login before PASS", fuzzAfterAuth, "USER a\r\nNOOP\r\n", []fuzzLine{cmd(0, "USER a"), cmd(0, "PASS x")}, -1},
		{"unverified master", fuzzMaster, "USER alice\r\nPASS wrong\r\n",
			[]fuzzLine{cmd(0, plain("alice", fuzzMasterUser, fuzzMasterPassword))}, -1},
		{"foreign authzid", fuzzMaster, "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("bob\x00alice\x00secret")) + "\r\n",
			[]fuzzLine{cmd(0, plain("bob", fuzzMasterUser, fuzzMasterPassword))}, -1},
	} {
		if msg := checkFuzzSession(tc.mode, []byte(tc.client), tc.got, tc.stlsAt, "<1.2@fuzz>"); msg == "" {
			t.Errorf("%s: not caught", tc.name)
		}
	}
}
