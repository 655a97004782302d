package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// answer is what the fake backend replies to one command.
type answer struct {
	resp parser.Response
	body string
}

// backend is a fake POP3 backend: it records every command it is sent,
// the exchanges' and the filter's own round trips alike, and answers from
// a function.
type backend struct {
	mu     sync.Mutex
	sent   []string
	answer func(cmd parser.Command) answer
}

// reply is the backend as a filtertest.Backend.
func (b *backend) reply(cmd parser.Command) (parser.Response, string) {
	b.mu.Lock()
	b.sent = append(b.sent, cmd.String())
	b.mu.Unlock()
	a := b.answer(cmd)
	return a.resp, a.body
}

// Call is the backend as the filters.Backend of an exclusive exchange.
func (b *backend) Call(_ context.Context, cmd parser.Command) (parser.Response, io.Reader, error) {
	resp, body := b.reply(cmd)
	if !parser.HasBody(cmd, resp) {
		return resp, nil, nil
	}
	return resp, strings.NewReader(body), nil
}

func (b *backend) commands() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string{}, b.sent...)
}

// mailbox answers like a small POP3 server holding messages 1 to 3.
func mailbox(cmd parser.Command) answer {
	msgs := map[string]string{
		"1": "Message-ID: <one@example.org>\r\nSubject: one\r\n\r\nbody one\r\n",
		"2": "Subject: two\r\nmessage-id:\r\n <two@example.org>\r\n\r\nbody two\r\n",
		"3": "Subject: three\r\n\r\nMessage-ID: <not-a-header@example.org>\r\n",
	}
	uids := map[string]string{"1": "uid-one", "2": "uid-two", "3": "uid-three"}
	switch cmd.Verb {
	case "RETR", "TOP":
		if m, ok := msgs[cmd.Arg(0)]; ok {
			return answer{resp: parser.OK("message follows"), body: m}
		}
		return answer{resp: parser.Err("", "no such message")}
	case "UIDL":
		if len(cmd.Args) == 0 {
			return answer{resp: parser.OK(""), body: "1 uid-one\r\n2 uid-two\r\n3 uid-three\r\n"}
		}
		if u, ok := uids[cmd.Arg(0)]; ok {
			return answer{resp: parser.OK(cmd.Arg(0) + " " + u)}
		}
		return answer{resp: parser.Err("", "no such message")}
	case "PASS":
		if cmd.Arg(0) == "right horse battery" {
			return answer{resp: parser.OK("logged in")}
		}
		return answer{resp: parser.Err(parser.CodeAuth, "bad password")}
	}
	return answer{resp: parser.OK("done")}
}

// testSession returns a session in the TRANSACTION state.
func testSession(id string) *filters.Session {
	s := &filters.Session{
		ID:         id,
		Listener:   "pop3",
		ClientAddr: &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40001},
		LocalAddr:  &net.TCPAddr{IP: net.ParseIP("198.51.100.1"), Port: 110},
		Started:    time.Now(),
	}
	s.Login = filters.Login{User: "alice", BackendUser: "alice@backend", Mechanism: "user", Backend: "main"}
	s.SetState(filters.Transaction)
	return s
}

// newTest returns a filter writing to a file in a temporary directory.
func newTest(t *testing.T, chain bool) (*Filter, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	f, err := New(Config{Path: path, Chain: chain}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// harness runs exchanges through a chain against a backend, as the
// proxy's session does.
type harness struct {
	c         *filters.Chain
	b         *backend
	exclusive atomic.Int64 // exchanges that ran alone
}

// newHarness returns a harness of the chain of fs in front of b.
func newHarness(b *backend, fs ...filters.Filter) *harness {
	return &harness{c: filters.NewChain(fs...), b: b}
}

// with returns a harness of f alone in front of b.
func (f *Filter) with(b *backend) *harness { return newHarness(b, f) }

// run runs one command through the chain on its own and reads any body
// to its end, as the session would; it returns the body read.
func run(t *testing.T, h *harness, s *filters.Session, line string) (parser.Response, string, error) {
	t.Helper()
	resp, body, err := serveLine(h, s, line)
	if errors.Is(err, errHarness) {
		t.Fatal(err)
	}
	return resp, body, err
}

// errHarness marks failures of the test harness itself.
var errHarness = errors.New("harness")

// newExchange parses line into an exchange of session s.
func newExchange(s *filters.Session, line string) (*filters.Exchange, error) {
	cmd, err := parser.ParseCommand([]byte(line))
	if err != nil {
		return nil, fmt.Errorf("%w: parse %q: %w", errHarness, line, err)
	}
	ex := filtertest.Exchange(s, cmd)
	ex.Started = time.Now()
	return ex, nil
}

// serveLine is run for goroutines other than the test's.
func serveLine(h *harness, s *filters.Session, line string) (parser.Response, string, error) {
	ex, err := newExchange(s, line)
	if err != nil {
		return parser.Response{}, "", err
	}
	if h.c.Exclusive(ex) {
		h.exclusive.Add(1)
	}
	err = filtertest.Run(context.Background(), h.c, ex, h.b.reply)
	var body bytes.Buffer
	if err == nil && ex.Body != nil {
		if _, rerr := body.ReadFrom(ex.Body); rerr != nil {
			return ex.Response, "", fmt.Errorf("%w: %s: read body: %w", errHarness, line, rerr)
		}
	}
	filtertest.Finish(h.c, ex, err)
	return ex.Response, body.String(), err
}

// result is what the client got for one command of a burst.
type result struct {
	resp parser.Response
	body string
	err  error
}

// pipeline runs lines as one pipelined burst, as the session does: the
// Command sides in order on this goroutine, the answers, Response sides,
// bodies and Finish in order on another, with up to depth exchanges in
// flight. An exclusive exchange first waits until every earlier one
// finished, then runs its Command side with the backend to itself.
func pipeline(h *harness, s *filters.Session, depth int, lines ...string) []result {
	ctx := context.Background()
	type flight struct {
		ex  *filters.Exchange
		n   int
		err error
	}
	out := make([]result, len(lines))
	ch := make(chan flight, depth)
	var inFlight sync.WaitGroup
	done := make(chan struct{})
	go func() {
		defer close(done)
		i := 0
		for fl := range ch {
			ex, err := fl.ex, fl.err
			if err == nil {
				if ex.Response.Status == 0 {
					resp, body := h.b.reply(ex.Out)
					ex.Response = resp
					if parser.HasBody(ex.Out, resp) {
						ex.Body = strings.NewReader(body)
					}
				}
				err = h.c.Response(ctx, ex, fl.n)
			}
			var body bytes.Buffer
			if err == nil && ex.Body != nil {
				_, err = body.ReadFrom(ex.Body)
			}
			filtertest.Finish(h.c, ex, err)
			out[i] = result{ex.Response, body.String(), err}
			i++
			inFlight.Done()
		}
	}()
	for _, line := range lines {
		ex, err := newExchange(s, line)
		if err != nil {
			out[0].err = err
			break
		}
		if h.c.Exclusive(ex) {
			h.exclusive.Add(1)
			inFlight.Wait()
			ex.Backend = h.b
		}
		n, err := h.c.Command(ctx, ex)
		ex.Backend = nil
		inFlight.Add(1)
		ch <- flight{ex, n, err}
	}
	close(ch)
	<-done
	return out
}

// records reads the audit file and decodes every line, failing on any line
// that is not a JSON object.
func records(t *testing.T, path string) []map[string]any {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, MaxLine)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d is not JSON: %v: %s", len(out)+1, err, sc.Bytes())
		}
		checkHeader(t, m)
		out = append(out, m)
	}
	return out
}

// checkHeader checks the fields every record has.
func checkHeader(t *testing.T, m map[string]any) {
	t.Helper()
	ts, _ := m["time"].(string)
	when, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil || !strings.HasSuffix(ts, "Z") || time.Since(when) > time.Minute {
		t.Errorf("bad time %q in %v", ts, m)
	}
	for _, k := range []string{"event", "session", "client", "listener"} {
		if _, ok := m[k].(string); !ok {
			t.Errorf("record lacks %q: %v", k, m)
		}
	}
}

// only returns the records of one event.
func only(recs []map[string]any, event string) []map[string]any {
	var out []map[string]any
	for _, r := range recs {
		if r["event"] == event {
			out = append(out, r)
		}
	}
	return out
}

// want checks that rec has exactly the given values for the given fields
// (JSON numbers compare as float64).
func want(t *testing.T, rec map[string]any, fields map[string]any) {
	t.Helper()
	for k, v := range fields {
		got, ok := rec[k]
		if !ok {
			t.Errorf("%s record lacks %q: %v", rec["event"], k, rec)
			continue
		}
		if n, isInt := v.(int); isInt {
			v = float64(n)
		}
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(v)
		if !bytes.Equal(gj, wj) {
			t.Errorf("%s record: %s = %s, want %s", rec["event"], k, gj, wj)
		}
	}
}
