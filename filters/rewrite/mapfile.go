package rewrite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// maxMapLine bounds one line of the map file, CRLF included.
const maxMapLine = 1024

// loginMap maps lower-cased client logins to backend logins. It is never
// modified after parseMap returns it.
type loginMap map[string]string

// loadMap reads and parses the map file at path.
func loadMap(path string) (loginMap, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rewrite: map file: %w", err)
	}
	defer f.Close()
	return parseMap(f, path)
}

// parseMap parses lines "login backend-login": two fields separated by
// spaces or tabs. Blank lines and lines whose first non-blank character
// is '#' are ignored. Errors name the file and line.
func parseMap(r io.Reader, name string) (loginMap, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 256), maxMapLine)
	m := make(loginMap)
	first := make(map[string]int)
	n := 0
	for sc.Scan() {
		n++
		line := string(bytes.TrimSuffix(sc.Bytes(), []byte("\r")))
		fields := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' })
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		if len(fields) != 2 {
			return nil, fmt.Errorf("rewrite: %s:%d: want two fields, \"login backend-login\", got %d", name, n, len(fields))
		}
		login, backend := fields[0], fields[1]
		if strings.HasSuffix(login, ":") {
			return nil, fmt.Errorf("rewrite: %s:%d: login %q ends with ':'; the format is \"login backend-login\" without a colon", name, n, login)
		}
		if err := check(login); err != nil {
			return nil, fmt.Errorf("rewrite: %s:%d: login: %w", name, n, err)
		}
		if err := check(backend); err != nil {
			return nil, fmt.Errorf("rewrite: %s:%d: backend login: %w", name, n, err)
		}
		key := strings.ToLower(login)
		if prev, dup := first[key]; dup {
			return nil, fmt.Errorf("rewrite: %s:%d: login %q already mapped on line %d", name, n, login, prev)
		}
		first[key] = n
		m[key] = backend
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("rewrite: %s:%d: line longer than %d octets", name, n+1, maxMapLine)
		}
		return nil, fmt.Errorf("rewrite: %s: %w", name, err)
	}
	return m, nil
}
