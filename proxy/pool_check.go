package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"time"

	"github.com/pires/go-proxyproto"

	"github.com/popgate/popgate/parser"
)

// healthChecker runs the active check of one server every
// HealthOptions.Interval: connect, PROXY header, TLS, greeting, STLS as
// the backend is configured, then QUIT. It never logs in, and never sends
// XCLIENT: no client is behind it. Its serverState owns it and stops it.
type healthChecker struct {
	st      *serverState
	backend atomic.Pointer[Backend] // settings of the latest configuration
	cancel  context.CancelFunc
}

func newHealthChecker(st *serverState, b *Backend) *healthChecker {
	ctx, cancel := context.WithCancel(context.Background())
	c := &healthChecker{st: st, cancel: cancel}
	c.backend.Store(b)
	go c.run(ctx, st.opts.Interval)
	return c
}

// stop ends the checker without waiting for it: its goroutine may be
// blocked on the serverState's lock, which the caller holds.
func (c *healthChecker) stop() { c.cancel() }

func (c *healthChecker) run(ctx context.Context, interval time.Duration) {
	// A random first delay spreads the checks of many servers (and of
	// several popgate instances) over the interval.
	t := time.NewTimer(rand.N(interval) + time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if c.st.checkDue() {
			b := c.backend.Load()
			err := probeServer(ctx, b, c.st.addr)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				c.st.failed(fmt.Errorf("active check: %w", err), "check")
			} else {
				c.st.succeeded("check")
			}
		}
		t.Reset(interval)
	}
}

// probeServer is one active check of the server at addr with b's
// settings, bounded by b's connect timeout.
func probeServer(ctx context.Context, b *Backend, addr string) error {
	timeout := b.ConnectTimeout
	if timeout <= 0 {
		timeout = DefaultConnectTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(timeout))
	switch b.Forward {
	case ForwardProxyV1, ForwardProxyV2:
		// No client: a v1 UNKNOWN or v2 LOCAL header (the server's own
		// health check, as haproxy sends it).
		version := byte(1)
		if b.Forward == ForwardProxyV2 {
			version = 2
		}
		hdr := &proxyproto.Header{Version: version, Command: proxyproto.LOCAL, TransportProtocol: proxyproto.UNSPEC}
		if _, err := hdr.WriteTo(conn); err != nil {
			return fmt.Errorf("PROXY header: %w", err)
		}
	}
	if b.TLS == TLSImplicit {
		tc := tls.Client(conn, b.tlsConfigFor(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	r := parser.NewReader(bufio.NewReader(conn), parser.DefaultMaxResponseLine)
	w := parser.NewWriter(bufio.NewWriter(conn))
	cmd := func(c parser.Command) (parser.Response, error) {
		if err := w.WriteCommand(c); err != nil {
			return parser.Response{}, err
		}
		if err := w.Flush(); err != nil {
			return parser.Response{}, err
		}
		return r.ReadResponse()
	}
	g, err := r.ReadResponse()
	if err != nil {
		return fmt.Errorf("reading greeting: %w", err)
	}
	if !g.IsOK() {
		return fmt.Errorf("backend refused the connection: %s", g.String())
	}
	if b.TLS == TLSStartTLS {
		resp, err := cmd(parser.NewCommand("STLS"))
		if err != nil {
			return fmt.Errorf("STLS: %w", err)
		}
		if !resp.IsOK() {
			return errors.New("backend does not offer STLS")
		}
		tc := tls.Client(conn, b.tlsConfigFor(addr))
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("STLS handshake: %w", err)
		}
		r = parser.NewReader(bufio.NewReader(tc), parser.DefaultMaxResponseLine)
		w = parser.NewWriter(bufio.NewWriter(tc))
	}
	// QUIT in AUTHORIZATION ends the connection and deletes nothing
	// (RFC 1939 section 4): the check leaves no trace but a log line.
	if _, err := cmd(parser.NewCommand("QUIT")); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	return nil
}
