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

// trackLoginCommand follows a login the client makes with the backend
// itself (on-accept mode) as its command goes out: it records who logs in
// and how, names and rewrites the user of a SASL exchange, and charges the
// attempt to the throttle before the credentials leave popgate.
func (s *session) trackLoginCommand(x *exchange) {
	ex := &x.ex
	switch {
	case ex.Out.Verb == "AUTH" && len(ex.Out.Args) > 0:
		l := &s.info.Login
		*l = filters.Login{Mechanism: saslMechanism(ex.Out.Arg(0)), Backend: l.Backend}
		s.auth.sasl = &passthroughSASL{s: s, mech: strings.ToUpper(ex.Out.Arg(0))}
		if len(ex.Out.Args) > 1 {
			args := append([]string(nil), ex.Out.Args...)
			args[1] = s.auth.sasl.step(args[1])
			ex.Out.Args = args
			s.chargeLogin()
		}
	case ex.Out.Verb == "APOP":
		s.info.Login = filters.Login{User: ex.Command.Arg(0), BackendUser: ex.Out.Arg(0), Mechanism: "apop", Backend: s.info.Login.Backend}
		s.chargeLogin()
	case ex.Out.Verb == "PASS":
		s.chargeLogin()
	}
}

// relaySASL relays the backend's SASL continuations (RFC 5034) to the
// client and the client's responses back, until the backend's final
// answer, which it returns. Only an AUTH that runs alone may do this: the
// reading goroutine then owns both connections.
func (s *session) relaySASL(x *exchange, resp parser.Response) (parser.Response, error) {
	be, ex := s.be, &x.ex
	if ex.Prompt == nil || ex.Out.Verb != "AUTH" || !x.alone {
		return resp, fmt.Errorf("backend sent a continuation to %s", ex.Out.Verb)
	}
	for resp.Status == parser.StatusContinue {
		line, perr := ex.Prompt(s.ctx, resp)
		if perr != nil {
			var pe *parser.Error
			if !errors.As(perr, &pe) {
				return resp, perr
			}
			line = "*" // cancel the exchange on the backend too, then report
		}
		if perr == nil && s.auth.sasl != nil {
			line = s.auth.sasl.step(line)
			s.chargeLogin()
		}
		if err := be.w.WriteLine(line); err != nil {
			return resp, fmt.Errorf("backend write: %w", err)
		}
		if err := be.w.Flush(); err != nil {
			return resp, fmt.Errorf("backend write: %w", err)
		}
		var err error
		if resp, err = be.r.ReadResponse(); err != nil {
			return resp, fmt.Errorf("backend read: %w", err)
		}
		if perr != nil && resp.Status != parser.StatusContinue {
			return resp, perr
		}
	}
	return resp, nil
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
		if s.loginBlocked() {
			// A SASL login names its user only inside the exchange: the
			// backend accepted it, so the session ends without QUIT.
			ex.Response = errBlocked().Response()
			s.setReason("blocked")
			s.quitting.Store(true)
			return
		}
		if !s.settleSuccess() {
			// The backend accepted the login: the session ends without
			// QUIT, so the mailbox is left as it was.
			ex.Response = errInUse().Response()
			s.setReason("max-sessions-per-user")
			s.quitting.Store(true)
			return
		}
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

// filterCapa reads the backend's CAPA body and keeps what a client can
// really use through popgate (RFC 2449 section 6).
func (s *session) filterCapa(body io.Reader) (*bytes.Reader, error) {
	lines, err := parser.ReadCapa(body)
	if err != nil {
		return nil, fmt.Errorf("backend CAPA: %w", err)
	}
	auth := s.info.State() == filters.Authorization
	var out bytes.Buffer
	serverSTLS := false
	for _, line := range lines {
		switch parser.CapaTag(line) {
		case "STLS":
			serverSTLS = true
		case "TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "EXPIRE", "LOGIN-DELAY":
			out.WriteString(line + "\r\n")
		case "USER", "SASL":
			if auth && !s.needTLS() {
				out.WriteString(line + "\r\n")
			}
		}
	}
	if auth && s.capaSTLS(serverSTLS) { // intercept_stls.go
		out.WriteString("STLS\r\n")
	}
	return bytes.NewReader(out.Bytes()), nil
}
