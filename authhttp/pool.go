package authhttp

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"
)

// pool keeps connections to the service alive between requests and makes
// each request on the caller's goroutine: net/http writes the request
// (Request.Write) and parses the answer (ReadResponse), and no goroutine
// hands a request to another, which at a thousand logins a second is most
// of a Transport's cost. The Client's slots bound the requests in flight,
// and so the connections in use; at most cap(idle) more wait idle. The
// pool owns its connections: a request borrows one and gives it back only
// when its answer was read to the end.
type pool struct {
	u       *url.URL
	addr    string // host:port to dial
	tlsConf *tls.Config
	timeout time.Duration // dial and TLS handshake
	idleFor time.Duration // an idle connection older than this is closed, not reused

	mu   sync.Mutex
	idle []*poolConn // most recently used last
	max  int
}

// maxAnswer bounds what one answer may read from the service: its status
// line and headers, and the 4 KiB of body read to keep the connection.
// nginx reads an auth_http answer into a 1 KiB buffer; a service that
// sends more than this is broken or hostile, and the login fails with
// ErrService rather than reading it into memory.
const maxAnswer = 64 << 10

// poolConn is one kept-alive connection.
type poolConn struct {
	net.Conn
	lr   *io.LimitedReader // under br: set to maxAnswer before each answer
	br   *bufio.Reader
	bw   *bufio.Writer
	used time.Time
}

func newPool(u *url.URL, max int, timeout time.Duration) *pool {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	p := &pool{u: u, addr: net.JoinHostPort(u.Hostname(), port), timeout: timeout, idleFor: 30 * time.Second, max: max}
	if u.Scheme == "https" {
		p.tlsConf = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	return p
}

// get returns an idle connection, or dials a new one; reused tells which.
func (p *pool) get(ctx context.Context) (c *poolConn, reused bool, err error) {
	now := time.Now()
	p.mu.Lock()
	for len(p.idle) > 0 {
		c = p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(c.used) < p.idleFor {
			p.mu.Unlock()
			return c, true, nil
		}
		c.Close()
	}
	p.mu.Unlock()
	d := net.Dialer{Timeout: p.timeout, KeepAlive: 30 * time.Second}
	var conn net.Conn
	if p.tlsConf != nil {
		conn, err = (&tls.Dialer{NetDialer: &d, Config: p.tlsConf}).DialContext(ctx, "tcp", p.addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", p.addr)
	}
	if err != nil {
		return nil, false, err
	}
	lr := &io.LimitedReader{R: conn}
	return &poolConn{Conn: conn, lr: lr, br: bufio.NewReaderSize(lr, 4096), bw: bufio.NewWriterSize(conn, 2048)}, false, nil
}

// put gives c back for reuse, or closes it when the pool is full.
func (p *pool) put(c *poolConn) {
	c.used = time.Now()
	c.SetDeadline(time.Time{})
	p.mu.Lock()
	if len(p.idle) < p.max {
		p.idle = append(p.idle, c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// closeIdle closes every idle connection.
func (p *pool) closeIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// roundTrip sends req and returns the answer's headers and status. A
// kept-alive connection the service closed meanwhile fails before any
// answer arrives: the GET, which changes nothing, is then sent once more
// on a new connection.
func (p *pool) roundTrip(ctx context.Context, req *http.Request) (http.Header, int, error) {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return nil, 0, fmt.Errorf("connect: %w", err)
		}
		h, status, answered, err := p.exchange(ctx, c, req)
		if err == nil {
			return h, status, nil
		}
		c.Close()
		if reused && !answered && attempt == 0 && ctx.Err() == nil {
			continue
		}
		return nil, 0, err
	}
}

// exchange makes one request on c. answered reports whether any of the
// answer had arrived when it failed. c goes back to the pool only after a
// complete answer that lets the connection stay open.
func (p *pool) exchange(ctx context.Context, c *poolConn, req *http.Request) (h http.Header, status int, answered bool, err error) {
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := req.Write(c.bw); err != nil {
		return nil, 0, false, fmt.Errorf("send: %w", err)
	}
	if err := c.bw.Flush(); err != nil {
		return nil, 0, false, fmt.Errorf("send: %w", err)
	}
	c.lr.N = maxAnswer
	if _, err := c.br.Peek(1); err != nil {
		return nil, 0, false, fmt.Errorf("read: %w", err)
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		if c.lr.N <= 0 {
			return nil, 0, true, fmt.Errorf("read: answer header larger than %d octets", maxAnswer)
		}
		return nil, 0, true, fmt.Errorf("read: %w", err)
	}
	// Read a little of the body so the connection can be kept; a service
	// that sends more loses the connection, not the answer.
	n, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10+1))
	resp.Body.Close()
	if err == nil && n <= 4<<10 && !resp.Close && stop() {
		p.put(c)
	} else {
		c.Close()
	}
	return resp.Header, resp.StatusCode, true, nil
}
