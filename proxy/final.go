package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// final is the innermost handler of every chain: before login in
// after-auth mode it plays the POP3 server, otherwise it relays to the
// backend.
func (s *session) final(ctx context.Context, ex *filters.Exchange) error {
	if s.info.State() == filters.Authorization && s.lst.Connect == ConnectAfterAuth {
		return s.serveAuthorization(ctx, ex)
	}
	return s.roundTrip(ctx, ex)
}

// roundTrip sends ex.Out to the backend in FIFO order and reads its answer.
func (s *session) roundTrip(ctx context.Context, ex *filters.Exchange) error {
	r, _ := ctx.Value(runKey{}).(*run)
	if r == nil {
		return errors.New("proxy: exchange outside a session run")
	}
	if r.calls > 0 && !r.exclusive {
		return fmt.Errorf("proxy: a filter called the backend twice for pipelined %s; it must implement filters.Exclusive", ex.Command.Verb)
	}
	r.calls++
	be := s.be
	if be == nil {
		return parser.NewError(parser.CodeSysTemp, "not connected to a backend", nil)
	}
	var sasl *passthroughSASL
	if s.info.State() == filters.Authorization {
		switch {
		case ex.Out.Verb == "AUTH" && len(ex.Out.Args) > 0:
			l := &s.info.Login
			*l = filters.Login{Mechanism: saslMechanism(ex.Out.Arg(0)), Backend: l.Backend}
			sasl = &passthroughSASL{s: s, mech: strings.ToUpper(ex.Out.Arg(0))}
			if len(ex.Out.Args) > 1 {
				args := append([]string(nil), ex.Out.Args...)
				args[1] = sasl.step(args[1])
				ex.Out.Args = args
				s.chargeLogin()
			}
		case ex.Out.Verb == "PASS" || ex.Out.Verb == "APOP":
			if ex.Out.Verb == "APOP" {
				s.info.Login = filters.Login{User: ex.Command.Arg(0), BackendUser: ex.Out.Arg(0), Mechanism: "apop", Backend: s.info.Login.Backend}
			}
			s.chargeLogin()
		}
	}
	r.acquireSend()
	if ex.Out.Verb == "QUIT" {
		// QUIT commits deletions: send it only once every earlier answer
		// has gone out and the session is still alive (max_errors or a
		// failed body may close it first). Flush what earlier pipelined
		// commands left in the buffer, or their answers never come.
		if be.w.Buffered() > 0 {
			if err := be.w.Flush(); err != nil {
				return fmt.Errorf("backend write: %w", err)
			}
		}
		if !r.acquireOut() {
			return context.Canceled
		}
	}
	if err := be.w.WriteCommand(ex.Out); err != nil {
		if errors.Is(err, parser.ErrBadLine) || errors.Is(err, parser.ErrBadCommand) {
			// A filter produced a command that cannot be sent as is;
			// nothing was written.
			return parser.NewError("", "command refused", err)
		}
		return fmt.Errorf("backend write: %w", err)
	}
	if err := r.flushBackend(); err != nil {
		return err
	}
	if !r.exclusive {
		r.releaseSend()
	}
	if !r.acquireOut() {
		return context.Canceled
	}
	resp, err := be.r.ReadResponse()
	if err != nil {
		return fmt.Errorf("backend read: %w", err)
	}
	for resp.Status == parser.StatusContinue {
		if ex.Prompt == nil || ex.Out.Verb != "AUTH" {
			return fmt.Errorf("backend sent a continuation to %s", ex.Out.Verb)
		}
		line, perr := ex.Prompt(ctx, resp)
		if perr != nil {
			var pe *parser.Error
			if !errors.As(perr, &pe) {
				return perr
			}
			line = "*" // cancel the exchange on the backend too, then report
		}
		if perr == nil && sasl != nil {
			line = sasl.step(line)
			s.chargeLogin()
		}
		if err := be.w.WriteLine(line); err != nil {
			return fmt.Errorf("backend write: %w", err)
		}
		if err := be.w.Flush(); err != nil {
			return fmt.Errorf("backend write: %w", err)
		}
		if resp, err = be.r.ReadResponse(); err != nil {
			return fmt.Errorf("backend read: %w", err)
		}
		if perr != nil && resp.Status != parser.StatusContinue {
			return perr
		}
	}
	if err := s.attachBody(ex, resp); err != nil {
		return err
	}
	if s.info.State() == filters.Authorization {
		s.trackPassthroughLogin(ex)
	}
	return nil
}

// trackPassthroughLogin follows a login that the client makes directly
// with the backend (on-accept mode).
func (s *session) trackPassthroughLogin(ex *filters.Exchange) {
	l := &s.info.Login
	switch ex.Out.Verb {
	case "USER":
		*l = filters.Login{User: ex.Command.Arg(0), BackendUser: ex.Out.Arg(0), Mechanism: "user", Backend: l.Backend}
	case "APOP", "AUTH":
		// Login was set up before the exchange (see roundTrip).
	case "PASS":
		l.Mechanism = "user"
	default:
		return
	}
	if ex.Out.Verb != "USER" && ex.Response.IsOK() && !(ex.Out.Verb == "AUTH" && len(ex.Out.Args) == 0) {
		s.prove(byBackend)
		s.info.SetState(filters.Transaction)
	}
}

// maxSASLLine bounds a SASL continuation line, in octets with CRLF: room
// for OAUTHBEARER tokens and Kerberos tickets.
const maxSASLLine = 12288

// errClient marks a failure of the client connection itself, so the
// session ends quietly as "client-closed" instead of blaming the backend.
var errClient = errors.New("client connection failed")

// prompt sends a SASL continuation and returns the client's answer: a
// base64 string, "=" or "*".
func (s *session) prompt(ctx context.Context, challenge parser.Response) (string, error) {
	if err := s.writer().WriteResponse(challenge); err != nil {
		return "", fmt.Errorf("%w: write: %w", errClient, err)
	}
	if err := s.flush(); err != nil {
		return "", fmt.Errorf("%w: write: %w", errClient, err)
	}
	// RFC 5034 section 4: a response too long for the command line is
	// sent as a continuation, so continuation lines get a larger bound.
	max := s.cr.MaxLine
	s.cr.MaxLine = maxSASLLine
	line, err := s.cr.ReadLine()
	s.cr.MaxLine = max
	if err != nil {
		if errors.Is(err, parser.ErrBadLine) || errors.Is(err, parser.ErrLineTooLong) {
			return "", parser.NewError("", "malformed SASL response", err)
		}
		return "", fmt.Errorf("%w: read: %w", errClient, err)
	}
	str := string(line)
	if str == "*" {
		return "", parser.NewError("", "authentication cancelled", nil)
	}
	if !isBase64(str) {
		return "", parser.NewError("", "malformed base64 in SASL response", nil)
	}
	return str, nil
}

func isBase64(s string) bool {
	if s == "=" {
		return true
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// maxCapaBytes bounds a backend's CAPA list.
const maxCapaBytes = 16 * 1024

// filterCapa reads the backend's CAPA body and keeps what a client can
// really use through popgate (RFC 2449 section 6).
func (s *session) filterCapa(body io.Reader) (*bytes.Reader, error) {
	raw, err := io.ReadAll(io.LimitReader(body, maxCapaBytes+1))
	if err != nil {
		return nil, fmt.Errorf("backend CAPA: %w", err)
	}
	if len(raw) > maxCapaBytes {
		return nil, errors.New("backend CAPA list too long")
	}
	auth := s.info.State() == filters.Authorization
	var out bytes.Buffer
	for _, line := range strings.Split(string(raw), "\r\n") {
		name, _, _ := strings.Cut(line, " ")
		switch strings.ToUpper(name) {
		case "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE", "LOGIN-DELAY":
			out.WriteString(line + "\r\n")
		case "USER", "SASL":
			if auth && !s.needTLS() {
				out.WriteString(line + "\r\n")
			}
		}
	}
	if auth && s.lst.TLS == TLSStartTLS && s.info.TLS == nil {
		out.WriteString("STLS\r\n")
	}
	return bytes.NewReader(out.Bytes()), nil
}
