package proxy

import (
	"strings"

	"github.com/popgate/popgate/parser"
)

// passthroughSASL follows an AUTH exchange that the client runs with the
// backend itself (on-accept mode), one client response at a time. It
// learns the login name where the mechanism carries one in the clear, so
// the audit trail, the log and the throttle name the mailbox for every
// mechanism, and it applies the listener's login rewriting there:
//   - PLAIN (RFC 4616): the authorization identity, or else the
//     authentication identity, from the one response;
//   - LOGIN: the first response is the user name;
//   - CRAM-MD5 (RFC 2195): the response is "name SP digest"; the digest
//     covers only the challenge and the secret, so the name can be
//     rewritten.
//
// Other mechanisms (SCRAM, GSSAPI, ...) bind the name cryptographically or
// hide it: they are relayed unchanged and the login stays nameless.
type passthroughSASL struct {
	s     *session
	mech  string // upper case
	steps int    // client responses seen
}

// step records one client response and returns it as it must go to the
// backend: unchanged, or re-encoded with the rewritten login name.
func (p *passthroughSASL) step(line string) string {
	p.steps++
	if p.steps != 1 || line == "*" {
		return line
	}
	raw, err := parser.DecodeSASL(line)
	if err != nil {
		return line
	}
	switch p.mech {
	case "PLAIN":
		parts := strings.Split(string(raw), "\x00")
		if len(parts) != 3 {
			return line
		}
		i := 1 // the mailbox: the authorization identity when there is one
		if parts[0] != "" {
			i = 0
		}
		var changed bool
		if parts[i], changed = p.login(parts[i]); changed {
			return parser.EncodeSASL([]byte(strings.Join(parts, "\x00")))
		}
	case "LOGIN":
		if name, changed := p.login(string(raw)); changed {
			return parser.EncodeSASL([]byte(name))
		}
	case "CRAM-MD5":
		i := strings.LastIndexByte(string(raw), ' ')
		if i <= 0 {
			return line
		}
		if name, changed := p.login(string(raw[:i])); changed {
			return parser.EncodeSASL([]byte(name + string(raw[i:])))
		}
	}
	return line
}

// login records name as the session's login and returns it rewritten by
// the listener's login rewriters; changed says whether it differs. A name
// a rewriter refuses, or one that is not a plausible login, is recorded
// but sent unchanged: the backend then judges it.
func (p *passthroughSASL) login(name string) (string, bool) {
	s := p.s
	l := &s.info.Login
	if name == "" || len(name) > 255 || strings.ContainsAny(name, " \r\n\x00") {
		return name, false
	}
	l.User, l.BackendUser = name, name
	for _, rw := range s.rewriters {
		if err := rw.RewriteLogin(s.info, l); err != nil {
			l.BackendUser = name
			return name, false
		}
	}
	return l.BackendUser, l.BackendUser != name
}

// saslMechanisms are the mechanism names a login may be recorded under;
// anything else a client types is "other", so that no client string
// becomes a metric label or an audit value of its own.
var saslMechanisms = map[string]bool{
	"plain": true, "login": true, "cram-md5": true, "digest-md5": true, "scram-sha-1": true,
	"scram-sha-256": true, "xoauth2": true, "oauthbearer": true, "gssapi": true, "external": true,
	"anonymous": true, "ntlm": true,
}

// saslMechanism returns the lower-cased mechanism name, or "other".
func saslMechanism(name string) string {
	m := strings.ToLower(name)
	if saslMechanisms[m] {
		return m
	}
	return "other"
}
