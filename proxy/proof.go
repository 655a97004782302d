package proxy

import (
	"errors"

	"github.com/popgate/popgate/filters"
)

// proof says how a client proved who it is. A session records it in one
// place, session.prove; the backend login takes it as an argument and
// refuses to act for a client on its own say-so (a master login) unless
// the proof is local.
type proof int

const (
	// unproven: the client has claimed a name, nothing has checked it.
	unproven proof = iota
	// byBackend: the backend accepted the client's own credentials.
	byBackend
	// byVerifier: a local filters.PasswordVerifier checked the client's
	// password before the backend saw any credentials.
	byVerifier
)

// String names the proof for logs.
func (p proof) String() string {
	switch p {
	case byBackend:
		return "backend"
	case byVerifier:
		return "local"
	}
	return "none"
}

// errUnproven is the backend login's refusal to log in as a master user
// for a client whose password nothing has checked.
var errUnproven = errors.New("master login refused: the client's password was not verified")

// verifyLocally checks the pending login's password with the listener's
// password verifiers (the apop filter's secrets). It returns byVerifier
// when one accepts, unproven otherwise; the name checked is the one the
// client gave, before rewriting.
func (s *session) verifyLocally(l *filters.Login) proof {
	for _, f := range s.lst.Filters {
		if v, ok := f.(filters.PasswordVerifier); ok && v.VerifyPassword(l.User, l.Password) {
			return byVerifier
		}
	}
	return unproven
}

// prove records that the client has proven who it is, and how. It is the
// only writer of s.auth.proven, and runs on the goroutine that owns the login.
func (s *session) prove(p proof) {
	s.auth.proven = p
	s.log.Debug("client identity proven", "user", s.info.Login.User, "by", p.String())
}
