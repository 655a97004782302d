package apop

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
)

const (
	// maxSecretsLine bounds one line of the secrets file, CRLF included.
	maxSecretsLine = 4096
	// maxSecretsFile bounds the whole secrets file.
	maxSecretsFile = 64 << 20
	// maxUserLength bounds a user name: "USER " + name + CRLF fits the
	// 255-octet command line of RFC 2449 section 4.
	maxUserLength = 248
)

// secrets maps user names to their shared secrets. A secrets value is
// never modified after loadSecrets returns it.
type secrets map[string]string

// loadSecrets reads and parses the secrets file at path. It refuses a file
// that anyone but its owner may access, and anything but a regular file.
func loadSecrets(path string) (secrets, error) {
	if path == "" {
		return nil, errors.New("apop: secrets file not set")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apop: secrets file: %w", err)
	}
	defer f.Close()
	// Stat the open file, not the path, so the mode checked is the mode of
	// the file read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("apop: secrets file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("apop: secrets file %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("apop: secrets file %s has mode %04o; it holds passwords and is refused "+
			"while anyone but its owner can access it (fix: chmod 600 %s)", path, perm, path)
	}
	if fi.Size() > maxSecretsFile {
		return nil, fmt.Errorf("apop: secrets file %s is larger than %d octets", path, maxSecretsFile)
	}
	return parseSecrets(&cappedReader{r: f, left: maxSecretsFile}, path)
}

// errFileTooLarge is returned when the secrets file grows past its bound
// while being read.
var errFileTooLarge = fmt.Errorf("file larger than %d octets", maxSecretsFile)

// cappedReader fails, rather than ending early, once more than left octets
// were read, so a file that grows while read is never parsed truncated.
type cappedReader struct {
	r    io.Reader
	left int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, errFileTooLarge
	}
	return n, err
}

// parseSecrets parses "user:password" lines; name is used in error
// messages, which name the line but never its content.
func parseSecrets(r io.Reader, name string) (secrets, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), maxSecretsLine)
	s := make(secrets)
	first := make(map[string]int)
	n := 0
	for sc.Scan() {
		n++
		line := bytes.TrimSuffix(sc.Bytes(), []byte("\r"))
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		user, pass, ok := bytes.Cut(line, []byte(":"))
		switch {
		case !ok:
			return nil, fmt.Errorf("apop: %s:%d: no ':' (the format is user:password)", name, n)
		case len(user) == 0:
			return nil, fmt.Errorf("apop: %s:%d: empty user name", name, n)
		case len(user) > maxUserLength:
			return nil, fmt.Errorf("apop: %s:%d: user name longer than %d octets", name, n, maxUserLength)
		case bytes.ContainsAny(user, " \t"):
			return nil, fmt.Errorf("apop: %s:%d: user name contains white space", name, n)
		case hasControl(user):
			return nil, fmt.Errorf("apop: %s:%d: user name contains a control character", name, n)
		case len(pass) == 0:
			return nil, fmt.Errorf("apop: %s:%d: empty password", name, n)
		case hasControl(pass):
			return nil, fmt.Errorf("apop: %s:%d: password contains a control character", name, n)
		}
		u := string(user)
		if prev, dup := first[u]; dup {
			return nil, fmt.Errorf("apop: %s:%d: user %q already defined on line %d", name, n, u, prev)
		}
		first[u] = n
		s[u] = string(pass)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("apop: %s:%d: line longer than %d octets", name, n+1, maxSecretsLine)
		}
		return nil, fmt.Errorf("apop: %s: %w", name, err)
	}
	return s, nil
}

// hasControl reports whether b holds an ASCII control character (tab
// included: no POP3 command line may carry one).
func hasControl(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c == 0x7f {
			return true
		}
	}
	return false
}
