package filters

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/parser"
)

// State is a POP3 session state (RFC 1939 section 3).
type State int

// The POP3 session states.
const (
	Authorization State = iota
	Transaction
	Update
)

// String returns the RFC 1939 name of the state.
func (s State) String() string {
	switch s {
	case Authorization:
		return "AUTHORIZATION"
	case Transaction:
		return "TRANSACTION"
	case Update:
		return "UPDATE"
	}
	return "UNKNOWN"
}

// Filter is one configured filter. It takes part in exchanges through the
// optional interfaces below; the proxy runs every filter of a listener's
// chain, in the order the configuration lists them.
type Filter interface {
	// Name is the filter's type name as written in the configuration.
	Name() string
}

// CommandFilter sees each command on its way to the backend, in the order
// the client sent them, on the session's reading goroutine. It may edit
// Exchange.Out, or answer locally by setting Exchange.Response (and Body):
// the command is then not sent, and the filters after it in the chain do
// not see it. Returning a *parser.Error answers with that error; any other
// error ends the session.
type CommandFilter interface {
	Command(ctx context.Context, ex *Exchange) error
}

// ResponseFilter sees each answer on its way to the client, in order. It
// may edit Exchange.Response and wrap or replace Exchange.Body. Response
// filters run in the reverse order of the chain, innermost first, and only
// for filters whose Command side saw the exchange (or that have none), so
// the filter nearest the client sees the final answer. Errors are treated
// as for CommandFilter.
type ResponseFilter interface {
	Response(ctx context.Context, ex *Exchange) error
}

// Exclusive is implemented by filters that need the backend to themselves
// for some exchanges: to make extra round trips through Exchange.Backend
// (audit's one UIDL listing, policy's one LIST, APOP's USER before PASS),
// or to see every earlier answer before deciding (clamav's keep_replaced).
// The session then lets every earlier exchange finish and runs this one
// alone. It is asked on the session's reading goroutine, before the
// Command side; keep it cheap and make it rare.
type Exclusive interface {
	Exclusive(ex *Exchange) bool
}

// Finisher is implemented by filters that want to know when an exchange
// is over: its answer went out whole, or failed. Finish runs in chain
// order after every ResponseFilter, so it sees what the others put on the
// Exchange (Verdict) whatever their order.
type Finisher interface {
	Finish(ex *Exchange)
}

// Flusher is implemented by filters that hold output of their own for a
// burst of pipelined exchanges (audit writes a burst's records with one
// write). The session calls Flush before it sends the answers it holds to
// the client: at the end of each burst, and before it waits on the
// backend with answers held. Flush runs on the goroutine that answers.
type Flusher interface {
	Flush(s *Session)
}

// Backend makes extra round trips for a filter during an exclusive
// exchange. Commands go straight to what answers the exchange (the backend,
// or popgate's own AUTHORIZATION server in after-auth mode), unseen by
// other filters.
type Backend interface {
	// Call sends cmd and returns the answer. body is non-nil when
	// parser.HasBody says one follows; it is valid until the next Call or
	// the end of the Command side, and what is left of it is drained then.
	Call(ctx context.Context, cmd parser.Command) (resp parser.Response, body io.Reader, err error)
}

// LoginRewriter is implemented by filters that edit a login after the
// client gave its credentials and before routing and the backend login
// (after-auth mode): rewrite the login name, map it, or substitute a
// password. Rewriters run in the chain's order.
type LoginRewriter interface {
	RewriteLogin(s *Session, l *Login) error
}

// PasswordVerifier is implemented by filters that can check a client's
// password locally, against secrets of their own (the apop filter's
// secrets file). The proxy asks it before a login the backend does not
// check itself: a master-user login, where the backend takes popgate's
// word for who the client is. It must compare in constant time and treat
// an unknown user like a wrong password.
type PasswordVerifier interface {
	VerifyPassword(user, password string) bool
}

// Observer is implemented by filters that want session lifecycle events.
type Observer interface {
	SessionStarted(s *Session)
	SessionEnded(s *Session, end SessionEnd)
}

// Login holds the credentials of a login in progress or done. The proxy
// fills it from the client's commands; filters (rewrite, routing, apop) edit
// it before the backend login. Password is a secret: never log it.
type Login struct {
	User        string // login name as the client gave it
	BackendUser string // login name used on the backend; starts as User
	Password    string // secret
	Mechanism   string // "user", "apop", "plain", "login", "cram-md5", "passthrough"
	Backend     string // name of the backend chosen by routing
}

// SessionEnd describes how a session ended.
type SessionEnd struct {
	Reason        string // "quit", "client-closed", "timeout", "error", "shutdown", ...
	BytesIn       int64  // octets read from the client
	BytesOut      int64  // octets written to the client
	Duration      time.Duration
	DeletesMarked int  // DELE commands answered +OK
	Committed     bool // QUIT in TRANSACTION answered +OK: deletions committed
}

// Session is what filters may know of a client session. The proxy owns it;
// it lives as long as the client connection. Fields set before login are
// stable afterwards; Values is safe for concurrent use.
type Session struct {
	ID         string
	Listener   string
	ClientAddr net.Addr // the real client address (after PROXY protocol)
	LocalAddr  net.Addr
	// OriginalDest is the address the client meant to reach, on an
	// intercept listener (firewall redirect or TPROXY); nil otherwise.
	OriginalDest net.Addr
	Started      time.Time
	// TLS is the client connection's TLS state, nil while in plaintext.
	TLS *tls.ConnectionState
	// SNI is the server name the client asked for, if any.
	SNI string
	// Timestamp is the APOP timestamp of the greeting the client saw,
	// including angle brackets; empty if none.
	Timestamp string
	// AfterAuth is true when popgate itself takes the login (after-auth
	// mode) and false when the client logs in to the backend directly.
	AfterAuth bool
	// Login is the login in progress (AUTHORIZATION) or done.
	Login  Login
	Logger hclog.Logger

	state  atomic.Int32 // a State
	mu     sync.Mutex
	values map[any]any
}

// State returns the session's POP3 state.
func (s *Session) State() State { return State(s.state.Load()) }

// SetState is called by the proxy as the session moves between states.
func (s *Session) SetState(st State) { s.state.Store(int32(st)) }

// Value returns per-session data a filter stored under key.
func (s *Session) Value(key any) any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.values[key]
}

// SetValue stores per-session data under key; filters use unexported key
// types, as with context.Context.
func (s *Session) SetValue(key, v any) {
	s.mu.Lock()
	if s.values == nil {
		s.values = make(map[any]any)
	}
	s.values[key] = v
	s.mu.Unlock()
}

// Exchange is one command and its response as it passes through the chain.
type Exchange struct {
	Session *Session
	// Command is the command as the client sent it. Never edit it.
	Command parser.Command
	// Out is the command the backend will receive; filters may edit it.
	Out parser.Command
	// Response is the answer to Out, set by the backend handler or by a
	// filter that answers locally.
	Response parser.Response
	// Body is the multi-line body of Response when parser.HasBody says it
	// has one, decoded (dot-unstuffed). It is valid until the exchange ends.
	// Filters may wrap or replace it; the session streams it to the client
	// and drains whatever of the backend's body remains.
	Body io.Reader
	// Prompt, set by the session, sends a SASL continuation to the client
	// and returns the client's next line (RFC 5034). It is nil outside AUTH.
	Prompt func(ctx context.Context, challenge parser.Response) (string, error)
	// User is the login name this exchange claims, when a filter learned
	// it where the session cannot (inside a CRAM-MD5 response it answered
	// itself). The session, the only writer of Session.Login, records it.
	User string
	// Backend makes extra round trips; it is set only while an exclusive
	// exchange runs its Command side (see Exclusive).
	Backend Backend
	// Started is when the session read the command.
	Started time.Time
	// Verdict is the virus scanner's verdict on the message of a RETR or
	// TOP, set by the clamav filter; nil when nothing scanned it.
	Verdict *Verdict
	// Err is why the exchange failed, when it did: set by the session
	// before Finish.
	Err error
}

// Verdict is what a scanner decided about a message and did with it.
type Verdict struct {
	Scanned bool   // the scanner gave a verdict (else see Err)
	Clean   bool   // no virus found
	Virus   string // the virus name when not Clean
	Action  string // "deliver", "replace", "reject", "tempfail", "pass"
	Size    int64  // octets of the message as scanned
	Wait    time.Duration
	Err     error // why no verdict was reached (scanner down, too large, ...)
}
