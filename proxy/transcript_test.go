package proxy

// Transcript tests: scripted conversations between a client, popgate and a
// backend, one file each in testdata/transcripts/*.txt (the README there
// shows one). A transcript is read as two scripts, the client's and the
// backend's, which run concurrently, each in its own order; they meet only
// through popgate. Nothing sleeps to synchronise: a step waits for what it
// expects, until the transcript's deadline.
//
// The format, line by line:
//
//	# comment                     (and blank lines) ignored
//	key: value                    header, before the first step (below)
//
//	C: text     the client sends text CRLF
//	C~ text     the client sends text with Go escapes (\r \n \x00 \\ ...)
//	            decoded and nothing added: bare LF, NUL, no CRLF
//	C< text     the client expects the line text (CRLF-terminated)
//	C? text     the client may get this line: a run of C? lines, then
//	            C! eof, means whatever arrives before the connection closes
//	            is a prefix of those lines, possibly cut midway
//	C! verb     a client directive:
//	              eof        popgate closes the connection; nothing more
//	                         arrives (a reset counts as closed)
//	              close      the client closes its connection
//	              half-close the client shuts down its sending side only
//	              reset      the client vanishes: closes with a TCP reset
//	              starttls   the client starts TLS (after +OK to STLS)
//	              quiet      nothing more from popgate waits right now
//	              mark NAME  NAME happened (see wait)
//	              wait NAME  wait until the other script marked NAME
//	B: B~ B< B? B!              the same for the backend, with popgate as
//	            its client. B! directives: eof, close, reset, quiet, mark,
//	            wait, and accept: take popgate's next connection. The
//	            first backend step takes the first connection itself.
//	S< key=value ...   when the session has ended, its report has these
//	            values: reason, committed, deletes, user, backend_user,
//	            mechanism, backend
//	A< key=value ...   the audit trail (filter "audit") has a record with
//	            these JSON fields, after the one the previous A< matched
//
// C:, C~, C<, B:, B~, B< and C?, B? take a count, as in "B<*3 NOOP": the
// step is repeated. C: and C~ steps that follow each other in the
// client's script (backend lines between them do not count) are one
// write, so a burst reaches popgate in one piece; B: and B~ steps too.
// An expected line ending in "..." matches any line that starts with what
// comes before the dots. Text may use ${b64:TEXT} (base64 of TEXT, after
// Go escapes), ${repeat:N:TEXT} and ${apop:SECRET} (the APOP digest of
// SECRET with the last timestamp the client read).
//
// Headers set up popgate's listener and backend:
//
//	connect: on-accept | after-auth        (default on-accept)
//	tls: none | starttls | implicit        (a self-signed certificate)
//	require-tls: true
//	limits: max_errors=3 idle_timeout=300ms ...  (Limits fields, snake case)
//	backend: login=user|apop|sasl-plain master=USER:PASSWORD
//	backend: down                          (nothing listens there)
//	filter: NAME ARGS...                   one per line, outermost first:
//	  tap                      both sides, changes nothing
//	  seq                      numbers each exchange on its Command side
//	                           and appends " #N" to its answer
//	  roundtrip VERB CMD...    before each VERB, runs alone and sends CMD
//	                           through Exchange.Backend
//	  policy deny=A,B max_message_size=N
//	  audit                    to a temporary file (see A<)
//	  apop USER:SECRET...      apop, with these secrets
//	  rewrite strip_domain lowercase add_domain=D
//	  verifier USER:PASSWORD...  a filters.PasswordVerifier
//	  verdict reject|replace|fail N  stands in for clamav: after reading
//	                           the start of message N, refuses it (-ERR),
//	                           replaces it, or fails (a scanner error that
//	                           is no *parser.Error ends the session)
//	timeout: 10s                           the whole transcript's deadline
//	pending: WHY                           a known bug of popgate: the
//	                                       transcript must fail, until the
//	                                       fix makes it pass and the header
//	                                       goes
//
// Every line popgate sends must be expected: when both scripts are done,
// the client closes its connection, the server shuts down, and anything
// popgate sent that no step read, or a backend connection no step took,
// fails the transcript.
//
// Order is checked by the scripts themselves. A backend that expects every
// command of a burst (B<) before it answers any (B:) catches a proxy that
// does not pipeline: waiting for an answer first, it never gets one, and
// the transcript fails at its deadline. "B! quiet" between a command and
// its answer catches a proxy that sent what must wait for that answer
// (QUIT, an exclusive filter's round trip). The transcripts are run by
// TestTranscripts; TestTranscriptRunnerCatchesMistakes checks that broken
// ones fail. The runner is in transcript_run_test.go, the steps in
// transcript_steps_test.go, the filters in transcript_filters_test.go; the
// backend is the tests' one scripted backend (script_backend_test.go).

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestTranscripts(t *testing.T) {
	files, err := filepath.Glob("testdata/transcripts/*.txt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no transcripts in testdata/transcripts: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txt"), func(t *testing.T) {
			t.Parallel()
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			tr, err := parseTranscript(file, string(src))
			if err != nil {
				t.Fatal(err)
			}
			err = tr.run(t)
			switch {
			case tr.pending == "" && err != nil:
				t.Fatal(err)
			case tr.pending != "" && err == nil:
				t.Fatalf("%s passes now: remove its pending: header (%s)", file, tr.pending)
			case tr.pending != "":
				first, _, _ := strings.Cut(err.Error(), "\n")
				t.Logf("pending, still fails as expected (%s): %s", tr.pending, first)
			}
		})
	}
}

// step is one line of a transcript's script.
type step struct {
	line  int    // in the file
	op    string // "C:", "C<", "B!", ...
	text  string
	count int
}

// transcript is a parsed transcript file.
type transcript struct {
	name string

	connect     ConnectMode
	tls         TLSMode
	requireTLS  bool
	limits      Limits
	backend     Backend
	backendDown bool
	filters     [][]string // each filter's name and arguments
	timeout     time.Duration
	pending     string // a known bug of popgate the transcript shows

	client, backendSteps []step
	ends, audit          []step
	marks                map[string]bool
}

// parseTranscript reads a transcript; name is for messages.
func parseTranscript(name, src string) (*transcript, error) {
	tr := &transcript{name: name, timeout: 10 * time.Second, marks: map[string]bool{}}
	inHeader := true
	for i, line := range strings.Split(src, "\n") {
		n := i + 1
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fail := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", name, n, fmt.Sprintf(format, args...))
		}
		if len(line) >= 2 && strings.ContainsRune("CBSA", rune(line[0])) && strings.ContainsRune(":~<?!", rune(line[1])) {
			inHeader = false
			s := step{line: n, op: line[:2], count: 1}
			rest := line[2:]
			if strings.HasPrefix(rest, "*") {
				end := strings.IndexByte(rest, ' ')
				if end < 0 {
					end = len(rest)
				}
				c, err := strconv.Atoi(rest[1:end])
				if err != nil || c < 1 {
					return nil, fail("bad count %q", rest[:end])
				}
				if !strings.ContainsRune(":~<?", rune(s.op[1])) {
					return nil, fail("%s takes no count", s.op)
				}
				s.count, rest = c, rest[end:]
			}
			if rest != "" && rest[0] != ' ' {
				return nil, fail("a space must follow %s", s.op)
			}
			s.text = strings.TrimPrefix(rest, " ")
			if err := tr.add(s); err != nil {
				return nil, fail("%v", err)
			}
			continue
		}
		key, value, ok := strings.Cut(line, ": ")
		if !ok || !inHeader {
			return nil, fail("neither a step nor a header: %q", line)
		}
		if err := tr.header(key, strings.TrimSpace(value)); err != nil {
			return nil, fail("%v", err)
		}
	}
	for _, steps := range [][]step{tr.client, tr.backendSteps} {
		for i, s := range steps {
			if s.op[1] == '?' {
				j := i + 1
				for j < len(steps) && steps[j].op == s.op {
					j++
				}
				if j == len(steps) || steps[j].op[1] != '!' || steps[j].text != "eof" {
					return nil, fmt.Errorf("%s:%d: %s lines must be followed by %c! eof", name, s.line, s.op, s.op[0])
				}
			}
		}
	}
	return tr, nil
}

// add files a step under its actor and checks its directive.
func (tr *transcript) add(s step) error {
	switch s.op[0] {
	case 'S', 'A':
		if s.op[1] != '<' {
			return fmt.Errorf("%c takes only %c<", s.op[0], s.op[0])
		}
		if s.op[0] == 'S' {
			tr.ends = append(tr.ends, s)
		} else {
			tr.audit = append(tr.audit, s)
		}
		return nil
	}
	if s.op[1] == '!' {
		verb, arg, _ := strings.Cut(s.text, " ")
		ok := false
		switch verb {
		case "eof", "close", "reset", "quiet":
			ok = arg == ""
		case "half-close", "starttls":
			ok = arg == "" && s.op[0] == 'C'
		case "accept":
			ok = arg == "" && s.op[0] == 'B'
		case "mark", "wait":
			ok = arg != "" && !strings.Contains(arg, " ")
			tr.marks[arg] = true
		}
		if !ok {
			return fmt.Errorf("unknown directive %s %s", s.op, s.text)
		}
	}
	if s.op[0] == 'C' {
		tr.client = append(tr.client, s)
	} else {
		tr.backendSteps = append(tr.backendSteps, s)
	}
	return nil
}

// header applies one header line.
func (tr *transcript) header(key, value string) error {
	words := strings.Fields(value)
	switch key {
	case "connect":
		return tr.connect.UnmarshalText([]byte(value))
	case "tls":
		return tr.tls.UnmarshalText([]byte(value))
	case "require-tls":
		tr.requireTLS = value == "true"
	case "pending":
		tr.pending = value
	case "timeout":
		d, err := time.ParseDuration(value)
		tr.timeout = d
		return err
	case "filter":
		if len(words) == 0 {
			return errors.New("filter: needs a name")
		}
		tr.filters = append(tr.filters, words)
	case "limits":
		for _, w := range words {
			k, v, _ := strings.Cut(w, "=")
			if err := setLimit(&tr.limits, k, v); err != nil {
				return err
			}
		}
	case "backend":
		for _, w := range words {
			k, v, _ := strings.Cut(w, "=")
			var err error
			switch k {
			case "down":
				tr.backendDown = true
			case "login":
				err = tr.backend.Login.UnmarshalText([]byte(v))
			case "master":
				tr.backend.MasterUser, tr.backend.MasterPassword, _ = strings.Cut(v, ":")
			default:
				err = fmt.Errorf("unknown backend setting %q", k)
			}
			if err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("unknown header %q", key)
	}
	return nil
}

// setLimit sets the Limits field named k (snake case) to v.
func setLimit(l *Limits, k, v string) error {
	ints := map[string]*int{
		"max_line": &l.MaxLine, "max_errors": &l.MaxErrors, "max_auth_tries": &l.MaxAuthTries,
		"pipeline_depth": &l.PipelineDepth, "max_sessions": &l.MaxSessions, "max_sessions_per_ip": &l.MaxSessionsPerIP,
	}
	durations := map[string]*time.Duration{
		"pre_login_timeout": &l.PreLoginTimeout, "idle_timeout": &l.IdleTimeout, "write_timeout": &l.WriteTimeout,
		"backend_timeout": &l.BackendTimeout, "handshake_timeout": &l.HandshakeTimeout,
	}
	if p, ok := ints[k]; ok {
		n, err := strconv.Atoi(v)
		*p = n
		return err
	}
	if p, ok := durations[k]; ok {
		d, err := time.ParseDuration(v)
		*p = d
		return err
	}
	return fmt.Errorf("unknown limit %q", k)
}

// TestTranscriptRunnerCatchesMistakes runs transcripts that must fail, so
// that a passing transcript means what it says.
func TestTranscriptRunnerCatchesMistakes(t *testing.T) {
	const login = `timeout: 2s
B: +OK ready
C< +OK ready
C: USER a
B< USER a
B: +OK
C< +OK
C: PASS secret
B< PASS secret
B: +OK logged in
C< +OK logged in
`
	for _, tc := range []struct {
		name, src, want string
	}{
		{"wrong line to the backend", login + "C: NOOP\nB< NOOOP\n", `got "NOOP"`},
		{"wrong line to the client", login + "C: NOOP\nB< NOOP\nB: +OK\nC< +OK done\n", `got "+OK"`},
		{"line nobody reads", login + "C: NOOP\nB< NOOP\nB: +OK\nC< +OK\nC: STAT\n", `popgate sent the backend "STAT\r\n"`},
		{"backend waits for a burst the client never sends", login +
			"C: NOOP\nC< +OK\nC: NOOP\nC< +OK\nB< NOOP\nB< NOOP\nB: +OK\nB: +OK\n", "deadline"},
		{"connection that stays open", login + "C! eof\n", "did not close"},
		{"more than the maybe lines", login + "C: NOOP\nC: QUIT\nB< NOOP\nB: +OK\nB? NOP\nB! eof\n", "before the end"},
		{"backend connection nobody takes", "connect: after-auth\ntimeout: 5s\nC< +OK POP3 server ready\nC: USER a\nC< +OK send PASS\nC: PASS x\nC< -ERR ...\n",
			"backend connection the script does not expect"},
		{"session report", login + "C: QUIT\nB< QUIT\nB: +OK bye\nB! eof\nC< +OK bye\nC! eof\nS< committed=false\n", `committed is "true"`},
		{"quiet while popgate sent more", login + "C: NOOP\nC: NOOP\nB< NOOP\nB! quiet\n", "already sent more"},
		{"audit record that is not there", "filter: audit\n" + login + "C: QUIT\nB< QUIT\nB: +OK bye\nB! eof\nC< +OK bye\nC! eof\nA< event=commit count=1\n",
			"no such audit record"},
		{"unknown header", "colour: blue\n", "unknown header"},
		{"maybe without eof", "C? +OK\nC< +OK\n", "must be followed by C! eof"},
		{"unknown directive", "B! dance\n", "unknown directive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := runTranscript(t, tc.name, tc.src)
			if err == nil {
				t.Fatal("the transcript passed")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error does not say %q:\n%v", tc.want, err)
			}
		})
	}
}
