//go:build integration

package integration

// Helpers of the filter tests (prefix flt), shared by filters_*_test.go:
// the real popgate binary in front of Dovecot A with the filter blocks of
// a test (fltStart), scanning with the real clamd (whose database holds one
// signature, for the EICAR test string), logins, streaming body hashes for
// the 50 MiB message, and direct fetches from Dovecot A to compare with.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// fltListener is the name of the plaintext listener of fltStart.
const fltListener = "pop3"

// fltBackend is the name of the backend (Dovecot A) of fltStart.
const fltBackend = "dovecot"

// fltStart starts popgate with one plaintext listener in front of Dovecot
// A, applying the filter blocks in filterHCL in file order, and returns the
// process and the listener's address.
func fltStart(t *testing.T, filterHCL string) (*Popgate, string) {
	t.Helper()
	addr := freePort(t)
	cfg := fmt.Sprintf(`state_dir = "./state"
log {
  level = "debug"
}
listener %q {
  address = %q
  tls     = "none"
  backend = %q
}
backend %q {
  address = %q
}
%s
`, fltListener, addr, fltBackend, fltBackend, envValue(t, "POP3_ADDR"), filterHCL)
	return startPopgate(t, cfg, addr), addr
}

// fltClamdAddr returns the clamav filter address of the shared clamd over
// "tcp" or "unix".
func fltClamdAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "unix" {
		return "unix://" + envValue(t, "CLAMD_UNIX")
	}
	return "tcp://" + envValue(t, "CLAMD_TCP")
}

// fltClamAV returns a filter "clamav" block; extra lines are added inside.
func fltClamAV(address, onInfected, onError string, extra ...string) string {
	return fmt.Sprintf("filter \"clamav\" {\n  address     = %q\n  on_infected = %q\n  on_error    = %q\n%s}\n",
		address, onInfected, onError, fltLines(extra))
}

// fltLines indents lines of HCL for a block body.
func fltLines(lines []string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// fltLogin connects to popgate at addr and logs user of Dovecot A in.
func fltLogin(t *testing.T, addr, user string) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s through popgate: %v", user, err)
	}
	return c
}

// fltReadBodyTo is popClient.ReadBody that streams the un-stuffed body to
// w instead of holding it, for the 50 MiB message. It returns the octets
// written.
func fltReadBodyTo(c *popClient, w io.Writer) (int64, error) {
	var n int64
	put := func(p []byte) error {
		m, err := w.Write(p)
		n += int64(m)
		return err
	}
	atLineStart := true
	for {
		c.deadline()
		frag, err := c.R.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return n, fmt.Errorf("read body: %w", err)
		}
		whole := err == nil
		if atLineStart {
			if whole && string(frag) == ".\r\n" {
				return n, nil
			}
			if frag[0] == '.' {
				frag = frag[1:]
			}
		}
		if whole && !bytes.HasSuffix(frag, []byte("\r\n")) {
			return n, fmt.Errorf("read body: %w", errBareLF)
		}
		if err := put(frag); err != nil {
			return n, err
		}
		atLineStart = whole
	}
}

// fltRETRSum sends "RETR n" and returns the status line and, for +OK, the
// hex SHA-256 and length of the un-stuffed body.
func fltRETRSum(t *testing.T, c *popClient, n int) (status, sum string, size int64) {
	t.Helper()
	if err := c.Write([]byte(fmt.Sprintf("RETR %d\r\n", n))); err != nil {
		t.Fatal(err)
	}
	return fltReadSum(t, c)
}

// fltReadSum reads one RETR answer: the status line and, for +OK, the hex
// SHA-256 and length of the body.
func fltReadSum(t *testing.T, c *popClient) (status, sum string, size int64) {
	t.Helper()
	status, err := c.ReadLine()
	if err != nil {
		t.Fatalf("RETR status: %v", err)
	}
	if !strings.HasPrefix(status, "+OK") {
		return status, "", 0
	}
	h := sha256.New()
	size, err = fltReadBodyTo(c, h)
	if err != nil {
		t.Fatalf("RETR body after %d octets: %v", size, err)
	}
	return status, hex.EncodeToString(h.Sum(nil)), size
}

// fltDirectSum returns the SHA-256 and length of message n of user as
// Dovecot A sends it without popgate.
func fltDirectSum(t *testing.T, user string, n int) (string, int64) {
	t.Helper()
	c := loginA(t, user)
	status, sum, size := fltRETRSum(t, c, n)
	if !strings.HasPrefix(status, "+OK") {
		t.Fatalf("direct RETR %d of %s: %q", n, user, status)
	}
	c.Cmd("QUIT")
	return sum, size
}

// fltBig caches the direct fetch of user big's 50 MiB message, which
// several tests compare with.
var fltBig struct {
	once sync.Once
	sum  string
	size int64
}

// fltBigSum returns the SHA-256 and length of big's message 1 fetched
// directly from Dovecot A.
func fltBigSum(t *testing.T) (string, int64) {
	t.Helper()
	fltBig.once.Do(func() { fltBig.sum, fltBig.size = fltDirectSum(t, "big", 1) })
	if fltBig.size != 50<<20 {
		t.Fatalf("direct RETR of big's message: %d octets, want %d", fltBig.size, 50<<20)
	}
	return fltBig.sum, fltBig.size
}

// fltDirect returns the un-stuffed bodies of messages ns of user fetched
// directly from Dovecot A, and its UIDL listing.
func fltDirect(t *testing.T, user string, ns ...int) (map[int][]byte, []byte) {
	t.Helper()
	c := loginA(t, user)
	bodies := map[int][]byte{}
	for _, n := range ns {
		b, err := c.Multi(fmt.Sprintf("RETR %d", n))
		if err != nil {
			t.Fatalf("direct RETR %d of %s: %v", n, user, err)
		}
		bodies[n] = b
	}
	uidl, err := c.Multi("UIDL")
	if err != nil {
		t.Fatalf("direct UIDL of %s: %v", user, err)
	}
	c.Cmd("QUIT")
	return bodies, uidl
}

// fltStat logs in to Dovecot A directly and returns STAT's message count.
func fltStat(t *testing.T, user string) int {
	t.Helper()
	c := loginA(t, user)
	n, _ := stat(t, c)
	c.Cmd("QUIT")
	return n
}

// fltVirusMsg is the message of user virus that carries the EICAR string.
const fltVirusMsg = 2

// fltEICARName matches the signature name clamd reports for the EICAR
// string, loosely ("Popgate-Test-EICAR.UNOFFICIAL" here, "Eicar-Signature"
// with the official database).
var fltEICARName = regexp.MustCompile(`(?i)eicar`)
