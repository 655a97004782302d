package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// dialer opens POP3 connections to loopback targets.
type dialer struct {
	tls     *tls.Config // nil: plaintext
	timeout time.Duration
	bufSize int // read buffer per connection; 0 means 64 KiB
}

// newDialer returns a dialer; with useTLS it verifies servers against the
// PEM file caFile (system roots when empty) or, with insecure, not at all.
func newDialer(useTLS bool, caFile, serverName string, insecure bool, timeout time.Duration) (*dialer, error) {
	d := &dialer{timeout: timeout}
	if !useTLS {
		return d, nil
	}
	conf := &tls.Config{ServerName: serverName, InsecureSkipVerify: insecure}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", caFile)
		}
		conf.RootCAs = pool
	}
	d.tls = conf
	return d, nil
}

// conn is one POP3 client connection. It is not safe for concurrent use,
// except that one goroutine may write while another reads.
type conn struct {
	nc       net.Conn
	r        *bufio.Reader
	w        *bufio.Writer
	timeout  time.Duration
	greeting string
	cipher   string // negotiated TLS cipher suite, "" for plaintext
}

// dial connects to addr, completes the TLS handshake if the dialer has a
// TLS configuration, and reads the greeting, which must be +OK.
func (d *dialer) dial(addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d.timeout)
	defer cancel()
	var nd net.Dialer
	nc, err := nd.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	c := &conn{nc: nc, timeout: d.timeout}
	if d.tls != nil {
		conf := d.tls.Clone()
		if conf.ServerName == "" {
			host, _, _ := net.SplitHostPort(addr)
			conf.ServerName = host
		}
		tc := tls.Client(nc, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		c.nc = tc
		c.cipher = tls.CipherSuiteName(tc.ConnectionState().CipherSuite)
	}
	size := d.bufSize
	if size <= 0 {
		size = 64 << 10
	}
	c.r = bufio.NewReaderSize(c.nc, size)
	c.w = bufio.NewWriterSize(c.nc, 4096)
	g, err := c.status()
	if err != nil {
		c.close()
		return nil, fmt.Errorf("greeting from %s: %w", addr, err)
	}
	c.greeting = g
	return c, nil
}

// close closes the connection.
func (c *conn) close() error { return c.nc.Close() }

// deadline moves the connection's deadline forward by the I/O timeout.
func (c *conn) deadline() { c.nc.SetDeadline(time.Now().Add(c.timeout)) }

// send writes lines, each followed by CRLF, in one write.
func (c *conn) send(lines ...string) error {
	c.deadline()
	for _, l := range lines {
		c.w.WriteString(l)
		c.w.WriteString("\r\n")
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// sendRaw writes b as it is.
func (c *conn) sendRaw(b []byte) error {
	c.deadline()
	if _, err := c.nc.Write(b); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// errNegative is returned for a -ERR answer.
var errNegative = errors.New("-ERR answer")

// line reads one CRLF-terminated line, without the CRLF.
func (c *conn) line() (string, error) {
	c.deadline()
	b, err := c.r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return "", fmt.Errorf("read status line: %w", err)
	}
	return string(bytes.TrimRight(b, "\r\n")), nil
}

// status reads a status line and returns it; a -ERR line is returned with
// an error wrapping errNegative.
func (c *conn) status() (string, error) {
	l, err := c.line()
	if err != nil {
		return "", err
	}
	switch {
	case strings.HasPrefix(l, "+OK"):
		return l, nil
	case strings.HasPrefix(l, "-ERR"):
		return l, fmt.Errorf("%w: %q", errNegative, l)
	default:
		return l, fmt.Errorf("not a POP3 status line: %q", l)
	}
}

// cmd sends one command and reads its status line.
func (c *conn) cmd(line string) (string, error) {
	if err := c.send(line); err != nil {
		return "", err
	}
	verb, _, _ := strings.Cut(line, " ")
	s, err := c.status()
	if err != nil {
		return s, fmt.Errorf("%s: %w", verb, err)
	}
	return s, nil
}

// login sends USER and PASS; the password is never part of an error.
func (c *conn) login(user, pass string) error {
	if _, err := c.cmd("USER " + user); err != nil {
		return fmt.Errorf("login %s: %w", user, err)
	}
	if err := c.send("PASS " + pass); err != nil {
		return fmt.Errorf("login %s: %w", user, err)
	}
	if _, err := c.status(); err != nil {
		return fmt.Errorf("login %s: PASS: %w", user, err)
	}
	return nil
}

// quit sends QUIT, expects +OK, and waits for the server to close, so the
// TIME_WAIT state stays on the server's side.
func (c *conn) quit() error {
	defer c.close()
	if _, err := c.cmd("QUIT"); err != nil {
		return err
	}
	c.deadline()
	if n, err := c.r.Discard(1); n != 0 || !errors.Is(err, io.EOF) {
		return fmt.Errorf("QUIT: server did not close the connection (%v)", err)
	}
	return nil
}

// body reads a dot-stuffed multi-line body up to and including its
// terminating line, writes the un-stuffed octets to w (which may be nil)
// and returns how many there were. A connection that ends before the
// terminator yields io.ErrUnexpectedEOF. It scans whole buffers, looking
// only for line starts with a dot, so it costs the client little.
func (c *conn) body(w io.Writer) (int64, error) {
	var n int64
	bol := true // at the beginning of a line
	for {
		c.deadline()
		if _, err := c.r.Peek(1); err != nil {
			return n, fmt.Errorf("read body after %d octets: %w", n, unexpected(err))
		}
		buf, _ := c.r.Peek(c.r.Buffered())
		if bol && buf[0] == '.' {
			if len(buf) < 3 {
				if _, err := c.r.Peek(3); err != nil {
					return n, fmt.Errorf("read body after %d octets: %w", n, unexpected(err))
				}
				continue
			}
			if buf[1] == '\r' && buf[2] == '\n' {
				c.r.Discard(3)
				return n, nil
			}
			c.r.Discard(1) // un-stuff; the rest of the line is data
			bol = false
			continue
		}
		span := buf
		if i := bytes.Index(buf, []byte("\n.")); i >= 0 {
			span = buf[:i+1]
		}
		if w != nil {
			w.Write(span)
		}
		n += int64(len(span))
		bol = span[len(span)-1] == '\n'
		c.r.Discard(len(span))
	}
}

func unexpected(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// digest is the length and SHA-256 of a body.
type digest struct {
	Octets int64
	SHA256 string
}

// retr sends RETR n and reads the answer and body, returning its digest.
func (c *conn) retr(n int) (digest, error) {
	if _, err := c.cmd(fmt.Sprintf("RETR %d", n)); err != nil {
		return digest{}, err
	}
	return c.readDigest(sha256.New())
}

// readDigest reads a body into h and returns its digest.
func (c *conn) readDigest(h hash.Hash) (digest, error) {
	octets, err := c.body(h)
	if err != nil {
		return digest{}, err
	}
	return digest{Octets: octets, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}
