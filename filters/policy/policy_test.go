package policy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// sizes are the messages of the test mailbox: 1 of 100 octets, 2 of 5000.
var sizes = map[string]string{"1": "100", "2": "5000"}

// server answers like a mailbox with message 1 of 100 octets and message 2
// of 5000 octets.
func server(cmd parser.Command) (parser.Response, string) {
	msg := strings.TrimLeft(cmd.Arg(0), "0")
	switch cmd.Verb {
	case "LIST":
		if len(cmd.Args) == 0 {
			return parser.OK("2 messages"), "1 100\r\n2 5000\r\n"
		}
		if s, ok := sizes[msg]; ok {
			return parser.OK(msg + " " + s), ""
		}
		return parser.Err("", "no such message"), ""
	case "RETR":
		if _, ok := sizes[msg]; ok {
			return parser.OK("message follows"), "Subject: x\r\n\r\nbody\r\n"
		}
		return parser.Err("", "no such message"), ""
	case "CAPA":
		return parser.OK("Capability list follows"),
			"TOP\r\nuser\r\nSASL PLAIN LOGIN\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n"
	}
	return parser.OK("done"), ""
}

func mustNew(t *testing.T, cfg Config) *Filter {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// session runs the exchanges of one client session through a chain of
// filters, as the proxy's session does (filtertest.Run), against a
// backend that records what it is sent, extra round trips included.
type session struct {
	t     *testing.T
	chain *filters.Chain
	sess  *filters.Session
	b     *filtertest.Calls
}

// newSession starts a session of f against answer.
func newSession(t *testing.T, f filters.Filter, answer filtertest.Backend) *session {
	return &session{t: t, chain: filters.NewChain(f), sess: &filters.Session{ID: "s1"}, b: &filtertest.Calls{B: answer}}
}

// exchange is what serve saw of one exchange.
type exchange struct {
	*filters.Exchange
	body      string
	exclusive bool // the chain asked to run it alone
}

// serve runs one command line and reads the body one octet at a time, as
// the session would.
func (s *session) serve(line string) (exchange, error) {
	s.t.Helper()
	cmd, err := parser.ParseCommand([]byte(line))
	if err != nil {
		s.t.Fatal(err)
	}
	ex := filtertest.Exchange(s.sess, cmd)
	r := exchange{Exchange: ex, exclusive: s.chain.Exclusive(ex)}
	err = filtertest.Run(context.Background(), s.chain, ex, s.b.Answer)
	if err == nil && ex.Body != nil {
		var body bytes.Buffer
		if _, rerr := body.ReadFrom(iotest.OneByteReader(ex.Body)); rerr != nil {
			s.t.Fatal(rerr)
		}
		r.body = body.String()
	}
	filtertest.Finish(s.chain, ex, err)
	return r, err
}

// commands returns the commands the backend received, and forgets them.
func (s *session) commands() []string {
	var sent []string
	for _, c := range s.b.Sent {
		sent = append(sent, c.String())
	}
	s.b.Sent = nil
	return sent
}

// serve runs line in a new session of f against server.
func serve(t *testing.T, f filters.Filter, line string) (exchange, []string, error) {
	t.Helper()
	s := newSession(t, f, server)
	ex, err := s.serve(line)
	return ex, s.commands(), err
}

func TestNewValidates(t *testing.T) {
	for _, deny := range [][]string{{"dele"}, {"QUIT"}, {""}, {"DE LE"}, {"DELE\r\n"}, {strings.Repeat("X", 41)}} {
		if _, err := New(Config{Deny: deny}); err == nil {
			t.Errorf("New accepted deny %q", deny)
		}
	}
	if _, err := New(Config{MaxMessageSize: -1}); err == nil {
		t.Error("New accepted a negative size")
	}
	f, err := New(Config{Deny: []string{"DELE", "X-VENDOR2"}, MaxMessageSize: 10})
	if err != nil || f.Name() != "policy" {
		t.Fatalf("New: %v", err)
	}
}

func TestDeny(t *testing.T) {
	s := newSession(t, mustNew(t, Config{Deny: []string{"DELE", "TOP"}}), server)
	for _, line := range []string{"DELE 1", "dele 2", "TOP 1 10"} {
		ex, err := s.serve(line)
		verb := strings.ToUpper(strings.Fields(line)[0])
		want := parser.Err("", verb+" not permitted by policy")
		if err != nil || ex.Response != want || ex.Body != nil {
			t.Errorf("%s: %v, %v; want %v", line, ex.Response, err, want)
		}
	}
	if ex, err := s.serve("NOOP"); err != nil || !ex.Response.IsOK() {
		t.Errorf("NOOP: %v %v", ex.Response, err)
	}
	if got := s.commands(); !slices.Equal(got, []string{"NOOP"}) {
		t.Errorf("backend was sent %q", got)
	}
}

// TestDenyRetrDeniesTop checks that TOP, which sends a whole message when
// asked for enough lines, cannot be used where RETR is denied, and that
// denying TOP alone leaves RETR allowed.
func TestDenyRetrDeniesTop(t *testing.T) {
	s := newSession(t, mustNew(t, Config{Deny: []string{"RETR"}}), server)
	for _, line := range []string{"RETR 1", "TOP 1 9999999999", "TOP 1 0"} {
		ex, err := s.serve(line)
		want := parser.Err("", strings.Fields(line)[0]+" not permitted by policy")
		if err != nil || ex.Response != want || ex.body != "" {
			t.Errorf("deny RETR, %s: %v %q %v; want %v", line, ex.Response, ex.body, err, want)
		}
	}
	if got := s.commands(); len(got) != 0 {
		t.Errorf("backend was sent %q", got)
	}
	ex, _, err := serve(t, mustNew(t, Config{Deny: []string{"RETR"}}), "CAPA")
	if err != nil || strings.Contains(ex.body, "TOP") {
		t.Errorf("deny RETR: CAPA still announces TOP: %q %v", ex.body, err)
	}

	if ex, _, err := serve(t, mustNew(t, Config{Deny: []string{"TOP"}}), "RETR 1"); err != nil || !ex.Response.IsOK() {
		t.Errorf("deny TOP, RETR 1: %v %v", ex.Response, err)
	}
}

func TestCapaHidesDeniedCommands(t *testing.T) {
	tests := []struct {
		deny []string
		want string
	}{
		{nil, "TOP\r\nuser\r\nSASL PLAIN LOGIN\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n"},
		{[]string{"DELE"}, "TOP\r\nuser\r\nSASL PLAIN LOGIN\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n"},
		{[]string{"TOP", "UIDL"}, "user\r\nSASL PLAIN LOGIN\r\nPIPELINING\r\nRESP-CODES\r\n"},
		{[]string{"PASS", "AUTH"}, "TOP\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n"},
	}
	for _, tt := range tests {
		ex, _, err := serve(t, mustNew(t, Config{Deny: tt.deny}), "CAPA")
		if err != nil || ex.body != tt.want {
			t.Errorf("deny %q: CAPA body %q, %v; want %q", tt.deny, ex.body, err, tt.want)
		}
		if ex.exclusive {
			t.Errorf("deny %q: CAPA exclusive", tt.deny)
		}
	}
}

func TestCapaFilterLongLinesAndEOF(t *testing.T) {
	long := "X-LONG " + strings.Repeat("a", 3*capaBuffer) + "\r\n"
	in := long + "TOP\r\n" + "SASL " + strings.Repeat("b", 2*capaBuffer) + "\r\n" + "LAST"
	hide := func(tag string) bool { return tag == "TOP" || tag == "SASL" }
	for _, oneByte := range []bool{false, true} {
		var r io.Reader = newCapaFilter(strings.NewReader(in), hide)
		if oneByte {
			r = iotest.OneByteReader(r)
		}
		got, err := io.ReadAll(r)
		if err != nil || string(got) != long+"LAST" {
			t.Errorf("one byte %v: got %d octets, %v", oneByte, len(got), err)
		}
	}
	cut := newCapaFilter(iotest.TimeoutReader(strings.NewReader("TOP\r\nUIDL\r\n")), hide)
	if got, err := io.ReadAll(cut); !errors.Is(err, iotest.ErrTimeout) || string(got) != "UIDL\r\n" {
		t.Errorf("error not passed on: %q, %v", got, err)
	}
}

// TestExclusive checks which exchanges run alone: RETR and TOP under a
// size limit while the session's cache does not hold the message's size,
// and nothing else.
func TestExclusive(t *testing.T) {
	limited := mustNew(t, Config{MaxMessageSize: 1000})
	plain := mustNew(t, Config{})
	deniedRetr := mustNew(t, Config{Deny: []string{"RETR"}, MaxMessageSize: 1000})
	excl := func(f *Filter, s *filters.Session, c parser.Command) bool {
		return f.Exclusive(filtertest.Exchange(s, c))
	}
	sess := &filters.Session{ID: "s1"}
	for _, c := range []parser.Command{parser.NewCommand("RETR", "1"), parser.NewCommand("TOP", "1", "5")} {
		if !excl(limited, sess, c) || excl(plain, sess, c) || excl(deniedRetr, sess, c) {
			t.Errorf("%s exclusive only with a size limit and when not denied", c)
		}
	}
	for _, c := range []parser.Command{parser.NewCommand("LIST", "1"), parser.NewCommand("DELE", "1"),
		parser.NewCommand("RETR"), parser.NewCommand("RETR", "0"), parser.NewCommand("TOP", "1")} {
		if excl(limited, sess, c) {
			t.Errorf("%s exclusive", c)
		}
	}
	// Once the listing is cached, RETR and TOP of listed messages stay
	// pipelined; a message the listing did not name is still asked for.
	s := newSession(t, limited, server)
	s.sess = sess
	if _, err := s.serve("RETR 1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []parser.Command{parser.NewCommand("RETR", "1"), parser.NewCommand("TOP", "2", "0"), parser.NewCommand("RETR", "02")} {
		if excl(limited, sess, c) {
			t.Errorf("%s exclusive with the listing cached", c)
		}
	}
	if !excl(limited, sess, parser.NewCommand("RETR", "3")) {
		t.Error("RETR 3, missing from the listing, not exclusive")
	}
	// Another session, and another filter in the same session, have
	// their own caches.
	if !excl(limited, &filters.Session{ID: "s2"}, parser.NewCommand("RETR", "1")) {
		t.Error("RETR 1 in a new session not exclusive")
	}
	if !excl(mustNew(t, Config{MaxMessageSize: 1000}), sess, parser.NewCommand("RETR", "1")) {
		t.Error("RETR 1 through another filter instance not exclusive")
	}
}

type closer struct {
	io.Reader
	closed bool
}

func (c *closer) Close() error { c.closed = true; return nil }

func TestCapaFilterCloses(t *testing.T) {
	src := &closer{Reader: strings.NewReader("TOP\r\n")}
	cf := newCapaFilter(src, func(string) bool { return false })
	if err := cf.Close(); err != nil || !src.closed {
		t.Fatalf("Close not passed on: %v", err)
	}
	if err := newCapaFilter(strings.NewReader(""), nil).Close(); err != nil {
		t.Fatal(err)
	}
}
