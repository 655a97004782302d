package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// answer is what the fake backend replies to one command.
type answer struct {
	resp parser.Response
	body string
	err  error
}

// backend is a fake innermost handler: it records every command it is sent
// and answers from a function.
type backend struct {
	mu     sync.Mutex
	sent   []string
	answer func(cmd parser.Command) answer
}

func (b *backend) Serve(_ context.Context, ex *filters.Exchange) error {
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

// run serves one command through the filter and reads any body to its
// end, as the session would; it returns the body read.
func run(t *testing.T, h filters.Handler, s *filters.Session, line string) (parser.Response, string, error) {
	t.Helper()
	resp, body, err := serveLine(h, s, line)
	if errors.Is(err, errHarness) {
		t.Fatal(err)
	}
	return resp, body, err
}

// errHarness marks failures of the test harness itself.
var errHarness = errors.New("harness")

// serveLine is run for goroutines other than the test's.
func serveLine(h filters.Handler, s *filters.Session, line string) (parser.Response, string, error) {
	cmd, err := parser.ParseCommand([]byte(line))
	if err != nil {
		return parser.Response{}, "", fmt.Errorf("%w: parse %q: %w", errHarness, line, err)
	}
	ex := &filters.Exchange{Session: s, Command: cmd, Out: cmd, Started: time.Now()}
	err = h.Serve(context.Background(), ex)
	var body bytes.Buffer
	if ex.Body != nil {
		if _, rerr := body.ReadFrom(ex.Body); rerr != nil {
			return ex.Response, "", fmt.Errorf("%w: %s: read body: %w", errHarness, line, rerr)
		}
	}
	return ex.Response, body.String(), err
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
