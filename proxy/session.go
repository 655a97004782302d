package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/pires/go-proxyproto"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// session is one client connection and, once connected, its backend.
//
// A session runs on at most two goroutines. The reading goroutine (run,
// loop) reads each command, runs the Command side of the filter chain and
// writes the command to the backend. The answer goroutine (answer.go),
// started at the first pipelined burst, reads the backend's answers in the
// same order, runs the Response side and writes to the client. Ownership:
//   - the client reader, the backend writer, Session.Login and auth: the
//     reading goroutine;
//   - the client writer and the backend reader: the answer goroutine while
//     exchanges wait in the FIFO; the reading goroutine once drain has
//     returned (the FIFO is empty). drain is the only hand-over;
//   - tally: whoever completes exchanges, which the same hand-over
//     orders.
type session struct {
	srv    *Server
	cfg    *Config
	lst    *Listener
	limits Limits
	log    hclog.Logger
	info   *filters.Session

	chain     *filters.Chain
	observers []filters.Observer
	rewriters []filters.LoginRewriter

	tcp  net.Conn     // the accepted connection; never reassigned, so abort may close it from any goroutine
	raw  net.Conn     // tcp, or the PROXY protocol reader over it
	conn net.Conn     // what the codec runs on: raw, or TLS over it
	ctc  *timeoutConn // the client connection with deadlines and counters
	cr   *parser.Reader
	cw   *parser.Writer // W is nil while nothing is buffered (see writer)
	in   atomic.Int64
	out  atomic.Int64

	be *backendConn // nil until connected

	ctx    context.Context
	cancel context.CancelFunc

	// The pipeline (answer.go).
	fifo     chan *exchange // exchanges whose answers the answer goroutine writes, in order; nil until the first burst
	pending  atomic.Int32   // exchanges queued and not yet completed
	inflight sync.WaitGroup // the same count, to wait on

	tally tally     // owned by whoever completes exchanges (see above)
	auth  authState // owned by the reading goroutine

	endOnce    sync.Once
	reasonMu   sync.Mutex
	reason     string
	ipHeld     ipKey // the per-address count this session holds, when ipAcquired
	ipAcquired bool
	quitting   atomic.Bool
	// lastAnswer is when the last answer was written (Unix nanoseconds):
	// the RFC 1939 inactivity timer runs from the later of that and the
	// last command.
	lastAnswer atomic.Int64
	started    bool // observers and hooks saw the start: they see the end
	// What Server.Snapshot reads (registry.go): who the session is, the
	// client's TLS version, and the command in flight.
	view       atomic.Pointer[sessionView]
	tlsVersion atomic.Uint32
	current    atomic.Pointer[parser.Command]
	tlsStart   bool // the connection was TLS when the session started
}

// tally is what the session counts as answers go out. Whoever completes
// exchanges owns it: the answer goroutine, or the reading goroutine after
// drain.
type tally struct {
	consecutiveErrs int  // client protocol errors in a row (max_errors)
	authFails       int  // failed logins (max_auth_tries)
	deletesMarked   int  // DELEs answered +OK since the last RSET
	committed       bool // QUIT in TRANSACTION answered +OK
}

// authState is the login in progress and what the session knows of who
// the client is. The reading goroutine owns it: every AUTHORIZATION
// exchange runs alone, on that goroutine.
type authState struct {
	stlsDone    bool
	userPending bool             // after-auth: a USER awaits its PASS
	proven      proof            // how the client proved who it is; written only by prove
	charge      *loginCharge     // a login attempt counted before its outcome (loginthrottle.go)
	sasl        *passthroughSASL // the on-accept AUTH exchange in progress
	callBody    io.Reader        // body of a filter's last Backend call, drained before the next
	blocked     bool             // the login in progress was refused by the block list (block.go)
	attempts    int              // logins sent to the auth service (Auth-Login-Attempt)
	salt        string           // APOP timestamp or CRAM-MD5 challenge of a digest login for the auth service
	wait        time.Duration    // the auth service's Auth-Wait for the refusal in progress
	lease       *SessionLease    // the user's session lease, released by finish (loginthrottle.go)
}

func newSession(srv *Server, cfg *Config, lst *Listener, conn net.Conn, id string) *session {
	limits := lst.Limits.withDefaults()
	s := &session{
		srv:    srv,
		cfg:    cfg,
		lst:    lst,
		limits: limits,
		tcp:    conn,
		raw:    conn,
		chain:  lst.chain(),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.info = &filters.Session{
		ID:         id,
		Listener:   lst.Name,
		ClientAddr: conn.RemoteAddr(),
		LocalAddr:  conn.LocalAddr(),
		Started:    time.Now(),
		AfterAuth:  lst.Connect == ConnectAfterAuth,
	}
	s.log = srv.logger.With("session", id, "listener", lst.Name)
	s.info.Logger = s.log
	for _, f := range lst.Filters {
		if rw, ok := f.(filters.LoginRewriter); ok {
			s.rewriters = append(s.rewriters, rw)
		}
		if o, ok := f.(filters.Observer); ok {
			s.observers = append(s.observers, o)
		}
	}
	return s
}

// setReason records why the session ends; the first reason wins.
func (s *session) setReason(r string) {
	s.reasonMu.Lock()
	if s.reason == "" {
		s.reason = r
	}
	s.reasonMu.Unlock()
}

// abort ends the session at once: both connections are closed, the backend
// without QUIT, so nothing is committed. It is safe from any goroutine:
// cancelling the session context closes the backend connection (see
// dialBackend), and closing the accepted connection ends every read and
// write on the client side.
func (s *session) abort(reason string) {
	s.setReason(reason)
	s.cancel()
	s.tcp.Close()
}

func (s *session) run() {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("session panic", "panic", v, "stack", string(debug.Stack()))
			s.setReason("panic")
		}
		s.finish()
	}()
	if !s.accept() {
		return
	}
	s.log = s.log.With("client", s.info.ClientAddr.String())
	s.info.Logger = s.log
	s.started = true
	s.tlsStart = s.info.TLS != nil
	for _, o := range s.observers {
		o.SessionStarted(s.info)
	}
	if h := s.cfg.Hooks.SessionStarted; h != nil {
		h(s.lst.Name, s.tlsStart)
	}
	s.log.Debug("session started")
	if !s.greet() {
		return
	}
	s.loop()
}

// accept applies the PROXY protocol, the per-address limit and implicit
// TLS. It returns false when the session must end.
func (s *session) accept() bool {
	if s.lst.ProxyProtocol {
		peer := addrPort(s.raw.RemoteAddr())
		if !trusted(peer.Addr(), s.lst.TrustedProxies) {
			s.log.Warn("PROXY protocol listener: connection from untrusted address refused", "peer", peer.String())
			s.setReason("untrusted-proxy")
			return false
		}
		pc := proxyproto.NewConn(s.raw, proxyproto.WithPolicy(proxyproto.REQUIRE),
			proxyproto.SetReadHeaderTimeout(s.limits.PreLoginTimeout))
		s.raw = pc
		if pc.ProxyHeader() == nil { // reads the header, within the timeout
			s.log.Warn("PROXY protocol header missing or invalid", "peer", peer.String())
			s.setReason("bad-proxy-header")
			return false
		}
		s.info.ClientAddr = pc.RemoteAddr()
		s.info.LocalAddr = pc.LocalAddr()
	}
	if s.addrBlocked() {
		s.log.Warn("connection refused: address blocked by an administrator")
		s.setReason("blocked")
		if s.lst.TLS != TLSImplicit {
			s.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(s.raw, "-ERR [SYS/PERM] access from your address is blocked\r\n")
		}
		return false
	}
	if !s.interceptDest() { // intercept.go
		return false
	}
	key := ipKey{listener: s.lst.Name, net: s.clientNet()}
	if !s.srv.acquireIP(key, s.limits.MaxSessionsPerIP) {
		s.setReason("max-sessions-per-ip")
		if s.cfg.Hooks.Throttled != nil {
			s.cfg.Hooks.Throttled(s.lst.Name, "max-sessions-per-ip")
		}
		if s.lst.TLS != TLSImplicit {
			s.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(s.raw, "-ERR [SYS/TEMP] too many connections from your address\r\n")
		}
		return false
	}
	s.ipHeld, s.ipAcquired = key, true
	s.publish()
	s.conn = s.raw
	if s.lst.TLS == TLSImplicit {
		tc, err := s.handshake(s.raw)
		if err != nil {
			s.log.Info("TLS handshake failed", "error", err)
			s.setReason("tls-handshake")
			return false
		}
		s.conn = tc
	}
	s.setupCodec()
	return true
}

// handshake runs a server TLS handshake on c within the handshake timeout.
func (s *session) handshake(c net.Conn) (net.Conn, error) {
	timeout := s.limits.HandshakeTimeout
	if timeout <= 0 {
		timeout = s.cfg.HandshakeTimeout
	}
	if timeout <= 0 {
		timeout = DefaultLimits.HandshakeTimeout
	}
	conf := s.serverTLSConfig() // intercept_stls.go
	tc := tls.Server(c, conf)
	ctx, cancel := context.WithTimeout(s.ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("client TLS handshake: %w", err)
	}
	cs := tc.ConnectionState()
	s.info.TLS = &cs
	s.publishTLS(&cs)
	s.info.SNI = cs.ServerName
	s.log = s.log.With("tls", tls.VersionName(cs.Version), "cipher", tls.CipherSuiteName(cs.CipherSuite), "sni", cs.ServerName)
	s.info.Logger = s.log
	return tc, nil
}

// setupCodec (re)builds the client reader and writer over s.conn. The
// writer's buffer is borrowed from a pool only while there is something to
// write, so an idle session holds no write buffer.
func (s *session) setupCodec() {
	s.ctc = &timeoutConn{Conn: s.conn, writeTimeout: s.limits.WriteTimeout, in: &s.in, out: &s.out}
	s.cr = parser.NewReader(bufio.NewReaderSize(s.ctc, clientReadBuffer), s.limits.MaxLine)
	if s.cw != nil && s.cw.W != nil {
		s.cw.W.Reset(s.ctc)
		return
	}
	s.cw = parser.NewWriter(nil)
}

// clientReadBuffer is the client reader's buffer: room for a burst of
// pipelined commands; longer lines still read in constant memory.
const clientReadBuffer = 2048

var clientWriterPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

// writer returns the client writer, with a buffer attached. Only the
// goroutine that may write to the client calls it.
func (s *session) writer() *parser.Writer {
	if s.cw.W == nil {
		bw := clientWriterPool.Get().(*bufio.Writer)
		bw.Reset(s.ctc)
		s.cw.W = bw
	}
	return s.cw
}

// flush sends what the client writer holds and gives its buffer back.
func (s *session) flush() error {
	bw := s.cw.W
	if bw == nil {
		return nil
	}
	if err := s.cw.Flush(); err != nil {
		return err
	}
	s.cw.W = nil
	bw.Reset(nil)
	clientWriterPool.Put(bw)
	return nil
}

// greet sends the greeting; in on-accept mode it first connects to the
// backend and relays its greeting.
func (s *session) greet() bool {
	var g parser.Response
	if s.lst.Connect == ConnectOnAccept {
		be, err := s.dial(s.ctx, s.cfg.Backends[s.lst.Backend])
		if err != nil {
			s.log.Warn("backend unavailable", "backend", s.lst.Backend, "error", err)
			s.setReason("backend-unavailable")
			s.writeFinal(parser.ErrorResponse(err))
			return false
		}
		s.be = be
		s.info.Login.Backend = be.name
		s.publish()
		g = be.greeting
		g.Code = "" // e.g. [XCLIENT] is for popgate, not the client
		s.info.Timestamp = be.timestamp
	} else {
		g = parser.OK("POP3 server ready")
		if ts := s.timestampSource(); ts != nil {
			s.info.Timestamp = ts.NewTimestamp()
			g.Text += " " + s.info.Timestamp
		} else if s.lst.Auth != nil {
			// The auth service verifies APOP with Auth-Salt.
			s.info.Timestamp = serviceTimestamp()
			g.Text += " " + s.info.Timestamp
		}
	}
	if err := s.writer().WriteResponse(g); err != nil {
		s.setReason("client-write")
		return false
	}
	if err := s.flush(); err != nil {
		s.setReason("client-closed")
		return false
	}
	return true
}

// writeFinal writes a last response and flushes, ignoring errors.
func (s *session) writeFinal(r parser.Response) {
	if s.cw == nil {
		return
	}
	s.writer().WriteResponse(r)
	s.flush()
}

// loop reads commands until the session ends.
func (s *session) loop() {
	for {
		cmd, err := s.readCommand()
		if err != nil {
			if s.handleReadError(err) {
				continue
			}
			return
		}
		if !s.dispatch(cmd) {
			return
		}
	}
}

// handleReadError answers a malformed line (and returns true to go on), or
// ends the session on I/O errors.
func (s *session) handleReadError(err error) bool {
	switch {
	case errors.Is(err, parser.ErrLineTooLong):
		return s.refuse(parser.Err("", "line too long"))
	case errors.Is(err, parser.ErrBadLine):
		return s.refuse(parser.Err("", "line contains a bare CR, bare LF or NUL; refused"))
	case errors.Is(err, parser.ErrBadCommand):
		return s.refuse(parser.Err("", "malformed command"))
	case isTimeout(err):
		s.drain()
		s.setReason("timeout")
		s.writeFinal(parser.Err("", "autologout; idle for too long"))
		return false
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		// The client closed its side. It may still be reading (a
		// half-close, as "printf ... | nc -N" does): answer what is in
		// flight, then end without QUIT.
		s.drain()
		s.setReason("client-closed")
		return false
	case errors.Is(err, net.ErrClosed):
		s.setReason("client-closed")
		return false
	default:
		s.setReason("client-error")
		s.log.Debug("client read failed", "error", err)
		return false
	}
}

// readCommand waits for the next command. While exchanges are in flight
// the session is not idle, so the wait is extended.
func (s *session) readCommand() (parser.Command, error) {
	if s.moreBuffered() {
		// A pipelined line is already here: no wait, so no deadline to
		// move (moving one costs more than the read).
		return s.cr.ReadCommand()
	}
	for {
		// Before login the whole AUTHORIZATION state has one deadline, so a
		// client cannot hold a connection by trickling commands; after
		// login the RFC 1939 inactivity timer restarts with every command.
		deadline := time.Now().Add(s.limits.IdleTimeout)
		if last := time.Unix(0, s.lastAnswer.Load()); last.Add(s.limits.IdleTimeout).After(deadline) {
			deadline = last.Add(s.limits.IdleTimeout)
		}
		if s.info.State() == filters.Authorization {
			deadline = s.info.Started.Add(s.limits.PreLoginTimeout)
		}
		s.conn.SetReadDeadline(deadline)
		_, err := s.cr.R.Peek(1)
		if err == nil {
			break
		}
		if isTimeout(err) && s.ctx.Err() == nil && (s.busy() || s.info.State() == filters.Transaction &&
			time.Since(time.Unix(0, s.lastAnswer.Load())) < s.limits.IdleTimeout) {
			continue // not idle: an answer is still going out, or just went
		}
		return parser.Command{}, err
	}
	return s.cr.ReadCommand()
}

var crlf = []byte("\r\n")

// moreBuffered reports whether a complete command line is already buffered.
func (s *session) moreBuffered() bool {
	n := s.cr.Buffered()
	if n == 0 {
		return false
	}
	b, _ := s.cr.R.Peek(n)
	return bytes.Contains(b, crlf) // only CRLF ends a line (a bare LF does not)
}

// finish releases everything and reports the end of the session.
func (s *session) finish() {
	s.endOnce.Do(func() {
		s.cancel()
		if s.fifo != nil {
			close(s.fifo) // the reading goroutine, which runs finish, was its only sender
		}
		s.inflight.Wait()
		s.setReason("client-closed")
		if s.be != nil {
			s.be.close() // never QUIT: only the client's own QUIT is relayed
		}
		if s.auth.lease != nil {
			s.srv.state.Release(*s.auth.lease)
		}
		if s.ipAcquired {
			// Released before the close, so a client that saw the
			// connection end can connect again at once.
			s.srv.releaseIP(s.ipHeld)
		}
		s.tcp.Close()
		end := filters.SessionEnd{
			Reason:        s.reason,
			BytesIn:       s.in.Load(),
			BytesOut:      s.out.Load(),
			Duration:      time.Since(s.info.Started),
			DeletesMarked: s.tally.deletesMarked,
			Committed:     s.tally.committed,
		}
		if !s.started {
			s.log.Debug("connection closed before the session started", "reason", end.Reason)
			return
		}
		for _, o := range s.observers {
			o.SessionEnded(s.info, end)
		}
		if h := s.cfg.Hooks.SessionEnded; h != nil {
			h(s.lst.Name, s.tlsStart, end)
		}
		s.log.Info("session ended", "reason", end.Reason, "user", s.info.Login.User,
			"bytes_in", end.BytesIn, "bytes_out", end.BytesOut, "duration", end.Duration.Round(time.Millisecond))
	})
}

func addrPort(a net.Addr) netip.AddrPort {
	if a == nil {
		return netip.AddrPort{}
	}
	if ta, ok := a.(*net.TCPAddr); ok {
		ap := ta.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func trusted(ip netip.Addr, nets []netip.Prefix) bool {
	for _, p := range nets {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}
