package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"weak"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// STLS on an intercept listener (issue 13, docs/INTERCEPT.md). Hiding
// STLS from a client that uses it when offered is STLS stripping, so an
// intercept listener never does it silently; Listener.InterceptSTLS
// chooses:
//   - InterceptSTLSTunnel: STLS goes to the server; once the server
//     accepted it, popgate relays the octets untouched both ways. The
//     session is end-to-end encrypted and opaque to every filter; the
//     OpaqueObservers (the audit trail) are told.
//   - InterceptSTLSInspect: popgate accepts the client's STLS with a
//     certificate minted for the destination (mint.go), speaks STLS to the
//     server and verifies it (the backend's ca_file, else the system
//     roots, for the client's server name or else the destination
//     address); the filters see the decrypted session. An implicit-TLS
//     intercept listener (995) works the same way from the first octet.
//   - InterceptSTLSRefuse: STLS is answered -ERR and hidden from CAPA.
//
// In tunnel and inspect modes CAPA shows STLS exactly when the server
// offers it. A server that refuses STLS has its own -ERR relayed: the
// client, not popgate, decides whether to go on in plaintext.

// OpaqueObserver is implemented by filters that want to know when a
// session goes opaque: from then on its octets are relayed untouched, and
// no filter sees another command. The session calls it once, on its
// reading goroutine, before the first opaque octet is relayed; how is
// "stls-tunnel".
type OpaqueObserver interface {
	SessionOpaque(s *filters.Session, how string)
}

// intercepting reports whether the session's listener intercepts.
func (s *session) intercepting() bool { return s.lst.Intercept != InterceptNone }

// interceptSTLS answers STLS on an intercept listener. It runs on the
// reading goroutine with nothing in flight (dispatch drained). It returns
// false when the session must end.
func (s *session) interceptSTLS() bool {
	s.auth.userPending = false
	if s.info.TLS != nil || s.auth.stlsDone || s.be == nil {
		return s.refuse(parser.Err("", "STLS not available"))
	}
	switch s.lst.InterceptSTLS {
	case InterceptSTLSRefuse:
		s.log.Info("STLS refused: intercept_stls is refuse; the session stays in plaintext")
		return s.refuse(parser.Err("", "STLS not available"))
	case InterceptSTLSInspect:
		return s.inspectSTLS()
	default:
		return s.tunnelSTLS()
	}
}

// serverSTLS sends STLS to the server. ok is true when the server
// accepted it and the caller may start TLS on the backend connection.
// When the server refused, its answer has been relayed to the client and
// the session goes on in plaintext; when the conversation failed, the
// session must end (cont false).
func (s *session) serverSTLS() (ok, cont bool) {
	resp, err := s.be.cmd(parser.NewCommand("STLS"))
	if err != nil {
		s.log.Warn("backend STLS failed", "error", err)
		s.writeFinal(parser.Err(parser.CodeSysTemp, "backend connection lost, try again later"))
		s.setReason("backend-error")
		return false, false
	}
	if !resp.IsOK() {
		// No downgrade by popgate: the client hears the server's refusal.
		s.log.Info("server refused STLS; relayed to the client", "response", resp.String())
		if err := s.writer().WriteResponse(resp); err != nil {
			s.setReason("client-write")
			return false, false
		}
		if err := s.flush(); err != nil {
			s.setReason("client-write")
			return false, false
		}
		return false, true
	}
	if s.be.r.Buffered() > 0 {
		// Octets after +OK, before any TLS hello: injected plaintext
		// (RFC 2595 section 4, the server side of STARTTLS injection).
		s.log.Warn("backend sent data after accepting STLS; closing")
		s.writeFinal(parser.Err(parser.CodeSysTemp, "backend protocol error, try again later"))
		s.setReason("backend-error")
		return false, false
	}
	return true, true
}

// acceptClientSTLS answers +OK to the client's STLS and discards what the
// client pipelined after it in plaintext (RFC 2595 section 4).
func (s *session) acceptClientSTLS(text string) bool {
	s.auth.stlsDone = true
	if err := s.writer().WriteResponse(parser.OK(text)); err != nil {
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
	return true
}

// tunnelSTLS relays STLS to the server and, once accepted, the session's
// octets untouched until either side closes. It returns false when the
// session must end, which is always the case once the tunnel ran.
func (s *session) tunnelSTLS() bool {
	ok, cont := s.serverSTLS()
	if !ok {
		return cont
	}
	if !s.acceptClientSTLS("begin TLS negotiation") {
		return false
	}
	s.log.Info("STLS tunnelled: the session is end-to-end encrypted and opaque from here on")
	for _, f := range s.lst.Filters {
		if o, ok := f.(OpaqueObserver); ok {
			o.SessionOpaque(s.info, "stls-tunnel")
		}
	}
	s.setReason(s.relay(s.conn, s.be.conn))
	return false
}

// relay copies octets between the client c and the server b in both
// directions until both directions ended, and returns the session's end
// reason: who ended first, and how. An end of stream on one side is
// passed on as a half-close (CloseWrite), so the other direction may
// still finish, for as long as it keeps moving octets within the
// listener's write timeout; a failure closes both. The relay also ends
// when the session's context is cancelled (Kick, Shutdown, whose reason
// was set first), and when neither direction moved for the listener's
// idle timeout. The client's octets are counted as the session's bytes in and
// out. The relay runs on the reading goroutine and one more, for the
// client-to-server direction, which it waits for.
func (s *session) relay(c, b net.Conn) string {
	r := &relayState{idle: s.limits.IdleTimeout, write: s.limits.WriteTimeout}
	r.touch()
	c.SetDeadline(time.Time{})
	b.SetDeadline(time.Time{})
	stop := context.AfterFunc(s.ctx, func() {
		c.Close()
		b.Close()
	})
	defer stop()
	var wg sync.WaitGroup
	wg.Go(func() { r.pipe(b, c, &s.in, "client-closed", "client-error", "backend-error") })
	r.pipe(c, b, &s.out, "backend-closed", "backend-error", "client-error")
	wg.Wait()
	if err := r.err; err != nil {
		s.log.Debug("tunnel ended", "reason", r.reason, "error", err)
	}
	return r.reason
}

// relayState is what the two directions of a relay share.
type relayState struct {
	idle, write time.Duration
	last        atomic.Int64 // when an octet last moved either way (Unix nanoseconds)
	halfClosed  atomic.Bool  // one direction ended: the other has the write timeout to finish

	once   sync.Once
	reason string // why the relay ended: the first direction to end says
	err    error
}

func (r *relayState) touch() { r.last.Store(time.Now().UnixNano()) }

// limit is how long a direction may wait for octets.
func (r *relayState) limit() time.Duration {
	if r.halfClosed.Load() && r.write < r.idle {
		return r.write
	}
	return r.idle
}

// end records the first direction's reason to end.
func (r *relayState) end(reason string, err error) {
	r.once.Do(func() { r.reason, r.err = reason, err })
}

// pipe copies src to dst until src ends or fails. An end of stream is
// passed on to dst as a half-close, with eof as the relay's reason; a
// read failure (readErr), a write failure (writeErr) or an idle timeout
// closes both connections, so the other direction stops too. A timeout
// while the other direction moves octets is no failure: this one waits
// on.
func (r *relayState) pipe(dst, src net.Conn, count *atomic.Int64, eof, readErr, writeErr string) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	fail := func(reason string, err error) {
		r.end(reason, err)
		src.Close()
		dst.Close()
	}
	var armed time.Time
	for {
		if now := time.Now(); now.Sub(armed) > r.limit()/8 {
			src.SetReadDeadline(now.Add(r.limit()))
			armed = now
		}
		n, err := src.Read(buf)
		if n > 0 {
			r.touch()
			dst.SetWriteDeadline(time.Now().Add(r.write))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				fail(writeErr, werr)
				return
			}
			count.Add(int64(n))
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			r.end(eof, nil)
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				r.halfClosed.Store(true)
				cw.CloseWrite()
				dst.SetReadDeadline(time.Now().Add(r.limit())) // the other direction's wait
			} else {
				dst.Close()
			}
			return
		case isTimeout(err):
			if time.Since(time.Unix(0, r.last.Load())) < r.limit() {
				armed = time.Time{} // the other direction is busy: wait on
				continue
			}
			fail("timeout", err)
			return
		default:
			fail(readErr, err)
			return
		}
	}
}

// inspectSTLS terminates the client's STLS with a minted certificate and
// upgrades the server connection with STLS, verified. The server is asked
// first, so a server that refuses STLS has its refusal relayed before the
// client is told anything else. It returns false when the session must
// end.
func (s *session) inspectSTLS() bool {
	if _, err := s.minter(); err != nil {
		s.log.Error("STLS cannot be inspected", "error", err)
		return s.refuse(parser.Err(parser.CodeSysTemp, "STLS not available, try again later"))
	}
	ok, cont := s.serverSTLS()
	if !ok {
		return cont
	}
	if !s.acceptClientSTLS("begin TLS negotiation") {
		return false
	}
	tc, err := s.handshake(s.conn)
	if err != nil {
		s.log.Info("STLS handshake failed", "error", err)
		s.setReason("tls-handshake")
		return false
	}
	s.conn = tc
	s.setupCodec()
	if err := s.upgradeBackend(); err != nil {
		s.log.Warn("server TLS after STLS failed", "error", err)
		s.writeFinal(parser.Err(parser.CodeSysTemp, "backend TLS failed, try again later"))
		s.setReason("backend-error")
		return false
	}
	s.info.Login = filters.Login{Backend: s.info.Login.Backend}
	s.publish()
	return true
}

// upgradeBackend starts TLS on the backend connection after the server
// accepted STLS, verified as backendTLSConfig says, and makes the session
// use it.
func (s *session) upgradeBackend() error {
	old := s.be
	conf := s.backendTLSConfig(s.cfg.Backends[s.be.name])
	tc := tls.Client(old.conn, conf)
	ctx, cancel := context.WithTimeout(s.ctx, s.handshakeTimeout())
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		return fmt.Errorf("server %s: %w", conf.ServerName, err)
	}
	bc := newBackendConn(old.name, tc, 0)
	bc.tc.readTimeout, bc.tc.writeTimeout = old.tc.readTimeout, old.tc.writeTimeout
	bc.tc.onRead = old.tc.onRead
	bc.greeting, bc.timestamp, bc.stop = old.greeting, old.timestamp, old.stop
	s.be = bc
	return nil
}

// handshakeTimeout bounds a TLS handshake of the session.
func (s *session) handshakeTimeout() time.Duration {
	if t := s.limits.HandshakeTimeout; t > 0 {
		return t
	}
	if t := s.cfg.HandshakeTimeout; t > 0 {
		return t
	}
	return DefaultLimits.HandshakeTimeout
}

// inspecting reports whether the session terminates the client's TLS
// with minted certificates: an intercept listener in inspect mode.
func (s *session) inspecting() bool {
	return s.intercepting() && s.lst.InterceptSTLS == InterceptSTLSInspect
}

// serverTLSConfig is the configuration that terminates the client's TLS
// (session.handshake): the listener's or the server's, or, when
// inspecting, one that mints the certificate for the original destination
// and the client's server name.
func (s *session) serverTLSConfig() *tls.Config {
	if s.inspecting() {
		dst := addrPort(s.info.OriginalDest).Addr()
		return &tls.Config{
			MinVersion: tls.VersionTLS12,
			GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
				m, err := s.minter()
				if err != nil {
					return nil, err
				}
				return m.Certificate(dst, hello.ServerName)
			},
		}
	}
	if s.lst.TLSConfig != nil {
		return s.lst.TLSConfig
	}
	return s.cfg.ServerTLS
}

// backendTLSConfig is the configuration that verifies backend b. Behind
// an intercept listener the name verified is the one the client
// asked for (its SNI), else the destination address: what the client
// itself would have checked. The roots are b's (its ca_file), else the
// system's.
func (s *session) backendTLSConfig(b *Backend) *tls.Config {
	if !s.intercepting() {
		return b.TLSConfig
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if b != nil && b.TLSConfig != nil {
		conf = b.TLSConfig.Clone()
	}
	conf.ServerName = s.info.SNI
	if conf.ServerName == "" {
		conf.ServerName = addrPort(s.info.OriginalDest).Addr().String()
	}
	return conf
}

// backendTLSMode is how the session secures its backend connection at
// dial time: as backend b says, except behind an intercept listener,
// where the server is spoken to as the client speaks to popgate: TLS from
// the first octet on an implicit-TLS listener (995), plaintext otherwise,
// upgraded only when the client sends STLS.
func (s *session) backendTLSMode(b *Backend) TLSMode {
	if !s.intercepting() {
		return b.TLS
	}
	if s.lst.TLS == TLSImplicit {
		return TLSImplicit
	}
	return TLSNone
}

// minter returns the Minter of the listener's InterceptCA.
func (s *session) minter() (*Minter, error) {
	if s.lst.InterceptCA == nil {
		return nil, errors.New("intercept_stls is inspect but no intercept CA is configured")
	}
	return minterFor(s.lst.InterceptCA)
}

// minters holds one Minter per CA certificate, so that every session of
// a configuration shares one cache. An entry goes when its certificate is
// garbage: after a reload retired the configuration that held it.
var minters struct {
	mu sync.Mutex
	m  map[weak.Pointer[tls.Certificate]]*Minter
}

// minterFor returns the Minter of ca, making it on first use.
func minterFor(ca *tls.Certificate) (*Minter, error) {
	key := weak.Make(ca)
	minters.mu.Lock()
	defer minters.mu.Unlock()
	if m, ok := minters.m[key]; ok {
		return m, nil
	}
	m, err := NewMinter(ca, 0)
	if err != nil {
		return nil, err
	}
	if minters.m == nil {
		minters.m = make(map[weak.Pointer[tls.Certificate]]*Minter)
	}
	minters.m[key] = m
	runtime.AddCleanup(ca, func(k weak.Pointer[tls.Certificate]) {
		minters.mu.Lock()
		delete(minters.m, k)
		minters.mu.Unlock()
	}, key)
	return m, nil
}

// capaSTLS reports whether CAPA shows STLS to the client, given whether
// the server's CAPA listed it: on an intercept listener, exactly when the
// server offers it, never in refuse mode; on other listeners, when
// popgate itself offers STLS.
func (s *session) capaSTLS(serverOffers bool) bool {
	if s.info.TLS != nil || s.auth.stlsDone {
		return false
	}
	if s.intercepting() {
		return serverOffers && s.lst.InterceptSTLS != InterceptSTLSRefuse
	}
	return s.lst.TLS == TLSStartTLS
}

// checkInterceptTLS refuses an intercept listener in inspect mode whose
// CA cannot mint certificates.
func checkInterceptTLS(l *Listener) error {
	if l.Intercept == InterceptNone || l.InterceptSTLS != InterceptSTLSInspect {
		return nil
	}
	if l.InterceptCA == nil {
		return fmt.Errorf("proxy: listener %q: intercept_stls is inspect but no intercept CA is set", l.Name)
	}
	if _, err := minterFor(l.InterceptCA); err != nil {
		return fmt.Errorf("proxy: listener %q: %w", l.Name, err)
	}
	return nil
}
