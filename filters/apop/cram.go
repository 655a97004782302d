package apop

import (
	"context"
	"strings"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// commandCRAM runs AUTH CRAM-MD5 (RFC 2195 with RFC 5034): it sends a
// fresh challenge, reads "name SP hexdigest" back and verifies the digest
// against the user's secret. The name is only in the client's response,
// where the session cannot see it, so it goes in Exchange.User, whether
// the digest is right or not.
func (f *Filter) commandCRAM(ctx context.Context, ex *filters.Exchange) error {
	if len(ex.Out.Args) > 1 {
		// RFC 2195 defines no initial response: the server speaks first.
		ex.Response = parser.Err("", "CRAM-MD5 takes no initial response")
		return nil
	}
	if ex.Prompt == nil {
		return parser.NewError(parser.CodeSysTemp, "authentication not available", errNoPrompt)
	}
	challenge := f.NewTimestamp()
	line, err := ex.Prompt(ctx, parser.Continue(parser.EncodeSASL([]byte(challenge))))
	if err != nil {
		return err // cancelled ("*"), malformed, or the client is gone
	}
	raw, err := parser.DecodeSASL(line)
	if err != nil {
		return parser.NewError("", "malformed base64 in SASL response", err)
	}
	// RFC 2195 section 2: the user name, a space, and the digest in
	// lower-case hex. The name ends at the last space.
	name, digest := "", ""
	if i := strings.LastIndexByte(string(raw), ' '); i >= 0 {
		name, digest = string(raw[:i]), string(raw[i+1:])
	}
	if validUser(name) {
		ex.User = name
	} else {
		name = "" // never a key of the secrets: fails like an unknown user
	}
	secret, ok := f.verify(name, digest, func(secret string) []byte { return cramDigest(challenge, secret) })
	if !ok {
		f.log(ex).Debug("apop: authentication failed", "user", name, "mechanism", "cram-md5")
		ex.Response = authFailed
		return nil
	}
	f.log(ex).Debug("apop: digest verified", "user", name, "mechanism", "cram-md5")
	return translate(ctx, ex, name, secret)
}

// validUser reports whether name could be a user of the secrets file.
func validUser(name string) bool {
	return name != "" && len(name) <= maxUserLength && !strings.ContainsAny(name, " \t") && !hasControl([]byte(name))
}
