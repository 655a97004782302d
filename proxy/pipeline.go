package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// A run is one exchange on its way through the session's FIFO. Exchanges
// pass two batons in the order the client sent their commands: the send
// turn (the right to write to the backend) and the output turn (the right
// to read the backend's next response and to write to the client). A
// pipelined exchange hands the send turn on as soon as its command is
// written, so the next command goes out before this one's answer is in;
// an exclusive exchange keeps it until it is done, so a filter may make
// several round trips without another command interleaving.
type run struct {
	s     *session
	ex    *filters.Exchange
	seq   int64
	local *parser.Response // answer without the chain, when set

	sendPrev, outPrev  <-chan struct{}
	sendDone, outDone  chan struct{}
	haveSend, sendGone bool
	haveOut, outGone   bool

	flushSend bool // this exchange flushes the backend writer after sending
	exclusive bool
	calls     int
	wrote     bool // some output for this exchange reached the client writer
	stuffed   bool // Body is still dot-stuffed (relay path): write it as is
}

type runKey struct{}

// dispatch queues cmd (or a local answer) behind the exchanges in flight
// and starts it. It blocks while the pipeline window is full.
func (s *session) dispatch(cmd parser.Command, local *parser.Response) *run {
	if s.useRelay() {
		return s.dispatchRelay(cmd, local)
	}
	s.window <- struct{}{}
	ex := &filters.Exchange{
		Session: s.info,
		Command: cmd,
		Out:     parser.Command{Verb: cmd.Verb, Args: append([]string(nil), cmd.Args...)},
		Started: time.Now(),
	}
	if cmd.Verb == "AUTH" {
		ex.Prompt = s.prompt
	}
	r := &run{
		s:        s,
		ex:       ex,
		seq:      s.dispatched.Add(1),
		local:    local,
		sendPrev: s.lastSend,
		outPrev:  s.lastOut,
		sendDone: make(chan struct{}),
		outDone:  make(chan struct{}),
	}
	s.lastSend, s.lastOut = r.sendDone, r.outDone
	// The last command of a burst flushes the backend writer; so does one
	// the dispatcher will wait for (QUIT) and one that fills the window.
	r.flushSend = !s.moreBuffered() || len(s.window) == cap(s.window) || cmd.Verb == "QUIT"
	r.exclusive = local == nil && s.isExclusive(cmd)
	s.inflight.Add(1)
	select {
	case s.work <- r: // an idle worker takes it
	default:
		go s.worker(r)
	}
	return r
}

// maxIdleWorkers is how many worker goroutines a session keeps waiting
// for its next command.
const maxIdleWorkers = 1

// worker runs exchanges for a session. A worker is reused for the next
// command, so a session does not pay for a new goroutine (and its stack
// growth) per command; after a pipelined burst the surplus workers exit.
func (s *session) worker(r *run) {
	for {
		r.exec()
		if s.idleWorkers.Add(1) > maxIdleWorkers {
			s.idleWorkers.Add(-1)
			return
		}
		select {
		case r = <-s.work:
			s.idleWorkers.Add(-1)
		case <-s.ctx.Done():
			s.idleWorkers.Add(-1)
			return
		}
	}
}

func (s *session) isExclusive(cmd parser.Command) bool {
	if s.info.State() != filters.Transaction {
		return true
	}
	for _, e := range s.exclusive {
		if e.Exclusive(cmd, s.info) {
			return true
		}
	}
	return false
}

// wait blocks until the exchange has written its output or failed. A
// relayed exchange without its own signal waits for the whole FIFO.
func (r *run) wait() {
	if r.outDone == nil {
		r.s.waitIdle()
		return
	}
	<-r.outDone
}

func (r *run) acquireSend() {
	if !r.haveSend {
		<-r.sendPrev
		r.haveSend = true
	}
}

func (r *run) releaseSend() {
	r.acquireSend()
	if !r.sendGone {
		r.sendGone = true
		close(r.sendDone)
	}
}

// acquireOut waits for the output turn; false means the session is over.
func (r *run) acquireOut() bool {
	if !r.haveOut {
		<-r.outPrev
		r.haveOut = true
	}
	return r.s.ctx.Err() == nil
}

func (r *run) releaseOut() {
	if !r.haveOut {
		<-r.outPrev
		r.haveOut = true
	}
	if !r.outGone {
		r.outGone = true
		close(r.outDone)
	}
}

// flushBackend passes on the flush duty: commands written by earlier
// pipelined exchanges sit in the buffer until the last of a burst flushes.
func (r *run) flushBackend() error {
	be := r.s.be
	if be == nil || !r.flushSend && !r.exclusive || be.w.Buffered() == 0 {
		return nil
	}
	if err := be.w.Flush(); err != nil {
		return fmt.Errorf("backend write: %w", err)
	}
	return nil
}

func (r *run) exec() {
	s := r.s
	defer s.inflight.Done()
	defer func() { <-s.window }()
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("exchange panic", "command", r.ex.Command.Verb, "panic", v)
			s.abort("panic")
		}
		closeBody(r.ex)
		r.releaseSend()
		r.releaseOut()
	}()
	ctx := context.WithValue(s.ctx, runKey{}, r)
	var err error
	if r.local != nil {
		r.ex.Response = *r.local
	} else {
		err = s.chain.Serve(ctx, r.ex)
	}
	if !r.sendGone {
		// Never sent (answered locally, or refused): still pass on the
		// flush duty in order.
		r.acquireSend()
		if ferr := r.flushBackend(); ferr != nil && err == nil {
			err = ferr
		}
		r.releaseSend()
	}
	if !r.acquireOut() {
		return
	}
	if err != nil {
		var pe *parser.Error
		if errors.Is(err, errClient) {
			s.log.Debug("client went away during an exchange", "command", r.ex.Command.Verb, "error", err)
			s.abort("client-closed")
			return
		}
		if !errors.As(err, &pe) {
			s.log.Warn("exchange failed; closing session", "command", r.ex.Command.Redacted(), "error", err)
			if !r.wrote {
				s.writeFinal(parser.Err(parser.CodeSysTemp, "backend connection lost, try again later"))
			}
			s.abort("backend-error")
			return
		}
		s.log.Debug("command refused", "command", r.ex.Command.Redacted(), "error", err)
		closeBody(r.ex)
		r.ex.Response = pe.Response()
	}
	if d := s.loginDelay(r); d > 0 {
		if h := s.cfg.Hooks.Throttled; h != nil {
			h(s.lst.Name, "auth-delay")
		}
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-s.ctx.Done():
			t.Stop()
			return
		}
	}
	s.answer(r, true)
}

// answer writes the exchange's answer to the client and updates the
// session; on failure it ends the session. stamp restarts the inactivity
// timer (the relay does it once per burst).
func (s *session) answer(r *run, stamp bool) {
	if err := s.output(r); err != nil {
		if errors.Is(err, errBodySource) {
			s.log.Warn("message body failed midway; closing the client connection without the terminating dot",
				"command", r.ex.Command.Verb, "error", err)
			s.abort("backend-error")
			return
		}
		s.log.Info("session closed while writing a response", "command", r.ex.Command.Verb, "error", err)
		s.dropUnsent()
		s.abort("write-error")
		return
	}
	if stamp {
		s.lastAnswer.Store(time.Now().UnixNano())
	}
	s.after(r)
}

// isAuthFailure tells a refused login from a server that could not take
// one (RFC 3206: [SYS/TEMP], [SYS/PERM], [IN-USE], [LOGIN-DELAY]).
func isAuthFailure(resp parser.Response) bool {
	switch resp.Code {
	case parser.CodeSysTemp, parser.CodeSysPerm, parser.CodeInUse, parser.CodeLoginDelay:
		return false
	}
	return true
}

// errBodySource marks a body that failed on its reading side.
var errBodySource = errors.New("body source failed")

// errWriter remembers whether a write failed, to tell a client that does
// not read from a body whose source broke.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

// dropUnsent makes the close of a client that stopped reading a reset, so
// the kernel does not keep retrying megabytes of unsent body for minutes.
func (s *session) dropUnsent() {
	if tc, ok := s.tcp.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
}

// closeBody closes and forgets the exchange's body.
func closeBody(ex *filters.Exchange) {
	if c, ok := ex.Body.(io.Closer); ok {
		c.Close()
	}
	ex.Body = nil
}

// output writes the exchange's response and body to the client. A body
// that fails midway returns an error before the terminating dot is
// written; the caller then closes the connection.
func (s *session) output(r *run) error {
	ex := r.ex
	r.wrote = true
	if err := s.writer().WriteResponse(ex.Response); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	if ex.Body != nil && ex.Response.IsOK() {
		body := s.writer().DotWriter
		if r.stuffed {
			body = s.writer().StuffedWriter
		}
		tw := &errWriter{w: body()}
		if _, err := copyBody(tw, ex.Body); err != nil {
			if tw.err == nil {
				// The body's source failed (backend gone, body cut short):
				// not the client's fault.
				return fmt.Errorf("%w: relaying body: %w", errBodySource, err)
			}
			return fmt.Errorf("relaying body: %w", err)
		}
		dw := tw.w.(io.WriteCloser)
		if err := dw.Close(); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
	}
	closeBody(ex)
	if s.info.State() != filters.Transaction || s.dispatched.Load() == r.seq || s.be == nil || s.be.r.Buffered() == 0 {
		if err := s.flush(); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
	}
	return nil
}

// after updates the session once an exchange's answer went out; it runs
// while the exchange holds the output turn.
func (s *session) after(r *run) {
	cmd, resp := r.ex.Command, r.ex.Response
	if h := s.cfg.Hooks.Command; h != nil {
		h(cmd.Verb, resp.Status.String())
	}
	// max_errors counts only the client's own protocol errors: a line
	// that does not parse, an unknown command, bad arguments, a command in
	// the wrong state; popgate answers all of them locally. A -ERR from
	// the backend or a filter (no such message, a policy refusal, a
	// scanner that is down) is not the client's fault and must never end
	// a session whose DELEs are still to be committed.
	switch {
	case r.local != nil && resp.Status == parser.StatusErr:
		s.consecutiveErrs++
	case resp.Status != parser.StatusErr:
		s.consecutiveErrs = 0
	}
	switch cmd.Verb {
	case "PASS", "APOP", "AUTH":
		if r.local != nil || len(cmd.Args) == 0 && cmd.Verb == "AUTH" {
			break
		}
		if s.info.State() == filters.Transaction && resp.IsOK() {
			s.log.Info("login", "user", s.info.Login.User, "backend_user", s.info.Login.BackendUser,
				"backend", s.info.Login.Backend, "mechanism", s.info.Login.Mechanism)
			if h := s.cfg.Hooks.Login; h != nil {
				h(s.lst.Name, s.info.Login.Mechanism, "ok")
			}
		} else if resp.Status == parser.StatusErr && isAuthFailure(resp) {
			s.authFails++
			s.log.Info("login failed", "user", s.info.Login.User, "code", resp.Code)
			if h := s.cfg.Hooks.Login; h != nil {
				h(s.lst.Name, s.info.Login.Mechanism, "fail")
			}
		}
	case "DELE":
		if resp.IsOK() {
			s.deletesMarked++
		}
	case "RSET":
		if resp.IsOK() {
			s.deletesMarked = 0
		}
	case "QUIT":
		s.quitting.Store(true)
		s.setReason("quit")
		if resp.IsOK() && s.info.State() == filters.Transaction && r.local == nil {
			s.committed = true
			s.info.SetState(filters.Update)
		}
	}
	switch {
	case s.authFails >= s.limits.MaxAuthTries:
		s.writeFinal(parser.Err(parser.CodeAuth, "too many failed logins, closing"))
		s.abort("too-many-auth-failures")
	case s.consecutiveErrs >= s.limits.MaxErrors:
		s.writeFinal(parser.Err("", "too many errors, closing"))
		s.abort("too-many-errors")
	}
}
