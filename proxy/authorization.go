package proxy

import (
	"context"

	"errors"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// serveAuthorization answers AUTHORIZATION-state commands in after-auth
// mode, where popgate is the POP3 server until the backend login succeeds.
func (s *session) serveAuthorization(ctx context.Context, ex *filters.Exchange) error {
	l := &s.info.Login
	switch ex.Out.Verb {
	case "CAPA":
		ex.Response = parser.OK("Capability list follows")
		ex.Body = strings.NewReader(s.localCapa())
	case "USER":
		user := ex.Command.Arg(0)
		if ex.Command.Verb != "USER" {
			user = ex.Out.Arg(0) // a filter translated APOP or AUTH into USER
		}
		*l = filters.Login{User: user, BackendUser: ex.Out.Arg(0), Mechanism: "user"}
		s.auth.userPending = true
		ex.Response = parser.OK("send PASS")
	case "PASS":
		if l.User == "" {
			ex.Response = parser.Err("", "send USER first")
			return nil
		}
		l.Password = ex.Out.Arg(0)
		s.auth.userPending = false
		switch ex.Command.Verb {
		case "APOP": // a filter verified the digest and made USER and PASS of it
			l.Mechanism = "apop"
		case "AUTH":
			l.Mechanism = saslMechanism(ex.Command.Arg(0))
		}
		ex.Response = s.login(ctx)
	case "QUIT":
		ex.Response = parser.OK("popgate signing off")
	case "AUTH":
		return s.serveSASL(ctx, ex)
	case "APOP":
		if s.lst.Auth == nil || s.info.Timestamp == "" {
			ex.Response = parser.Err("", "APOP is not enabled on this server")
			return nil
		}
		return s.serviceAPOP(ctx, ex) // authservice_sasl.go
	default:
		ex.Response = parser.Err("", "unknown command")
	}
	return nil
}

// login routes the pending login to a backend, connects and logs in
// there. The password is forgotten afterwards whatever the outcome.
//
// The order: login rewriting filters first; then, on a listener with an
// auth service, the service, asked with the name the client typed (as
// nginx does), whose Auth-User replaces the backend login and whose
// Auth-Server chooses the server; route_map and route blocks apply only
// when the service named no server (authservice.go).
func (s *session) login(ctx context.Context) parser.Response {
	l := &s.info.Login
	clientPass, digest := l.Password, s.auth.salt != ""
	defer func() { l.Password, clientPass, s.auth.salt = "", "", "" }()
	if l.BackendUser == "" {
		l.BackendUser = l.User
	}
	for _, rw := range s.rewriters {
		if err := rw.RewriteLogin(s.info, l); err != nil {
			s.log.Warn("login rewriting refused the login", "user", l.User, "error", err)
			return parser.ErrorResponse(parser.NewError(parser.CodeAuth, "authentication failed", err))
		}
	}
	if s.loginBlocked() {
		return parser.ErrorResponse(errBlocked())
	}
	var t target
	pf := unproven
	renamed := false // an auth service's Auth-User replaced the backend login
	if s.lst.Auth != nil {
		s.chargeLogin()
		var verified bool
		var resp parser.Response
		var ok bool
		before := l.BackendUser
		if t, verified, resp, ok = s.askService(ctx); !ok {
			return resp
		}
		// Auth-User may name a blocked mailbox: check the name the
		// backend would get, before it gets anything. The service has
		// seen the password by now, so the refusal is counted and
		// delayed like a wrong password: its timing must not tell the
		// client that the password was right.
		renamed = l.BackendUser != before
		if renamed && s.loginBlocked() {
			s.auth.blocked = false
			return parser.ErrorResponse(errBlocked())
		}
		if verified {
			pf = byVerifier
		}
	} else {
		name := s.routeName(l.BackendUser)
		b, ok := s.cfg.Backends[name]
		if !ok {
			s.log.Error("route names an unknown backend", "backend", name)
			return parser.Err(parser.CodeSysTemp, "backend unavailable, try again later")
		}
		t.b = b
		s.chargeLogin()
	}
	b, name := t.b, t.b.Name
	l.Backend = name
	// A master login acts for whoever the client claims to be: the client
	// must prove it here first, before any backend is contacted. A digest
	// the session passed to the service is no password to check locally,
	// and a local check proves the name the client typed, not the one a
	// service that does not verify passwords chose in Auth-User.
	if b.MasterUser != "" && pf != byVerifier {
		if !digest && !renamed {
			pf = s.verifyLocally(&filters.Login{User: l.User, Password: clientPass})
		}
		if pf != byVerifier {
			s.log.Info("password not verified for a master login", "user", l.User, "backend", name)
			return parser.Err(parser.CodeAuth, "authentication failed")
		}
	}
	var bc *backendConn
	var err error
	if t.addr != "" {
		bc, err = s.dialAddress(ctx, b, t.addr) // pinned: no pool choice, no failover
	} else {
		bc, err = s.dial(ctx, b)
	}
	if err != nil {
		s.log.Warn("backend unavailable", "backend", name, "error", err)
		return parser.ErrorResponse(err)
	}
	resp, err := bc.login(b, l.BackendUser, l.Password, pf)
	if errors.Is(err, errUnproven) {
		bc.close()
		s.log.Error("backend login refused to act for an unproven client", "user", l.User, "backend", name)
		return parser.Err(parser.CodeAuth, "authentication failed")
	}
	if errors.Is(err, parser.ErrBadCommand) {
		// The credentials fit in no POP3 command (AUTH PLAIN and LOGIN
		// carry an empty password or a TAB that PASS cannot): a failed
		// login, and never the server's fault.
		bc.close()
		s.log.Info("backend login impossible: the credentials cannot be sent", "user", l.User, "backend", name)
		return parser.Err(parser.CodeAuth, "authentication failed")
	}
	if err != nil {
		bc.close()
		if bc.server != nil && ctx.Err() == nil {
			// Counted against the server, but never retried: the
			// credentials may have reached it (pool_dial.go). A
			// session that ended meanwhile (kick, shutdown) closed
			// the connection itself: not the server's fault.
			bc.server.failed(err, "login")
		}
		s.log.Warn("backend login conversation failed", "backend", name, "error", err)
		return parser.Err(parser.CodeSysTemp, "backend unavailable, try again later")
	}
	if !resp.IsOK() {
		bc.close()
		switch resp.Code {
		case parser.CodeInUse, parser.CodeLoginDelay, parser.CodeSysTemp, parser.CodeSysPerm:
			return parser.Err(resp.Code, resp.Text)
		}
		return parser.Err(parser.CodeAuth, "authentication failed")
	}
	if !s.settleSuccess() {
		bc.close() // never QUIT: the mailbox was opened but nothing is committed
		return errInUse().Response()
	}
	s.be = bc
	if pf == unproven {
		pf = byBackend
	}
	s.prove(pf)
	s.info.Timestamp = ""
	s.info.SetState(filters.Transaction)
	return resp
}

// localCapa is the capability list popgate offers before login in
// after-auth mode.
func (s *session) localCapa() string {
	var b strings.Builder
	b.WriteString("TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n")
	if !s.needTLS() {
		b.WriteString("USER\r\nSASL PLAIN LOGIN")
		if s.offersAPOP() {
			b.WriteString(" CRAM-MD5")
		}
		b.WriteString("\r\n")
	}
	if s.lst.TLS == TLSStartTLS && s.info.TLS == nil {
		b.WriteString("STLS\r\n")
	}
	b.WriteString("IMPLEMENTATION popgate\r\n")
	return b.String()
}

// offersAPOP reports whether this listener verifies APOP (and CRAM-MD5):
// then the greeting carries a timestamp and CAPA lists CRAM-MD5. Clients
// try APOP whenever they see a timestamp, so it is offered only then.
func (s *session) offersAPOP() bool { return s.timestampSource() != nil || s.lst.Auth != nil }

// TimestampSource is implemented by a filter that verifies APOP: it makes
// the greeting's timestamp, so it can also choose its host part.
type TimestampSource interface {
	NewTimestamp() string
}

// timestampSource returns the listener's APOP filter, if it has one.
func (s *session) timestampSource() TimestampSource {
	for _, f := range s.lst.Filters {
		if ts, ok := f.(TimestampSource); ok {
			return ts
		}
	}
	return nil
}

// serveSASL runs AUTH (RFC 5034) locally with PLAIN or LOGIN.
func (s *session) serveSASL(ctx context.Context, ex *filters.Exchange) error {
	if len(ex.Out.Args) == 0 {
		ex.Response = parser.OK("methods supported")
		mechs := "PLAIN\r\nLOGIN\r\n"
		if s.offersAPOP() {
			mechs += "CRAM-MD5\r\n"
		}
		ex.Body = strings.NewReader(mechs)
		return nil
	}
	mech := strings.ToUpper(ex.Out.Arg(0))
	ir, hasIR := ex.Out.Arg(1), len(ex.Out.Args) > 1
	s.info.Login = filters.Login{Mechanism: strings.ToLower(mech)}
	next := func(challenge string) (string, error) {
		return ex.Prompt(ctx, parser.Continue(challenge))
	}
	decode := func(v string) ([]byte, error) {
		b, err := parser.DecodeSASL(v)
		if err != nil {
			return nil, parser.NewError("", "malformed base64 in SASL response", err)
		}
		return b, nil
	}
	l := &s.info.Login
	switch mech {
	case "PLAIN":
		if !hasIR {
			var err error
			if ir, err = next(""); err != nil {
				return err
			}
		}
		raw, err := decode(ir)
		if err != nil {
			return err
		}
		var ident, user, pass string
		srv := sasl.NewPlainServer(func(identity, username, password string) error {
			ident, user, pass = identity, username, password
			return nil
		})
		if _, _, err := srv.Next(raw); err != nil || user == "" {
			return parser.NewError("", "malformed PLAIN response", err)
		}
		if ident != "" && ident != user {
			return parser.NewError(parser.CodeAuth, "authorization identity not supported", nil)
		}
		*l = filters.Login{User: user, BackendUser: user, Password: pass, Mechanism: "plain"}
	case "LOGIN":
		var user []byte
		var err error
		if hasIR {
			user, err = decode(ir)
		} else {
			var v string
			if v, err = next(parser.EncodeSASL([]byte("Username:"))); err != nil {
				return err
			}
			user, err = decode(v)
		}
		if err != nil {
			return err
		}
		v, err := next(parser.EncodeSASL([]byte("Password:")))
		if err != nil {
			return err
		}
		pw, err := decode(v)
		if err != nil {
			return err
		}
		if len(user) == 0 {
			return parser.NewError("", "empty user name", nil)
		}
		*l = filters.Login{User: string(user), BackendUser: string(user), Password: string(pw), Mechanism: "login"}
	case "CRAM-MD5":
		if s.lst.Auth == nil {
			return parser.NewError("", "unsupported authentication mechanism", nil)
		}
		return s.serviceCRAM(ctx, ex, hasIR) // authservice_sasl.go
	default:
		return parser.NewError("", "unsupported authentication mechanism", nil)
	}
	if strings.ContainsAny(l.User, " \r\n\x00") || strings.ContainsAny(l.Password, "\r\n\x00") {
		*l = filters.Login{}
		return parser.NewError(parser.CodeAuth, "authentication failed", nil)
	}
	ex.Response = s.login(ctx)
	return nil
}

// startTLS upgrades the client connection (RFC 2595). Anything the client
// pipelined after STLS in plaintext is discarded, never executed, and any
// USER given before is forgotten.
func (s *session) startTLS() bool {
	if s.intercepting() {
		return s.interceptSTLS() // intercept_stls.go
	}
	s.auth.userPending = false
	if s.lst.TLS != TLSStartTLS || s.info.TLS != nil || s.auth.stlsDone {
		return s.refuse(parser.Err("", "STLS not available"))
	}
	s.auth.stlsDone = true
	if err := s.writer().WriteResponse(parser.OK("begin TLS negotiation")); err != nil {
		s.setReason("client-write")
		return false
	}
	if err := s.flush(); err != nil {
		s.setReason("client-write")
		return false
	}
	if n := s.cr.Discard(); n > 0 {
		s.log.Warn("discarded plaintext pipelined after STLS", "octets", n)
	}
	tc, err := s.handshake(s.conn)
	if err != nil {
		s.log.Info("STLS handshake failed", "error", err)
		s.setReason("tls-handshake")
		return false
	}
	s.conn = tc
	s.setupCodec()
	s.info.Login = filters.Login{Backend: s.info.Login.Backend}
	s.publish()
	return true
}
