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

// An exchange is one client command on its way through the session: the
// filters' view of it, and what the session needs to finish it. Every
// exchange takes the same path, whether or not the listener has filters
// and whether it is pipelined or runs alone:
//
//  1. start (reading goroutine): the Command side of the chain, then the
//     command goes to the backend, or to popgate's own AUTHORIZATION
//     server, or is answered locally;
//  2. complete (answer goroutine, or the reading goroutine for an exchange
//     that runs alone): the backend's answer is read, the Response side
//     runs, the answer goes to the client, the session's counters and the
//     Finishers are updated.
type exchange struct {
	ex filters.Exchange

	refused bool  // answered by the session's own checks: a client protocol error
	sent    bool  // ex.Out went to the backend: its answer must be read
	seen    int   // filters whose Command side saw the exchange
	err     error // the Command side or the send failed
	alone   bool  // runs with nothing else in flight (AUTHORIZATION, QUIT, Exclusive)
	stuffed bool  // Body is still dot-stuffed: written as it is on the wire
	wrote   bool  // some of the answer reached the client writer
}

// newExchange makes the exchange of cmd.
func (s *session) newExchange(cmd parser.Command) *exchange {
	x := &exchange{ex: filters.Exchange{
		Session: s.info,
		Command: cmd,
		Out:     cmd,
	}}
	if len(cmd.Args) > 0 && len(s.lst.Filters) > 0 {
		// Filters may edit Out's arguments in place: give them their own.
		x.ex.Out.Args = append([]string(nil), cmd.Args...)
	}
	if len(s.lst.Filters) > 0 {
		x.ex.Started = time.Now()
	}
	if cmd.Verb == "AUTH" {
		x.ex.Prompt = s.prompt
	}
	return x
}

// start runs the first half of x on the reading goroutine: the Command
// side of the chain, then the send. A failure is kept in x.err and
// answered in order by complete.
func (s *session) start(x *exchange) {
	ex := &x.ex
	if x.alone {
		ex.Backend = (*filterBackend)(s)
	}
	n, err := s.chain.Command(s.ctx, ex)
	ex.Backend = nil
	x.seen = n
	if err == nil {
		err = s.drainCall()
	}
	switch {
	case err != nil:
		x.err = err
	case ex.Response.Status != 0:
		// A filter answered.
	case s.info.State() == filters.Authorization && s.lst.Connect == ConnectAfterAuth:
		x.err = s.serveAuthorization(s.ctx, ex)
	default:
		x.err = s.send(x)
	}
	if ex.Response.Status != 0 && s.info.State() == filters.Authorization {
		s.recordRefusedLogin(ex)
	}
}

// recordRefusedLogin records who tried to log in when a filter answered a
// login command itself (a wrong APOP or CRAM-MD5 digest), so the log, the
// audit trail and the throttle name the user.
func (s *session) recordRefusedLogin(ex *filters.Exchange) {
	backend := s.info.Login.Backend
	switch {
	case ex.Command.Verb == "APOP":
		s.info.Login = filters.Login{User: ex.Command.Arg(0), BackendUser: ex.Command.Arg(0), Mechanism: "apop", Backend: backend}
	case ex.Command.Verb == "AUTH" && len(ex.Command.Args) > 0:
		s.info.Login = filters.Login{User: ex.User, BackendUser: ex.User, Mechanism: saslMechanism(ex.Command.Arg(0)), Backend: backend}
	}
}

// send writes ex.Out to the backend. The backend writer is flushed at the
// end of a burst (queue) or at once for an exchange that runs alone.
func (s *session) send(x *exchange) error {
	be, ex := s.be, &x.ex
	if be == nil {
		return parser.NewError(parser.CodeSysTemp, "not connected to a backend", nil)
	}
	if s.info.State() == filters.Authorization {
		if s.passthroughBlocked(ex) {
			return errBlocked() // the credentials never leave popgate
		}
		s.trackLoginCommand(x)
	}
	if err := be.w.WriteCommand(ex.Out); err != nil {
		if errors.Is(err, parser.ErrBadLine) || errors.Is(err, parser.ErrBadCommand) {
			// A filter produced a command that cannot be sent as is;
			// nothing was written.
			return parser.NewError("", "command refused", err)
		}
		return fmt.Errorf("backend write: %w", err)
	}
	x.sent = true
	if x.alone {
		if err := be.w.Flush(); err != nil {
			return fmt.Errorf("backend write: %w", err)
		}
	}
	return nil
}

// complete runs the second half of x: the backend's answer, the Response
// side, the answer to the client, the session's bookkeeping. It runs on
// the goroutine that owns the client writer and the backend reader.
func (s *session) complete(x *exchange) {
	defer s.exchangeDone(x)
	defer s.closeBody(x)
	if err := s.ctx.Err(); err != nil {
		s.finishExchange(x, err) // the session is over: nothing more goes out
		return
	}
	err := x.err
	if err == nil && x.sent {
		err = s.receive(x)
	}
	if err == nil && !x.refused {
		err = s.chain.Response(s.ctx, &x.ex, x.seen)
	}
	if err != nil && !s.answerFailure(x, err) {
		s.finishExchange(x, err)
		return
	}
	refusal := err // answered as -ERR: the Finishers still learn why
	if d := s.loginDelay(x); d > 0 {
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
	if err := s.output(x); err != nil {
		if errors.Is(err, errBodySource) {
			s.log.Warn("message body failed midway; closing the client connection without the terminating dot",
				"command", x.ex.Command.Verb, "error", err)
			s.abort("backend-error")
		} else {
			s.log.Info("session closed while writing a response", "command", x.ex.Command.Verb, "error", err)
			s.dropUnsent()
			s.abort("write-error")
		}
		s.finishExchange(x, err)
		return
	}
	s.after(x)
	s.finishExchange(x, refusal)
}

// answerFailure turns what went wrong in an exchange into the answer the
// client gets. It is the one place errors become "-ERR [CODE] text": a
// *parser.Error is answered and the session goes on; a client that went
// away, or a backend that failed, ends the session (false).
func (s *session) answerFailure(x *exchange, err error) bool {
	var pe *parser.Error
	switch {
	case errors.Is(err, errClient):
		s.log.Debug("client went away during an exchange", "command", x.ex.Command.Verb, "error", err)
		s.abort("client-closed")
		return false
	case errors.As(err, &pe):
		s.log.Debug("command refused", "command", x.ex.Command.Redacted(), "error", err)
		s.closeBody(x)
		x.ex.Response = pe.Response()
		return true
	default:
		s.log.Warn("exchange failed; closing session", "command", x.ex.Command.Redacted(), "error", err)
		if !x.wrote {
			s.writeFinal(parser.Err(parser.CodeSysTemp, "backend connection lost, try again later"))
		}
		s.abort("backend-error")
		return false
	}
}

// finishExchange tells the Finishers and the metrics that x is over.
func (s *session) finishExchange(x *exchange, err error) {
	if x.refused {
		return
	}
	x.ex.Err = err
	s.chain.Finish(&x.ex)
	if v := x.ex.Verdict; v != nil {
		if h := s.cfg.Hooks.Verdict; h != nil {
			h(s.lst.Name, v)
		}
	}
}

// receive reads the backend's answer to x and attaches its body. A SASL
// continuation is relayed to the client, which only an exchange that runs
// alone may do (AUTH in AUTHORIZATION always does).
func (s *session) receive(x *exchange) error {
	be, ex := s.be, &x.ex
	resp, err := be.r.ReadResponse()
	if err != nil {
		return fmt.Errorf("backend read: %w", err)
	}
	if resp.Status == parser.StatusContinue {
		if resp, err = s.relaySASL(x, resp); err != nil {
			return err
		}
	}
	ex.Response = resp
	if parser.HasBody(ex.Out, resp) {
		switch {
		case ex.Out.Verb == "CAPA":
			body, err := s.filterCapa(be.r.DotReader())
			if err != nil {
				return err
			}
			ex.Body = body
		case s.chain.HasResponseSide():
			ex.Body = be.r.DotReader()
		default:
			// Nothing looks inside: pass the body on as it is on the
			// wire, still dot-stuffed, with no decoding and re-encoding.
			ex.Body = be.r.StuffedReader()
			x.stuffed = true
		}
	}
	if s.info.State() == filters.Authorization {
		s.trackPassthroughLogin(ex)
	}
	return nil
}

// output writes x's answer and body to the client. A body that fails
// midway returns an error before the terminating dot is written; the
// caller then closes the connection. The client writer is flushed at the
// end of a burst: when no other answer waits in the FIFO, or the backend
// has nothing more buffered (the next read may block).
func (s *session) output(x *exchange) error {
	ex := &x.ex
	x.wrote = true
	w := s.writer()
	if err := w.WriteResponse(ex.Response); err != nil {
		return fmt.Errorf("client write: %w", err)
	}
	if ex.Body != nil && ex.Response.IsOK() {
		body := w.DotWriter
		if x.stuffed {
			body = w.StuffedWriter
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
		if err := tw.w.(io.WriteCloser).Close(); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
	}
	s.closeBody(x)
	s.exchangeDone(x) // before the client can see the answer
	if x.alone || len(s.fifo) == 0 || s.be == nil || s.be.r.Buffered() == 0 {
		s.chain.Flush(s.info) // what filters hold of the burst goes first (audit records)
		if err := s.flush(); err != nil {
			return fmt.Errorf("client write: %w", err)
		}
		s.lastAnswer.Store(time.Now().UnixNano())
	}
	return nil
}

// flushHeld sends what the client writer holds before the session may
// block reading the backend, so an answer popgate already has is never
// held back while it waits for the next one (a DELE's +OK behind a slow
// RETR body). The backend reader calls it; whoever reads the backend owns
// the client writer too. The buffer stays attached: a body writer may be
// using it. A write error comes back at the next write.
func (s *session) flushHeld() {
	if bw := s.cw.W; bw != nil && bw.Buffered() > 0 {
		s.chain.Flush(s.info)
		if bw.Flush() == nil {
			s.lastAnswer.Store(time.Now().UnixNano())
		}
	}
}

// closeBody closes and forgets the exchange's body; what the backend still
// owes of it is drained by the parser's reader before the next answer.
func (s *session) closeBody(x *exchange) {
	if c, ok := x.ex.Body.(io.Closer); ok {
		c.Close()
	}
	x.ex.Body = nil
}

// after updates the session once an exchange's answer went out.
func (s *session) after(x *exchange) {
	cmd, resp := x.ex.Command, x.ex.Response
	if h := s.cfg.Hooks.Command; h != nil {
		h(cmd.Verb, resp.Status.String())
	}
	// max_errors counts only the client's own protocol errors: a line
	// that does not parse, an unknown command, bad arguments, a command in
	// the wrong state; popgate answers all of them itself (refused). A
	// -ERR from the backend or a filter (no such message, a policy
	// refusal, a scanner that is down) is not the client's fault and must
	// never end a session whose DELEs are still to be committed.
	switch {
	case x.refused && resp.Status == parser.StatusErr:
		s.tally.consecutiveErrs++
	case resp.Status != parser.StatusErr:
		s.tally.consecutiveErrs = 0
	}
	switch cmd.Verb {
	case "PASS", "APOP", "AUTH":
		if x.refused || len(cmd.Args) == 0 && cmd.Verb == "AUTH" {
			break
		}
		if s.info.State() == filters.Transaction && resp.IsOK() {
			s.publish()
			s.log.Info("login", "user", s.info.Login.User, "backend_user", s.info.Login.BackendUser,
				"backend", s.info.Login.Backend, "server", s.be.addr, "mechanism", s.info.Login.Mechanism)
			if h := s.cfg.Hooks.Login; h != nil {
				h(s.lst.Name, s.info.Login.Mechanism, "ok")
			}
		} else if resp.Status == parser.StatusErr && isAuthFailure(resp) {
			s.tally.authFails++
			s.log.Info("login failed", "user", s.info.Login.User, "code", resp.Code)
			if h := s.cfg.Hooks.Login; h != nil {
				h(s.lst.Name, s.info.Login.Mechanism, "fail")
			}
		}
	case "DELE":
		if resp.IsOK() {
			s.tally.deletesMarked++
		}
	case "RSET":
		if resp.IsOK() {
			s.tally.deletesMarked = 0
		}
	case "QUIT":
		s.quitting.Store(true)
		s.setReason("quit")
		if resp.IsOK() && s.info.State() == filters.Transaction && !x.refused {
			s.tally.committed = true
			s.info.SetState(filters.Update)
		}
	}
	switch {
	case s.tally.authFails >= s.limits.MaxAuthTries:
		s.writeFinal(parser.Err(parser.CodeAuth, "too many failed logins, closing"))
		s.abort("too-many-auth-failures")
	case s.tally.consecutiveErrs >= s.limits.MaxErrors:
		s.writeFinal(parser.Err("", "too many errors, closing"))
		s.abort("too-many-errors")
	}
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

// filterBackend is the session as a filters.Backend: a filter's extra
// round trips during an exchange that runs alone.
type filterBackend session

// Call sends cmd to what answers the exchange and returns the answer. It
// goes around the chain: no filter sees it.
func (b *filterBackend) Call(ctx context.Context, cmd parser.Command) (parser.Response, io.Reader, error) {
	s := (*session)(b)
	if err := s.drainCall(); err != nil {
		return parser.Response{}, nil, err
	}
	ex := &filters.Exchange{Session: s.info, Command: cmd, Out: cmd}
	if s.info.State() == filters.Authorization && s.lst.Connect == ConnectAfterAuth {
		if err := s.serveAuthorization(ctx, ex); err != nil {
			return parser.Response{}, nil, err
		}
		s.auth.callBody = ex.Body
		return ex.Response, ex.Body, nil
	}
	be := s.be
	if be == nil {
		return parser.Response{}, nil, parser.NewError(parser.CodeSysTemp, "not connected to a backend", nil)
	}
	resp, err := be.cmd(cmd)
	if err != nil {
		return parser.Response{}, nil, fmt.Errorf("backend %s: %w", cmd.Verb, err)
	}
	if parser.HasBody(cmd, resp) {
		s.auth.callBody = be.r.DotReader()
	}
	return resp, s.auth.callBody, nil
}

// drainCall reads what is left of the body of a filter's last Backend
// call, so the backend's next answer is read from the right place.
func (s *session) drainCall() error {
	body := s.auth.callBody
	if body == nil {
		return nil
	}
	s.auth.callBody = nil
	if _, err := io.Copy(io.Discard, body); err != nil {
		return fmt.Errorf("backend read: %w", err)
	}
	return nil
}
