package authhttp

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ErrService marks every failure to get a usable answer from the service:
// it is down, slow, or its answer is malformed. The login then fails with
// [SYS/TEMP], never [AUTH].
var ErrService = errors.New("auth_http service failed")

// serviceError wraps why as an ErrService.
func serviceError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrService, fmt.Sprintf(format, args...))
}

// Answer is the service's verdict on one login.
type Answer struct {
	// OK is true for "Auth-Status: OK".
	OK bool
	// Status is the Auth-Status text of a refusal: what the client is told.
	Status string
	// Wait is Auth-Wait: how long to hold a refusal back (0 = none).
	Wait time.Duration
	// Server is Auth-Server as sent ("" = none): an IP address, or, as a
	// popgate extension, the name of a backend block.
	Server string
	// Port is Auth-Port; 0 when absent.
	Port int
	// User is Auth-User: the backend login name ("" = keep the client's).
	User string
	// Pass is Auth-Pass when HasPass: the backend password.
	Pass    string
	HasPass bool
	// Cached is true when the answer came from the cache.
	Cached bool
}

// parseAnswer reads the headers of a service answer for a login of
// method m. The HTTP status is ignored, as nginx ignores it; a missing
// Auth-Status, a bad Auth-Port, or an OK without Auth-Pass for a digest
// login is an ErrService.
func parseAnswer(h http.Header, m Method) (*Answer, error) {
	status, ok := single(h, "Auth-Status")
	if !ok {
		return nil, serviceError("answer without a single Auth-Status header")
	}
	status = strings.TrimSpace(status)
	a := &Answer{}
	if w, ok := single(h, "Auth-Wait"); ok {
		// nginx ignores an Auth-Wait that is not a number.
		if n, err := strconv.Atoi(strings.TrimSpace(w)); err == nil && n > 0 {
			a.Wait = min(time.Duration(n)*time.Second, MaxWait)
		}
	}
	switch status {
	case "OK":
		a.OK = true
	case "":
		return nil, serviceError("empty Auth-Status")
	default:
		a.Status = status
		return a, nil // "WAIT" included: the caller repeats
	}
	a.Server, _ = single(h, "Auth-Server")
	a.Server = strings.TrimSpace(a.Server)
	if p, ok := single(h, "Auth-Port"); ok {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 65535 {
			return nil, serviceError("invalid Auth-Port %q", p)
		}
		a.Port = n
	}
	if u, ok := single(h, "Auth-User"); ok {
		if u == "" || strings.ContainsFunc(u, badUserRune) {
			return nil, serviceError("invalid Auth-User")
		}
		a.User = u
	}
	if p, ok := single(h, "Auth-Pass"); ok {
		if strings.ContainsAny(p, "\r\n\x00") {
			return nil, serviceError("invalid Auth-Pass") // never its value
		}
		a.Pass, a.HasPass = p, true
	}
	if m.needsPass() && !a.HasPass {
		return nil, serviceError("OK for an %s login without Auth-Pass", m)
	}
	return a, nil
}

// single returns the value of header name when it is present exactly once.
func single(h http.Header, name string) (string, bool) {
	v := h.Values(name)
	if len(v) != 1 {
		return "", false
	}
	return v[0], true
}

// badUserRune reports the characters a POP3 USER argument cannot carry.
func badUserRune(r rune) bool { return r <= ' ' || r == 0x7f }
