package parser

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
)

// MaxMessageNumberDigits bounds a message number or line count: RFC 1939
// numbers fit in ten decimal digits.
const MaxMessageNumberDigits = 10

// MessageNumber parses a message number argument (RFC 1939 section 3:
// decimal, at least 1) as popgate accepts it: 1 to MaxMessageNumberDigits
// digits, no sign, no white space. Leading zeros are allowed, so "01" is
// message 1. It is the one place a message number is parsed.
func MessageNumber(arg string) (int, bool) {
	n, ok := Count(arg)
	return n, ok && n > 0
}

// Count parses a non-negative decimal count such as TOP's line count,
// with the same rules as MessageNumber but allowing 0.
func Count(arg string) (int, bool) {
	if arg == "" || len(arg) > MaxMessageNumberDigits {
		return 0, false
	}
	n := 0
	for i := 0; i < len(arg); i++ {
		c := arg[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

// ErrBadSASL is returned by DecodeSASL for a response that is not base64.
var ErrBadSASL = errors.New("parser: malformed base64 in SASL response")

// DecodeSASL decodes a client's SASL response line (RFC 5034 section 4):
// base64, or "=" for an empty response, which it returns as an empty,
// non-nil slice. A cancellation ("*") is the caller's to check first.
func DecodeSASL(line string) ([]byte, error) {
	if line == "=" {
		return []byte{}, nil
	}
	b, err := base64.StdEncoding.DecodeString(line)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadSASL, err)
	}
	return b, nil
}

// EncodeSASL encodes a SASL challenge or response: base64, with "=" for
// an empty one.
func EncodeSASL(b []byte) string {
	if len(b) == 0 {
		return "="
	}
	return base64.StdEncoding.EncodeToString(b)
}

// MaxCapaOctets bounds a CAPA list read with ReadCapa.
const MaxCapaOctets = 16 * 1024

// ReadCapa reads a decoded CAPA body (RFC 2449 section 5) and returns its
// capability lines, without line ends, in order. A list longer than
// MaxCapaOctets is an error: no honest server sends one.
func ReadCapa(body io.Reader) ([]string, error) {
	sc := bufio.NewScanner(io.LimitReader(body, MaxCapaOctets+1))
	sc.Buffer(make([]byte, 0, 512), MaxCapaOctets+1)
	var lines []string
	n := 0
	for sc.Scan() {
		line := sc.Text()
		n += len(line) + 2
		if n > MaxCapaOctets {
			return nil, errors.New("parser: CAPA list too long")
		}
		lines = append(lines, strings.TrimSuffix(line, "\r"))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("parser: reading CAPA list: %w", err)
	}
	return lines, nil
}

// CapaTag returns a capability line's tag in upper case (the first word):
// "SASL PLAIN LOGIN" gives "SASL".
func CapaTag(line string) string {
	tag, _, _ := strings.Cut(line, " ")
	return strings.ToUpper(tag)
}
