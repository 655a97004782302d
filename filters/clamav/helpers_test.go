package clamav

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
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

// answer is the backend's part of an exchange: resp and, when resp has
// one, the body as a DotReader over the wire, so that tests see how far
// the filter read it.
func (b *backend) answer(ex *filters.Exchange, resp parser.Response) {
	ex.Response = resp
	if parser.HasBody(ex.Out, resp) {
		b.body = b.pr.DotReader()
		ex.Body = b.body
	}
}

// run runs ex through c as the session does (filtertest.Run does the
// same with a body held in a string): Exclusive, the Command side, then,
// unless a filter answered, be's answer resp, then the Response side.
// The filter makes no extra round trips, so an exclusive exchange gets a
// Backend that fails every Call.
func runChain(ctx context.Context, c *filters.Chain, ex *filters.Exchange, resp parser.Response, be *backend) error {
	if c.Exclusive(ex) {
		ex.Backend = noCalls{}
	}
	n, err := c.Command(ctx, ex)
	ex.Backend = nil
	if err != nil {
		return err
	}
	if ex.Response.Status == 0 {
		be.answer(ex, resp)
	}
	return c.Response(ctx, ex, n)
}

// noCalls is the Backend of an exclusive exchange in these tests.
type noCalls struct{}

func (noCalls) Call(context.Context, parser.Command) (parser.Response, io.Reader, error) {
	return parser.Response{}, nil, errors.New("clamav makes no extra backend calls")
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

// verdictOf returns the verdict the filter put on ex, failing the test
// when there is none.
func verdictOf(t *testing.T, ex *filters.Exchange) *filters.Verdict {
	t.Helper()
	if ex.Verdict == nil {
		t.Fatalf("%s: no verdict on the exchange", ex.Command)
	}
	return ex.Verdict
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

// harness runs exchanges through a chain of one clamav filter.
type harness struct {
	f     *Filter
	chain *filters.Chain
	logs  *syncBuffer
}

// newHarness builds the filter from cfg, recording its logs.
func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{logs: &syncBuffer{}}
	if cfg.SpoolDir == "" {
		cfg.SpoolDir = t.TempDir()
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: h.logs, Level: hclog.Debug})
	f, err := New(cfg, logger)
	if err != nil {
		t.Fatal(err)
	}
	h.f, h.chain = f, filters.NewChain(f)
	return h
}

// result is what the client side of an exchange saw.
type result struct {
	ex      *filters.Exchange
	err     error  // from the chain
	body    []byte // Body read to its end, if there was one
	bodyErr error
}

// serve runs cmd through the chain against a backend answering resp and
// its body, in a session of its own, and leaves the Body unread.
func (h *harness) serve(cmd parser.Command, resp parser.Response, be *backend) (*filters.Exchange, error) {
	return h.serveCtx(context.Background(), &filters.Session{ID: "test"}, cmd, resp, be)
}

// serveCtx is serve in session s, with ctx the session's context.
func (h *harness) serveCtx(ctx context.Context, s *filters.Session, cmd parser.Command, resp parser.Response, be *backend) (*filters.Exchange, error) {
	ex := filtertest.Exchange(s, cmd)
	return ex, runChain(ctx, h.chain, ex, resp, be)
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
