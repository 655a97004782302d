package policy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// answer is what the fake backend replies to one command.
type answer struct {
	resp parser.Response
	body string
	err  error
}

// backend is a fake innermost handler that records every command it is
// sent; it checks that each call starts with a clean exchange.
type backend struct {
	t      *testing.T
	mu     sync.Mutex
	sent   []string
	answer func(cmd parser.Command) answer
}

func (b *backend) Serve(_ context.Context, ex *filters.Exchange) error {
	if ex.Response != (parser.Response{}) || ex.Body != nil {
		b.t.Errorf("%s: called with a response or body left from an earlier call", ex.Out)
	}
	b.mu.Lock()
	b.sent = append(b.sent, ex.Out.String())
	b.mu.Unlock()
	a := b.answer(ex.Out)
	ex.Response = a.resp
	if a.err == nil && parser.HasBody(ex.Out, a.resp) {
		ex.Body = strings.NewReader(a.body)
	}
	return a.err
}

func (b *backend) commands() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string{}, b.sent...)
}

// server answers like a mailbox with message 1 of 100 octets and message 2
// of 5000 octets.
func server(cmd parser.Command) answer {
	sizes := map[string]string{"1": "100", "2": "5000"}
	msg := strings.TrimLeft(cmd.Arg(0), "0")
	switch cmd.Verb {
	case "LIST":
		if s, ok := sizes[msg]; ok {
			return answer{resp: parser.OK(msg + " " + s)}
		}
		return answer{resp: parser.Err("", "no such message")}
	case "RETR":
		if _, ok := sizes[msg]; ok {
			return answer{resp: parser.OK("message follows"), body: "Subject: x\r\n\r\nbody\r\n"}
		}
		return answer{resp: parser.Err("", "no such message")}
	case "CAPA":
		return answer{resp: parser.OK("Capability list follows"),
			body: "TOP\r\nuser\r\nSASL PLAIN LOGIN\r\nUIDL\r\nPIPELINING\r\nRESP-CODES\r\n"}
	}
	return answer{resp: parser.OK("done")}
}

func mustNew(t *testing.T, cfg Config) *Filter {
	t.Helper()
	f, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// serve runs one command through h and reads the body, as the session
// would.
func serve(t *testing.T, h filters.Handler, line string) (*filters.Exchange, string, error) {
	t.Helper()
	cmd, err := parser.ParseCommand([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	ex := &filters.Exchange{Session: &filters.Session{ID: "s1"}, Command: cmd, Out: cmd}
	err = h.Serve(context.Background(), ex)
	var body bytes.Buffer
	if ex.Body != nil {
		if _, rerr := body.ReadFrom(iotest.OneByteReader(ex.Body)); rerr != nil {
			t.Fatal(rerr)
		}
	}
	return ex, body.String(), err
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
	f := mustNew(t, Config{Deny: []string{"DELE", "TOP"}})
	b := &backend{t: t, answer: server}
	h := f.Wrap(b)
	for _, line := range []string{"DELE 1", "dele 2", "TOP 1 10"} {
		ex, _, err := serve(t, h, line)
		verb := strings.ToUpper(strings.Fields(line)[0])
		want := parser.Err("", verb+" not permitted by policy")
		if err != nil || ex.Response != want || ex.Body != nil {
			t.Errorf("%s: %v, %v; want %v", line, ex.Response, err, want)
		}
	}
	if ex, _, err := serve(t, h, "NOOP"); err != nil || !ex.Response.IsOK() {
		t.Errorf("NOOP: %v %v", ex.Response, err)
	}
	if got := b.commands(); !slices.Equal(got, []string{"NOOP"}) {
		t.Errorf("backend was sent %q", got)
	}
}

// TestDenyRetrDeniesTop checks that TOP, which sends a whole message when
// asked for enough lines, cannot be used where RETR is denied, and that
// denying TOP alone leaves RETR allowed.
func TestDenyRetrDeniesTop(t *testing.T) {
	b := &backend{t: t, answer: server}
	h := mustNew(t, Config{Deny: []string{"RETR"}}).Wrap(b)
	for _, line := range []string{"RETR 1", "TOP 1 9999999999", "TOP 1 0"} {
		ex, body, err := serve(t, h, line)
		want := parser.Err("", strings.Fields(line)[0]+" not permitted by policy")
		if err != nil || ex.Response != want || body != "" {
			t.Errorf("deny RETR, %s: %v %q %v; want %v", line, ex.Response, body, err, want)
		}
	}
	if got := b.commands(); len(got) != 0 {
		t.Errorf("backend was sent %q", got)
	}
	_, body, err := serve(t, mustNew(t, Config{Deny: []string{"RETR"}}).Wrap(b), "CAPA")
	if err != nil || strings.Contains(body, "TOP") {
		t.Errorf("deny RETR: CAPA still announces TOP: %q %v", body, err)
	}

	b = &backend{t: t, answer: server}
	h = mustNew(t, Config{Deny: []string{"TOP"}}).Wrap(b)
	if ex, _, err := serve(t, h, "RETR 1"); err != nil || !ex.Response.IsOK() {
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
		b := &backend{t: t, answer: server}
		_, body, err := serve(t, mustNew(t, Config{Deny: tt.deny}).Wrap(b), "CAPA")
		if err != nil || body != tt.want {
			t.Errorf("deny %q: CAPA body %q, %v; want %q", tt.deny, body, err, tt.want)
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

func TestExclusive(t *testing.T) {
	limited := mustNew(t, Config{MaxMessageSize: 1000})
	plain := mustNew(t, Config{})
	deniedRetr := mustNew(t, Config{Deny: []string{"RETR"}, MaxMessageSize: 1000})
	for _, c := range []parser.Command{parser.NewCommand("RETR", "1"), parser.NewCommand("TOP", "1", "5")} {
		if !limited.Exclusive(c, nil) || plain.Exclusive(c, nil) || deniedRetr.Exclusive(c, nil) {
			t.Errorf("%s exclusive only with a size limit and when not denied", c)
		}
	}
	for _, c := range []parser.Command{parser.NewCommand("LIST", "1"), parser.NewCommand("DELE", "1")} {
		if limited.Exclusive(c, nil) {
			t.Errorf("%s exclusive", c)
		}
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
