package apop

import (
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"time"
)

// apopDigest returns the APOP digest of RFC 1939 section 7: the MD5 of
// the timestamp (with its angle brackets) followed by the shared secret.
func apopDigest(timestamp, secret string) []byte {
	h := md5.New()
	h.Write([]byte(timestamp))
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// cramDigest returns the CRAM-MD5 digest of RFC 2195 section 2:
// HMAC-MD5 (RFC 2104) of the challenge keyed with the shared secret.
func cramDigest(challenge, secret string) []byte {
	h := hmac.New(md5.New, []byte(secret))
	h.Write([]byte(challenge))
	return h.Sum(nil)
}

// verify checks the hex digest a client gave for name. It computes a
// digest whether or not name is known (with a decoy secret when it is
// not) and compares in constant time, so an unknown user and a wrong
// digest take the same path. Hex is accepted in either case. It returns
// the secret when the digest is right.
func (f *Filter) verify(name, given string, digest func(secret string) []byte) (string, bool) {
	secret, known := (*f.secrets.Load())[name]
	key := secret
	if !known {
		key = f.decoy
	}
	want := digest(key)
	got, err := hex.DecodeString(given)
	if err != nil {
		got = nil
	}
	match := subtle.ConstantTimeCompare(want, got) == 1
	if !known || !match {
		return "", false
	}
	return secret, true
}

// VerifyPassword reports whether password is name's secret. Unknown
// users are compared against a decoy, in constant time, so they take the
// same path as a wrong password. It implements filters.PasswordVerifier:
// the proxy calls it for USER/PASS and AUTH PLAIN and LOGIN, and for the
// USER/PASS this filter makes of a verified APOP or CRAM-MD5, before a
// master-user login.
func (f *Filter) VerifyPassword(name, password string) bool {
	secret, known := (*f.secrets.Load())[name]
	key := secret
	if !known {
		key = f.decoy
	}
	// Hash both sides so the comparison takes the same time whatever
	// their lengths.
	want, got := sha256.Sum256([]byte(key)), sha256.Sum256([]byte(password))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1 && known
}

// NewTimestamp returns a fresh, unique "<random.nanoseconds@host>" string
// (RFC 1939 section 7 msg-id form), used as the CRAM-MD5 challenge. It is
// equally fit for the APOP timestamp of a greeting; it is safe for
// concurrent use.
func (f *Filter) NewTimestamp() string {
	var b [12]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24+)
	return fmt.Sprintf("<%s.%d@%s>", hex.EncodeToString(b[:]), time.Now().UnixNano(), f.host)
}

// newDecoy returns a random secret for unknown users.
func newDecoy() string {
	var b [24]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
