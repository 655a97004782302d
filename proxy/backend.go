package proxy

import (
	"bufio"
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"regexp"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/pires/go-proxyproto"

	"github.com/popgate/popgate/parser"
)

// backendConn is a connection to a backend POP3 server.
type backendConn struct {
	name      string
	addr      string // the server's host:port
	conn      net.Conn
	tc        *timeoutConn // moves deadlines; its timeouts are set once dialled
	r         *parser.Reader
	w         *parser.Writer
	greeting  parser.Response
	timestamp string      // APOP timestamp of the greeting, with brackets
	stop      func() bool // releases the close-on-session-end hook
	// server is the pool server's state, nil for a pinned or
	// original-destination connection; release, when set, ends the
	// connection's count on it (least-conn); close calls it once.
	server  *serverState
	release func()
}

func (b *backendConn) close() {
	if b.stop != nil {
		b.stop()
	}
	if b.release != nil {
		b.release()
		b.release = nil
	}
	b.conn.Close()
}

// errBackend wraps a failure to reach or talk to a backend as the
// [SYS/TEMP] answer the client gets: never a hang, never an auth failure.
func errBackend(err error) error {
	return parser.NewError(parser.CodeSysTemp, "backend unavailable, try again later", err)
}

var timestampRE = regexp.MustCompile(`<[^<>@\s]+@[^<>\s]+>`)

// dial connects to backend b: its pool chooses a server (pool.go), and a
// server that cannot be reached is passed over for the next one within
// b's connect timeout (dialPool). Each attempt is TCP, then the PROXY
// header, implicit TLS, the greeting, STLS and XCLIENT as configured.
// Credentials are never sent here, so a backend that fails verification
// never sees any, and a failover never sends a password twice.
func (s *session) dial(ctx context.Context, b *Backend) (*backendConn, error) {
	start := time.Now()
	var bc *backendConn
	var err error
	if b.OriginalDestination {
		bc, err = s.dialBackend(ctx, b, "", time.Time{})
	} else {
		bc, err = s.dialPool(ctx, b)
	}
	if h := s.cfg.Hooks.BackendDial; h != nil {
		h(b.Name, time.Since(start), err)
	}
	if err != nil {
		return nil, errBackend(fmt.Errorf("backend %q: %w", b.Name, err))
	}
	return bc, nil
}

// dialAddress connects to the server at addr with backend b's settings
// (TLS, forward_client, timeouts, login), pinned: no pool choice and no
// failover. It is for a server chosen outside the pool, such as one an
// auth service names.
func (s *session) dialAddress(ctx context.Context, b *Backend, addr string) (*backendConn, error) {
	start := time.Now()
	bc, err := s.dialBackend(ctx, b, addr, time.Time{})
	if h := s.cfg.Hooks.BackendDial; h != nil {
		h(b.Name, time.Since(start), err)
	}
	if err != nil {
		return nil, errBackend(fmt.Errorf("backend %q (%s): %w", b.Name, addr, err))
	}
	return bc, nil
}

// dialBackend makes one attempt at the server at addr ("" for an
// original-destination backend), giving up at deadline when it is set
// and earlier than b's connect timeout.
func (s *session) dialBackend(ctx context.Context, b *Backend, addr string, deadline time.Time) (*backendConn, error) {
	connectTimeout := b.ConnectTimeout
	if connectTimeout <= 0 {
		connectTimeout = DefaultConnectTimeout
	}
	if !deadline.IsZero() {
		connectTimeout = min(connectTimeout, time.Until(deadline))
	}
	readTimeout := b.ReadTimeout
	if readTimeout <= 0 {
		readTimeout = s.limits.BackendTimeout
	}
	dctx, cancel := context.WithTimeout(ctx, connectTimeout)
	defer cancel()
	var d net.Dialer
	tlsConf := b.tlsConfigFor(addr)
	if b.OriginalDestination { // intercept.go
		dst := addrPort(s.info.OriginalDest)
		if !dst.IsValid() {
			return nil, errNoOriginalDest
		}
		addr = dst.String()
		if b.SpoofSource {
			d = spoofDialer(addrPort(s.info.ClientAddr))
		}
	}
	if s.intercepting() {
		tlsConf = s.backendTLSConfig(b)
	}
	conn, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	// When the session ends (abort, shutdown) the backend connection closes
	// with it, whatever is waiting on it: the greeting, a login, a body.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	ok := false
	defer func() {
		if !ok {
			stop()
			conn.Close()
		}
	}()
	conn.SetDeadline(time.Now().Add(connectTimeout))
	if b.Forward == ForwardProxyV1 || b.Forward == ForwardProxyV2 {
		version := byte(1)
		if b.Forward == ForwardProxyV2 {
			version = 2
		}
		hdr := proxyproto.HeaderProxyFromAddrs(version, s.info.ClientAddr, s.info.LocalAddr)
		if _, err := hdr.WriteTo(conn); err != nil {
			return nil, fmt.Errorf("PROXY header: %w", err)
		}
	}
	mode := s.backendTLSMode(b) // intercept_stls.go
	if mode == TLSImplicit {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	// Until the backend is ready the absolute connect deadline bounds every
	// read and write; the per-read timeout takes over afterwards.
	bc := newBackendConn(b.Name, conn, 0)
	bc.addr = addr
	g, err := bc.r.ReadResponse()
	if err != nil {
		return nil, fmt.Errorf("reading greeting: %w", err)
	}
	if !g.IsOK() {
		return nil, fmt.Errorf("backend refused the connection: %s", g.String())
	}
	bc.greeting = g
	bc.timestamp = timestampRE.FindString(g.Text)
	if mode == TLSStartTLS {
		resp, err := bc.cmd(parser.NewCommand("STLS"))
		if err != nil {
			return nil, fmt.Errorf("STLS: %w", err)
		}
		if !resp.IsOK() {
			return nil, fmt.Errorf("backend does not offer STLS: %s", resp.String())
		}
		if bc.r.Buffered() > 0 {
			return nil, errors.New("backend sent data after accepting STLS")
		}
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(dctx); err != nil {
			return nil, fmt.Errorf("STLS handshake: %w", err)
		}
		conn = tc
		bc = newBackendConn(b.Name, conn, 0)
		bc.addr = addr
		bc.greeting, bc.timestamp = g, timestampRE.FindString(g.Text)
	}
	if b.Forward == ForwardXCLIENT && g.Code == "XCLIENT" {
		ap := addrPort(s.info.ClientAddr)
		resp, err := bc.cmd(parser.NewCommand("XCLIENT", "ADDR="+ap.Addr().String(), fmt.Sprintf("PORT=%d", ap.Port())))
		if err != nil {
			return nil, fmt.Errorf("XCLIENT: %w", err)
		}
		if !resp.IsOK() {
			return nil, fmt.Errorf("XCLIENT refused: %s", resp.String())
		}
	}
	conn.SetDeadline(time.Time{})
	bc.tc.readTimeout, bc.tc.writeTimeout = readTimeout, readTimeout
	bc.tc.onRead = s.flushHeld
	bc.stop = stop
	ok = true
	return bc, nil
}

func newBackendConn(name string, conn net.Conn, readTimeout time.Duration) *backendConn {
	tc := &timeoutConn{Conn: conn, readTimeout: readTimeout, writeTimeout: readTimeout}
	return &backendConn{
		name: name,
		conn: conn,
		tc:   tc,
		r:    parser.NewReader(bufio.NewReaderSize(tc, 32*1024), parser.DefaultMaxResponseLine),
		w:    parser.NewWriter(bufio.NewWriterSize(tc, 4096)),
	}
}

// cmd sends one command and reads its status line. Only for commands
// without a body.
func (b *backendConn) cmd(c parser.Command) (parser.Response, error) {
	if err := b.w.WriteCommand(c); err != nil {
		return parser.Response{}, err
	}
	if err := b.w.Flush(); err != nil {
		return parser.Response{}, err
	}
	return b.r.ReadResponse()
}

// login logs in to the backend with the session's credentials, the way b
// is configured to. It returns the backend's final answer; an error means
// the conversation itself failed. A master login, where the backend
// checks popgate's password instead of the client's, happens only when pf
// says a local verifier checked the client's (errUnproven otherwise).
func (b *backendConn) login(cfg *Backend, user, password string, pf proof) (parser.Response, error) {
	if cfg.MasterUser != "" && pf != byVerifier {
		return parser.Response{}, errUnproven
	}
	switch cfg.Login {
	case LoginAPOP:
		if b.timestamp == "" {
			return parser.Response{}, errors.New("backend greeting has no APOP timestamp")
		}
		sum := md5.Sum([]byte(b.timestamp + password))
		return b.cmd(parser.NewCommand("APOP", user, hex.EncodeToString(sum[:])))
	case LoginSASLPlain:
		authz, authc, pw := "", user, password
		if cfg.MasterUser != "" {
			authz, authc, pw = user, cfg.MasterUser, cfg.MasterPassword
		}
		_, raw, err := sasl.NewPlainClient(authz, authc, pw).Start()
		if err != nil {
			return parser.Response{}, fmt.Errorf("SASL PLAIN: %w", err)
		}
		ir := base64.StdEncoding.EncodeToString(raw)
		return b.cmd(parser.NewCommand("AUTH", "PLAIN", ir))
	default:
		// USER, then PASS once USER was accepted: never together. A
		// server that answers USER and PASS in two small writes (Dovecot)
		// would hold the second behind Nagle's algorithm until popgate's
		// delayed ACK of the first, about 40 ms per login, far more than
		// the round trip saved; and a server that refuses the user never
		// sees the password.
		ur, err := b.cmd(parser.NewCommand("USER", user))
		if err != nil || !ur.IsOK() {
			return ur, err
		}
		return b.cmd(parser.Command{Verb: "PASS", Args: []string{password}})
	}
}
