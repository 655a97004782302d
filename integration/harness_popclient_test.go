//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// popClient is a minimal, byte-exact POP3 client (RFC 1939) for tests. It
// never rewrites what it receives except for removing the dot-stuffing of
// multi-line bodies, and it insists on CRLF line ends.
type popClient struct {
	// Conn is the connection (a *tls.Conn after StartTLS or dialPOPS).
	Conn net.Conn
	// R reads from Conn; use it for raw reads.
	R *bufio.Reader
	// Greeting is the server's first line, without CRLF.
	Greeting string
	// Last is the status line of the latest Cmd or Multi, without CRLF.
	Last string
	// Timeout bounds each Cmd, Multi, ReadLine and ReadBody; default 60 s.
	Timeout time.Duration
}

// popError is a -ERR reply.
type popError struct{ Line string }

// Error returns the reply line.
func (e *popError) Error() string { return "server said: " + e.Line }

// errBareLF reports a line that ends in LF without CR.
var errBareLF = errors.New("line ends in bare LF")

// dialPOP connects over plain TCP and reads the greeting; failures are fatal.
// The connection is closed at cleanup.
func dialPOP(t testing.TB, addr string) *popClient {
	t.Helper()
	c, err := tryDialPOP(addr, nil)
	if err != nil {
		t.Fatalf("dialPOP %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// dialPOPS connects with implicit TLS (POP3S) using cfg and reads the
// greeting; failures are fatal. The connection is closed at cleanup.
func dialPOPS(t testing.TB, addr string, cfg *tls.Config) *popClient {
	t.Helper()
	c, err := tryDialPOP(addr, cfg)
	if err != nil {
		t.Fatalf("dialPOPS %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// tryDialPOP is dialPOP (cfg nil) or dialPOPS that returns errors, for
// tests that expect a failure (the caller closes the client).
func tryDialPOP(addr string, cfg *tls.Config) (*popClient, error) {
	d := net.Dialer{Timeout: 10 * time.Second}
	var conn net.Conn
	var err error
	if cfg != nil {
		conn, err = tls.DialWithDialer(&d, "tcp", addr, cfg)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c := newPopClient(conn)
	if c.Greeting, err = c.ReadLine(); err != nil {
		conn.Close()
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if !strings.HasPrefix(c.Greeting, "+OK") {
		conn.Close()
		return nil, &popError{Line: c.Greeting}
	}
	return c, nil
}

// newPopClient wraps an established connection without reading anything.
func newPopClient(conn net.Conn) *popClient {
	return &popClient{Conn: conn, R: bufio.NewReaderSize(conn, 64<<10), Timeout: 60 * time.Second}
}

// Close closes the connection.
func (c *popClient) Close() error { return c.Conn.Close() }

func (c *popClient) deadline() {
	c.Conn.SetDeadline(time.Now().Add(c.Timeout))
}

// Write sends raw bytes as they are.
func (c *popClient) Write(raw []byte) error {
	c.deadline()
	if _, err := c.Conn.Write(raw); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// ReadLine reads one line and returns it without its CRLF. A line without
// CR before its LF is an error (errBareLF), and so is EOF mid-line.
func (c *popClient) ReadLine() (string, error) {
	c.deadline()
	line, err := c.R.ReadString('\n')
	if err != nil {
		if errors.Is(err, io.EOF) && line != "" {
			err = io.ErrUnexpectedEOF
		}
		return line, fmt.Errorf("read line: %w", err)
	}
	if !strings.HasSuffix(line, "\r\n") {
		return line, fmt.Errorf("read line %q: %w", line, errBareLF)
	}
	return strings.TrimSuffix(line, "\r\n"), nil
}

// ReadBody reads a multi-line body up to and including the ".CRLF"
// terminator and returns it un-stuffed, CRLFs kept, terminator removed.
// Lines may be of any length. EOF before the terminator is
// io.ErrUnexpectedEOF; a line ending in bare LF is errBareLF.
func (c *popClient) ReadBody() ([]byte, error) {
	var body bytes.Buffer
	for {
		// The first fragment of a line: the only place a terminator or a
		// stuffed dot can be.
		c.deadline()
		frag, err := c.R.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			body.Write(frag) // what came before EOF, for the error message
			return body.Bytes(), bodyErr(err)
		}
		whole := err == nil
		if whole && string(frag) == ".\r\n" {
			return body.Bytes(), nil
		}
		if frag[0] == '.' {
			frag = frag[1:]
		}
		body.Write(frag)
		for !whole {
			frag, err = c.R.ReadSlice('\n')
			if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				body.Write(frag)
				return body.Bytes(), bodyErr(err)
			}
			whole = err == nil
			body.Write(frag)
		}
		if !bytes.HasSuffix(body.Bytes(), []byte("\r\n")) {
			return body.Bytes(), fmt.Errorf("read body: %w", errBareLF)
		}
	}
}

func bodyErr(err error) error {
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read body: %w", err)
}

// Cmd sends line plus CRLF and reads the one-line reply. It returns the
// reply without CRLF (also kept in Last) and a *popError if it is -ERR.
func (c *popClient) Cmd(line string) (string, error) {
	if err := c.Write([]byte(line + "\r\n")); err != nil {
		return "", err
	}
	resp, err := c.ReadLine()
	c.Last = resp
	if err != nil {
		return resp, err
	}
	if !strings.HasPrefix(resp, "+") {
		return resp, &popError{Line: resp}
	}
	return resp, nil
}

// Multi sends a command that answers with a multi-line body (RETR, TOP,
// LIST, UIDL, CAPA) and returns the un-stuffed body. The status line is in
// Last; a -ERR reply returns a *popError and no body.
func (c *popClient) Multi(line string) ([]byte, error) {
	if _, err := c.Cmd(line); err != nil {
		return nil, err
	}
	return c.ReadBody()
}

// Login authenticates with USER and PASS.
func (c *popClient) Login(user, pass string) error {
	if _, err := c.Cmd("USER " + user); err != nil {
		return fmt.Errorf("USER: %w", err)
	}
	if _, err := c.Cmd("PASS " + pass); err != nil {
		return fmt.Errorf("PASS: %w", err)
	}
	return nil
}

// APOP authenticates with APOP (RFC 1939 section 7), using the timestamp
// in the greeting.
func (c *popClient) APOP(user, pass string) error {
	i, j := strings.Index(c.Greeting, "<"), strings.LastIndex(c.Greeting, ">")
	if i < 0 || j < i {
		return fmt.Errorf("greeting has no APOP timestamp: %q", c.Greeting)
	}
	sum := md5.Sum([]byte(c.Greeting[i:j+1] + pass))
	if _, err := c.Cmd("APOP " + user + " " + hex.EncodeToString(sum[:])); err != nil {
		return fmt.Errorf("APOP: %w", err)
	}
	return nil
}

// StartTLS sends STLS (RFC 2595) and, on +OK, performs the TLS handshake
// with cfg.
func (c *popClient) StartTLS(cfg *tls.Config) error {
	if _, err := c.Cmd("STLS"); err != nil {
		return fmt.Errorf("STLS: %w", err)
	}
	if c.R.Buffered() != 0 {
		return fmt.Errorf("STLS: %d bytes after +OK before the handshake", c.R.Buffered())
	}
	tc := tls.Client(c.Conn, cfg)
	c.deadline()
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("STLS handshake: %w", err)
	}
	c.Conn = tc
	c.R = bufio.NewReaderSize(tc, 64<<10)
	return nil
}

// tlsClientConfig trusts the CA that signed the Dovecot certificates
// (DOVECOT_CA) and verifies serverName.
func tlsClientConfig(t testing.TB, serverName string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(envValue(t, "DOVECOT_CA"))
	if err != nil {
		t.Fatalf("tlsClientConfig: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("tlsClientConfig: no certificate in %s", envValue(t, "DOVECOT_CA"))
	}
	return &tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}
}
