package proxy

import (
	"context"
	"strings"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// serviceAPOP takes "APOP name digest" (RFC 1939 section 7) on a listener
// whose auth service verifies it: the digest goes to the service as
// Auth-Pass with the greeting's timestamp as Auth-Salt, and the service's
// Auth-Pass logs in to the backend (APOP to USER/PASS). A listener with an
// apop filter never gets here: the filter verifies APOP itself.
func (s *session) serviceAPOP(ctx context.Context, ex *filters.Exchange) error {
	if len(ex.Out.Args) != 2 {
		ex.Response = parser.Err("", "usage: APOP name digest")
		return nil
	}
	s.auth.userPending = false
	name, digest := ex.Out.Args[0], ex.Out.Args[1]
	s.info.Login = filters.Login{User: name, BackendUser: name, Mechanism: "apop"}
	if !validDigestLogin(name, digest) {
		ex.Response = parser.Err(parser.CodeAuth, "authentication failed")
		return nil
	}
	s.info.Login.Password = strings.ToLower(digest)
	s.auth.salt = s.info.Timestamp
	ex.Response = s.login(ctx)
	return nil
}

// serviceCRAM runs AUTH CRAM-MD5 (RFC 2195 with RFC 5034) for the auth
// service: a fresh challenge, "name SP hexdigest" back, and the service
// checks the digest with the challenge as Auth-Salt.
func (s *session) serviceCRAM(ctx context.Context, ex *filters.Exchange, hasIR bool) error {
	if hasIR {
		// RFC 2195 defines no initial response: the server speaks first.
		ex.Response = parser.Err("", "CRAM-MD5 takes no initial response")
		return nil
	}
	challenge := serviceTimestamp()
	line, err := ex.Prompt(ctx, parser.Continue(parser.EncodeSASL([]byte(challenge))))
	if err != nil {
		return err // cancelled ("*"), malformed, or the client is gone
	}
	raw, err := parser.DecodeSASL(line)
	if err != nil {
		return parser.NewError("", "malformed base64 in SASL response", err)
	}
	// The user name ends at the last space (RFC 2195 section 2).
	name, digest := "", ""
	if i := strings.LastIndexByte(string(raw), ' '); i >= 0 {
		name, digest = string(raw[:i]), string(raw[i+1:])
	}
	s.info.Login = filters.Login{User: name, BackendUser: name, Mechanism: "cram-md5"}
	if !validDigestLogin(name, digest) {
		ex.Response = parser.Err(parser.CodeAuth, "authentication failed")
		return nil
	}
	s.info.Login.Password = strings.ToLower(digest)
	s.auth.salt = challenge
	ex.Response = s.login(ctx)
	return nil
}

// validDigestLogin reports whether name could be a login name and digest
// an MD5 digest in hex, before anything is sent to the service.
func validDigestLogin(name, digest string) bool {
	if name == "" || len(name) > 255 || strings.ContainsFunc(name, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		return false
	}
	if len(digest) != 32 {
		return false
	}
	for i := 0; i < len(digest); i++ {
		c := digest[i] | 0x20
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
