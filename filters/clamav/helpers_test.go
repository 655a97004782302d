package clamav

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// afterBody is the line the test backend sends after every body, to show
// that the body was consumed exactly up to its terminator.
const afterBody = "+OK next response"

// wire returns msg as a backend sends it after +OK (RFC 1939 section 3):
// lines starting with "." stuffed, then the terminator, then afterBody.
// msg must end in CRLF.
func wire(msg string) string {
	var b strings.Builder
	for _, line := range strings.SplitAfter(msg, "\r\n") {
		if strings.HasPrefix(line, ".") {
			b.WriteByte('.')
		}
		b.WriteString(line)
	}
	b.WriteString(".\r\n" + afterBody + "\r\n")
	return b.String()
}

// backend is the far side of a test exchange: a parser.Reader over a
// byte stream, whose DotReader becomes the Body.
type backend struct {
	pr   *parser.Reader
	body io.Reader
}

// newBackend returns a backend reading src.
func newBackend(src io.Reader) *backend {
	return newBackendSize(src, 64<<10)
}

// newBackendSize returns a backend reading src through a buffer of size
// octets, which bounds each read of the body.
func newBackendSize(src io.Reader, size int) *backend {
	pr := parser.NewReader(bufio.NewReaderSize(src, size), parser.DefaultMaxResponseLine)
	return &backend{pr: pr}
}

// handler answers like a backend: resp and, when resp has one, the body.
func (b *backend) handler(resp parser.Response) filters.Handler {
	return filters.HandlerFunc(func(ctx context.Context, ex *filters.Exchange) error {
		ex.Response = resp
		if parser.HasBody(ex.Out, resp) {
			b.body = b.pr.DotReader()
			ex.Body = b.body
		}
		return nil
	})
}

// assertDrained checks that the backend body was read to its terminator
// and nothing beyond.
func (b *backend) assertDrained(t *testing.T) {
	t.Helper()
	if n, err := b.body.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Errorf("backend body not drained: Read = %d, %v", n, err)
	}
	line, err := b.pr.ReadLine()
	if err != nil || string(line) != afterBody {
		t.Errorf("after the body the backend stream holds %q, %v", line, err)
	}
}

// events collects VerdictEvents.
type events struct {
	mu  sync.Mutex
	evs []VerdictEvent
}

func (e *events) add(_ *filters.Session, ev VerdictEvent) {
	e.mu.Lock()
	e.evs = append(e.evs, ev)
	e.mu.Unlock()
}

// only returns the one event recorded, failing the test otherwise.
func (e *events) only(t *testing.T) VerdictEvent {
	t.Helper()
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.evs) != 1 {
		t.Fatalf("%d verdict events, want 1: %+v", len(e.evs), e.evs)
	}
	return e.evs[0]
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness runs exchanges through a clamav filter.
type harness struct {
	f    *Filter
	evs  *events
	logs *syncBuffer
}

// newHarness builds the filter from cfg, recording verdicts and logs.
func newHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	h := &harness{evs: &events{}, logs: &syncBuffer{}}
	cfg.OnVerdict = h.evs.add
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = t.TempDir()
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: h.logs, Level: hclog.Debug})
	f, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	h.f = f
	return h
}

// result is what the client side of an exchange saw.
type result struct {
	ex      *filters.Exchange
	err     error  // from Serve
	body    []byte // Body read to its end, if there was one
	bodyErr error
}

// serve serves cmd against a backend answering resp and its body.
func (h *harness) serve(cmd parser.Command, resp parser.Response, be *backend) (*filters.Exchange, error) {
	ex := &filters.Exchange{Session: &filters.Session{ID: "test"}, Command: cmd, Out: cmd}
	return ex, h.f.Wrap(be.handler(resp)).Serve(context.Background(), ex)
}

// run serves cmd against a backend answering resp and its body, and
// reads the resulting Body like a session would, closing it after.
func (h *harness) run(t *testing.T, cmd parser.Command, resp parser.Response, be *backend) result {
	t.Helper()
	ex, err := h.serve(cmd, resp, be)
	r := result{ex: ex, err: err}
	if err == nil && ex.Body != nil {
		r.body, r.bodyErr = io.ReadAll(ex.Body)
		if c, ok := ex.Body.(io.Closer); ok {
			if cerr := c.Close(); cerr != nil {
				t.Errorf("closing Body: %v", cerr)
			}
		}
	}
	return r
}

// retr is the command most tests use.
var retr = parser.NewCommand("RETR", "1")
