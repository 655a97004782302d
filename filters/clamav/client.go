package clamav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// DefaultTimeout bounds each exchange with clamd when no timeout is given.
const DefaultTimeout = 30 * time.Second

// ErrBadAddress is returned for a clamd address that is not
// "tcp://host:port" or "unix:///absolute/path".
var ErrBadAddress = errors.New("clamav: bad clamd address")

// Client talks to one clamd. It holds no connection: every scan opens its
// own, since clamd serves one INSTREAM command per connection. A Client is
// safe for concurrent use.
type Client struct {
	address string // as given, for logs
	network string // "tcp" or "unix"
	addr    string // host:port or socket path
	timeout time.Duration
}

// NewClient returns a Client for address, "tcp://host:port" or
// "unix:///path/to/clamd.ctl". timeout bounds each exchange with clamd: the
// dial, each chunk written, and the wait for the verdict after the last
// chunk; zero means DefaultTimeout. NewClient does not connect.
func NewClient(address string, timeout time.Duration) (*Client, error) {
	network, addr, err := ParseAddress(address)
	if err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{address: address, network: network, addr: addr, timeout: timeout}, nil
}

// ParseAddress splits a clamd address into a network and an address for
// net.Dial: "tcp://host:port" gives ("tcp", "host:port") and
// "unix:///path" gives ("unix", "/path").
func ParseAddress(address string) (network, addr string, err error) {
	if rest, ok := strings.CutPrefix(address, "tcp://"); ok {
		host, port, err := net.SplitHostPort(rest)
		if err != nil || host == "" || port == "" || strings.ContainsAny(rest, "/?#") {
			return "", "", fmt.Errorf("%w %q: want tcp://host:port", ErrBadAddress, address)
		}
		return "tcp", rest, nil
	}
	if rest, ok := strings.CutPrefix(address, "unix://"); ok {
		if !strings.HasPrefix(rest, "/") || len(rest) < 2 {
			return "", "", fmt.Errorf("%w %q: want unix:///absolute/path", ErrBadAddress, address)
		}
		return "unix", rest, nil
	}
	return "", "", fmt.Errorf("%w %q: want tcp://host:port or unix:///path", ErrBadAddress, address)
}

// Address returns the address the Client was made with.
func (c *Client) Address() string { return c.address }

// dial connects to clamd within the client's timeout and ctx.
func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	d := net.Dialer{Timeout: c.timeout}
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		return nil, fmt.Errorf("clamav: connecting to clamd at %s: %w", c.address, err)
	}
	return conn, nil
}

// Stream connects to clamd and starts an INSTREAM scan. Write the octets
// to scan to the returned Stream, then Close it for the verdict, or Abort
// it. ctx bounds the whole scan: cancelling it ends the scan with ctx's
// error.
func (c *Client) Stream(ctx context.Context) (*Stream, error) {
	start := time.Now()
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	s := newStream(ctx, conn, c.address, c.timeout, start)
	if err := s.send([]byte(cmdInstream)); err != nil {
		s.Abort()
		return nil, err
	}
	return s, nil
}

// Dial connects to the clamd at address with DefaultTimeout and starts an
// INSTREAM scan; it is NewClient(address, 0) followed by Stream(ctx).
func Dial(ctx context.Context, address string) (*Stream, error) {
	c, err := NewClient(address, 0)
	if err != nil {
		return nil, err
	}
	return c.Stream(ctx)
}

// Scan sends everything r yields to clamd and returns the verdict. A read
// error of r ends the scan with that error.
func (c *Client) Scan(ctx context.Context, r io.Reader) (Verdict, error) {
	s, err := c.Stream(ctx)
	if err != nil {
		return Verdict{}, err
	}
	if _, err := io.Copy(s, r); err != nil {
		s.Abort()
		return Verdict{}, err
	}
	return s.Close()
}

// Ping checks that clamd answers: it sends PING and expects PONG.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	s := newStream(ctx, conn, c.address, c.timeout, time.Now())
	defer s.Abort()
	if err := s.send([]byte(cmdPing)); err != nil {
		return err
	}
	reply, err := s.readReply()
	if err != nil {
		return err
	}
	if reply != "PONG" {
		return fmt.Errorf("clamav: clamd at %s answered PING with %q", c.address, reply)
	}
	return nil
}
