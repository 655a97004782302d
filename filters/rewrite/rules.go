package rewrite

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxLoginLength bounds a rewritten login: "USER " + login + CRLF then
// fits the 255-octet command line of RFC 2449 section 4.
const MaxLoginLength = 248

// ErrBadLogin is wrapped by every error about a login the rules cannot
// produce or accept.
var ErrBadLogin = errors.New("rewrite: unusable login")

// rules are the configured rewriting rules other than the map.
type rules struct {
	lowercase   bool
	stripDomain bool
	addDomain   string
}

// apply rewrites name. A map entry for the lower-cased name wins and is
// used verbatim; otherwise lowercase, strip_domain and add_domain apply
// in that order. The result is checked with check.
func (r rules) apply(m loginMap, name string) (string, error) {
	if v, ok := m[strings.ToLower(name)]; ok {
		// Checked when the map was read; checked again so the contract
		// does not depend on it.
		if err := check(v); err != nil {
			return "", fmt.Errorf("login %q mapped to %q: %w", name, v, err)
		}
		return v, nil
	}
	out := name
	if r.lowercase {
		out = strings.ToLower(out)
	}
	if r.stripDomain {
		// The domain follows the last '@' (RFC 5321 section 4.1.2: a
		// quoted local part may itself hold '@').
		if i := strings.LastIndexByte(out, '@'); i >= 0 {
			out = out[:i]
		}
		if out == "" {
			return "", fmt.Errorf("login %q: %w: empty once its domain is stripped", name, ErrBadLogin)
		}
	}
	if r.addDomain != "" && !strings.Contains(out, "@") {
		out += "@" + r.addDomain
	}
	if err := check(out); err != nil {
		return "", fmt.Errorf("login %q rewritten to %q: %w", name, out, err)
	}
	return out, nil
}

// check refuses a login that cannot be sent as a POP3 argument: empty,
// too long, not UTF-8, or holding white space or control characters.
func check(login string) error {
	switch {
	case login == "":
		return fmt.Errorf("%w: empty", ErrBadLogin)
	case len(login) > MaxLoginLength:
		return fmt.Errorf("%w: longer than %d octets", ErrBadLogin, MaxLoginLength)
	case !utf8.ValidString(login):
		return fmt.Errorf("%w: not UTF-8", ErrBadLogin)
	}
	for _, c := range login {
		if unicode.IsSpace(c) || unicode.IsControl(c) {
			return fmt.Errorf("%w: contains white space or a control character", ErrBadLogin)
		}
	}
	return nil
}
