package proxy

// The transcript runner: it starts popgate and the backend as a
// transcript's headers say, runs the client's and the backend's scripts
// concurrently, and checks what is left when both are done
// (transcript_test.go describes the format).

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
)

// transcriptRun is one run of a transcript.
type transcriptRun struct {
	t  *testing.T
	tr *transcript

	deadline time.Time
	srv      *Server
	be       *scriptBackend
	auditLog string
	closers  []io.Closer
	ended    chan sessionReport

	failOnce sync.Once
	failed   chan struct{} // closed at the first failure
	err      error

	marks map[string]chan struct{}

	mu        sync.Mutex
	log       []string // the conversation as it happened
	timestamp string   // the last APOP timestamp the client read

	clientConn net.Conn
	conns      []*transcriptConn // backend connections the script took
}

// transcriptConn is a backend connection a backend script took.
type transcriptConn struct {
	*scriptConn
	over bool // closed, or read to its end, by the script
}

// sessionReport is what an Observer saw at the end of the session.
type sessionReport struct {
	login filters.Login
	end   filters.SessionEnd
}

// runTranscript runs the transcript src; name is for messages. The error
// it returns shows the conversation and popgate's log.
func runTranscript(t *testing.T, name, src string) error {
	t.Helper()
	tr, err := parseTranscript(name, src)
	if err != nil {
		return err
	}
	return tr.run(t)
}

// run runs the transcript.
func (tr *transcript) run(t *testing.T) error {
	t.Helper()
	r := &transcriptRun{t: t, tr: tr, failed: make(chan struct{}), marks: map[string]chan struct{}{},
		ended: make(chan sessionReport, 1)}
	for m := range tr.marks {
		r.marks[m] = make(chan struct{})
	}
	var logs lockedBuffer
	r.start(&logs)
	r.deadline = time.Now().Add(tr.timeout)

	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		if err := r.runClient(); err != nil {
			r.fail(err)
		}
	}()
	go func() {
		defer wg.Done()
		if err := r.runBackend(); err != nil {
			r.fail(err)
		}
	}()
	wg.Wait()
	if r.err == nil {
		r.checkEnd()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	r.srv.Shutdown(ctx)
	cancel()
	if r.err == nil {
		r.checkLeftovers()
	}
	for _, c := range r.closers {
		c.Close()
	}
	if r.err == nil {
		r.checkAudit()
	}
	if r.err != nil {
		r.mu.Lock()
		conv := r.log
		r.mu.Unlock()
		if len(conv) > 300 {
			conv = append([]string{fmt.Sprintf("... %d earlier lines", len(conv)-300)}, conv[len(conv)-300:]...)
		}
		return fmt.Errorf("%w\n\nthe conversation:\n  %s\n\npopgate's log:\n%s", r.err, strings.Join(conv, "\n  "), logs.String())
	}
	return nil
}

// lockedBuffer is popgate's log output.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start starts the backend and popgate as the header says.
func (r *transcriptRun) start(logs io.Writer) {
	t, tr := r.t, r.tr
	r.be = newScriptBackend(t, nil)
	addr := r.be.addr()
	if tr.backendDown {
		addr = deadAddr(t)
	}
	be := tr.backend
	be.Name, be.Address, be.ConnectTimeout = "b", addr, 2*time.Second
	lst := Listener{Name: "transcript", Address: "127.0.0.1:0", Backend: "b", Connect: tr.connect,
		TLS: tr.tls, RequireTLS: tr.requireTLS, Limits: tr.limits}
	for _, spec := range tr.filters {
		f, err := r.newFilter(spec)
		if err != nil {
			t.Fatalf("%s: filter %q: %v", tr.name, strings.Join(spec, " "), err)
		}
		lst.Filters = append(lst.Filters, f)
	}
	if len(tr.ends) > 0 {
		lst.Filters = append(lst.Filters, &endObserver{ended: r.ended})
	}
	cfg := &Config{Listeners: []Listener{lst}, Backends: map[string]*Backend{"b": &be}}
	if tr.tls != TLSNone {
		cfg.ServerTLS = testTLSConfig(t)
	}
	r.srv = New(hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}))
	if err := r.srv.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.srv.Shutdown(ctx)
	})
}

// deadAddr returns a loopback address where nothing listens, and nothing
// will while the test runs: the port stays bound to a socket that never
// listens, so connecting is refused at once.
func deadAddr(t *testing.T) string {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
}

// fail records the first failure and unblocks both scripts.
func (r *transcriptRun) fail(err error) {
	r.failOnce.Do(func() {
		r.err = err
		close(r.failed)
		r.mu.Lock()
		if r.clientConn != nil {
			r.clientConn.Close()
		}
		for _, c := range r.conns {
			c.c.Close()
		}
		r.mu.Unlock()
	})
}

// isFailed reports whether the transcript has failed.
func (r *transcriptRun) isFailed() bool {
	select {
	case <-r.failed:
		return true
	default:
		return false
	}
}

// note adds to the conversation log.
func (r *transcriptRun) note(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// stepErr is a failure of step s.
func (r *transcriptRun) stepErr(s step, format string, args ...any) error {
	return fmt.Errorf("%s:%d: %s %s: %s", r.tr.name, s.line, s.op, s.text, fmt.Sprintf(format, args...))
}

// wait waits for ch until the deadline or a failure elsewhere.
func (r *transcriptRun) wait(ch <-chan struct{}) error {
	timer := time.NewTimer(time.Until(r.deadline))
	defer timer.Stop()
	select {
	case <-ch:
		return nil
	case <-timer.C:
		return errors.New("deadline passed")
	case <-r.failed:
		return errors.New("the other script failed")
	}
}

// runClient runs the client's script.
func (r *transcriptRun) runClient() error {
	addr := r.srv.Addr("transcript").String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: dial popgate: %v", r.tr.name, err)
	}
	if r.tr.tls == TLSImplicit {
		conn = tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
	}
	conn.SetDeadline(r.deadline)
	r.mu.Lock()
	r.clientConn = conn
	r.mu.Unlock()
	if r.isFailed() {
		conn.Close()
	}
	p := &peer{actor: 'C', conn: conn, r: bufio.NewReader(conn)}
	for _, s := range r.tr.client {
		known, err := r.do(p, s)
		if err != nil {
			return err
		}
		if known {
			continue
		}
		switch s.text {
		case "half-close":
			r.note("C! half-close")
			tc, _ := tcpConn(p.conn)
			tc.CloseWrite()
		case "starttls":
			if p.r.Buffered() > 0 {
				return r.stepErr(s, "popgate sent more in plaintext after +OK")
			}
			tc := tls.Client(p.conn, &tls.Config{InsecureSkipVerify: true})
			if err := tc.Handshake(); err != nil {
				return r.stepErr(s, "TLS handshake: %v", err)
			}
			r.note("C! starttls")
			p.conn, p.r = tc, bufio.NewReader(tc)
			r.mu.Lock()
			r.clientConn = tc
			r.mu.Unlock()
		}
	}
	r.flush(p)
	if n, _ := pending(p.r, p.conn); n {
		got, _ := p.r.Peek(p.r.Buffered())
		return fmt.Errorf("%s: at the end of the client's script, popgate sent more: %q", r.tr.name, got)
	}
	p.conn.Close()
	return nil
}

// runBackend runs the backend's script.
func (r *transcriptRun) runBackend() error {
	p := &peer{actor: 'B'}
	var cur *transcriptConn
	accept := func(s step) error {
		r.flush(p)
		timer := time.NewTimer(time.Until(r.deadline))
		defer timer.Stop()
		select {
		case bc := <-r.be.accepted:
			cur = &transcriptConn{scriptConn: bc}
			bc.c.SetDeadline(r.deadline)
			r.mu.Lock()
			r.conns = append(r.conns, cur)
			r.mu.Unlock()
			if r.isFailed() {
				bc.c.Close()
			}
			p.conn, p.r = bc.c, bc.r
			r.note("B! accept")
			return nil
		case <-timer.C:
			return r.stepErr(s, "popgate did not connect to the backend")
		case <-r.failed:
			return r.stepErr(s, "the other script failed")
		}
	}
	for i, s := range r.tr.backendSteps {
		if s.op == "B!" && s.text == "accept" || i == 0 {
			if err := accept(s); err != nil {
				return err
			}
			if s.op == "B!" && s.text == "accept" {
				continue
			}
		}
		known, err := r.do(p, s)
		if err != nil {
			return err
		}
		switch {
		case s.op != "B!":
		case s.text == "eof" || s.text == "close" || s.text == "reset":
			cur.over = true
		case !known:
			return r.stepErr(s, "unknown directive")
		}
	}
	r.flush(p)
	return nil
}

// checkEnd checks the session's report against the S< steps.
func (r *transcriptRun) checkEnd() {
	if len(r.tr.ends) == 0 {
		return
	}
	timer := time.NewTimer(time.Until(r.deadline))
	defer timer.Stop()
	var rep sessionReport
	select {
	case rep = <-r.ended:
	case <-timer.C:
		r.fail(r.stepErr(r.tr.ends[0], "the session did not end"))
		return
	}
	got := map[string]string{
		"reason": rep.end.Reason, "committed": strconv.FormatBool(rep.end.Committed),
		"deletes": strconv.Itoa(rep.end.DeletesMarked), "user": rep.login.User,
		"backend_user": rep.login.BackendUser, "mechanism": rep.login.Mechanism, "backend": rep.login.Backend,
	}
	for _, s := range r.tr.ends {
		for _, kv := range strings.Fields(s.text) {
			k, want, _ := strings.Cut(kv, "=")
			v, ok := got[k]
			if !ok {
				r.fail(r.stepErr(s, "unknown key %q", k))
				return
			}
			if v != want {
				r.fail(r.stepErr(s, "%s is %q, want %q (report: %v)", k, v, want, got))
				return
			}
		}
	}
}

// checkLeftovers fails on anything popgate sent the backend that no step
// read, and on backend connections no step took. The server has shut
// down, so every connection reads to its end at once.
func (r *transcriptRun) checkLeftovers() {
	for _, c := range r.conns {
		if c.over {
			continue
		}
		c.c.SetDeadline(time.Now().Add(5 * time.Second))
		rest, err := io.ReadAll(c.r)
		if len(rest) > 0 {
			r.fail(fmt.Errorf("%s: popgate sent the backend %q, which the script does not expect", r.tr.name, rest))
			return
		}
		if err != nil && !isReset(err) {
			r.fail(fmt.Errorf("%s: a backend connection did not end with the session: %v", r.tr.name, err))
			return
		}
	}
	select {
	case bc := <-r.be.accepted:
		first, _ := bc.r.Peek(1)
		r.fail(fmt.Errorf("%s: popgate made a backend connection the script does not expect (first octets %q)", r.tr.name, first))
	default:
	}
}

// checkAudit checks the audit trail against the A< steps: each names a
// record after the one the previous step matched.
func (r *transcriptRun) checkAudit() {
	if len(r.tr.audit) == 0 {
		return
	}
	if r.auditLog == "" {
		r.fail(r.stepErr(r.tr.audit[0], "no audit filter"))
		return
	}
	data, err := os.ReadFile(r.auditLog)
	if err != nil {
		r.fail(err)
		return
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	next := 0
	for _, s := range r.tr.audit {
		found := false
		for next < len(lines) && !found {
			var rec map[string]any
			if err := json.Unmarshal([]byte(lines[next]), &rec); err != nil {
				r.fail(fmt.Errorf("%s: audit record %q: %v", r.tr.name, lines[next], err))
				return
			}
			next++
			found = recordMatches(rec, s.text)
		}
		if !found {
			r.fail(r.stepErr(s, "no such audit record (in order); the trail:\n%s", data))
			return
		}
	}
}

// recordMatches reports whether rec has every key=value of fields.
func recordMatches(rec map[string]any, fields string) bool {
	for _, kv := range strings.Fields(fields) {
		k, want, _ := strings.Cut(kv, "=")
		v, ok := rec[k]
		if !ok || fmt.Sprint(v) != want {
			return false
		}
	}
	return true
}
