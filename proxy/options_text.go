package proxy

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// DefaultLimits are the documented default limits (docs/CONFIG.md): what
// a zero field of Limits stands for, and the limits of a configuration
// that sets none. MaxSessions and MaxSessionsPerIP are defaults of the
// configuration file only: zero in Limits means no limit. HandshakeTimeout
// applies when neither Limits nor Config sets one. Do not modify it.
var DefaultLimits = Limits{
	MaxLine:          255, // RFC 2449 section 4
	MaxErrors:        5,
	MaxAuthTries:     3,
	PreLoginTimeout:  60 * time.Second,
	IdleTimeout:      10 * time.Minute, // RFC 1939 section 3
	WriteTimeout:     60 * time.Second,
	PipelineDepth:    128,
	BackendTimeout:   60 * time.Second,
	HandshakeTimeout: 15 * time.Second,
	MaxSessions:      10000,
	MaxSessionsPerIP: 50,
	IPv6Prefix:       64,
}

// DefaultConnectTimeout is what a zero Backend.ConnectTimeout stands for.
const DefaultConnectTimeout = 10 * time.Second

// The text forms of the option enums, indexed by value: the words of the
// configuration file (docs/CONFIG.md).
var (
	tlsModeNames       = []string{TLSNone: "none", TLSStartTLS: "starttls", TLSImplicit: "implicit"}
	connectModeNames   = []string{ConnectOnAccept: "on-accept", ConnectAfterAuth: "after-auth"}
	loginMethodNames   = []string{LoginUser: "user", LoginAPOP: "apop", LoginSASLPlain: "sasl-plain"}
	forwardModeNames   = []string{ForwardNone: "none", ForwardXCLIENT: "xclient", ForwardProxyV1: "proxy-v1", ForwardProxyV2: "proxy-v2"}
	interceptNames     = []string{InterceptNone: "none", InterceptRedirect: "redirect", InterceptTProxy: "tproxy"}
	interceptSTLSNames = []string{InterceptSTLSTunnel: "tunnel", InterceptSTLSInspect: "inspect", InterceptSTLSRefuse: "refuse"}
)

// String returns "none", "starttls" or "implicit".
func (m TLSMode) String() string { return enumString(tlsModeNames, m, "TLSMode") }

// MarshalText returns the text form of m (String); an unknown mode is an
// error.
func (m TLSMode) MarshalText() ([]byte, error) { return enumMarshal(tlsModeNames, m, "TLS mode") }

// UnmarshalText sets m from its text form: "none", "starttls" or
// "implicit".
func (m *TLSMode) UnmarshalText(text []byte) error {
	return enumUnmarshal(tlsModeNames, text, m, "TLS mode")
}

// String returns "on-accept" or "after-auth".
func (m ConnectMode) String() string { return enumString(connectModeNames, m, "ConnectMode") }

// MarshalText returns the text form of m (String); an unknown mode is an
// error.
func (m ConnectMode) MarshalText() ([]byte, error) {
	return enumMarshal(connectModeNames, m, "connect mode")
}

// UnmarshalText sets m from its text form: "on-accept" or "after-auth".
func (m *ConnectMode) UnmarshalText(text []byte) error {
	return enumUnmarshal(connectModeNames, text, m, "connect mode")
}

// String returns "user", "apop" or "sasl-plain".
func (m LoginMethod) String() string { return enumString(loginMethodNames, m, "LoginMethod") }

// MarshalText returns the text form of m (String); an unknown method is
// an error.
func (m LoginMethod) MarshalText() ([]byte, error) {
	return enumMarshal(loginMethodNames, m, "login method")
}

// UnmarshalText sets m from its text form: "user", "apop" or
// "sasl-plain".
func (m *LoginMethod) UnmarshalText(text []byte) error {
	return enumUnmarshal(loginMethodNames, text, m, "login method")
}

// String returns "none", "xclient", "proxy-v1" or "proxy-v2".
func (m ForwardMode) String() string { return enumString(forwardModeNames, m, "ForwardMode") }

// MarshalText returns the text form of m (String); an unknown mode is an
// error.
func (m ForwardMode) MarshalText() ([]byte, error) {
	return enumMarshal(forwardModeNames, m, "forward mode")
}

// UnmarshalText sets m from its text form: "none", "xclient", "proxy-v1"
// or "proxy-v2".
func (m *ForwardMode) UnmarshalText(text []byte) error {
	return enumUnmarshal(forwardModeNames, text, m, "forward mode")
}

// String returns "none", "redirect" or "tproxy".
func (m InterceptMode) String() string { return enumString(interceptNames, m, "InterceptMode") }

// MarshalText returns the text form of m (String); an unknown mode is an
// error.
func (m InterceptMode) MarshalText() ([]byte, error) {
	return enumMarshal(interceptNames, m, "intercept mode")
}

// UnmarshalText sets m from its text form: "none", "redirect" or
// "tproxy".
func (m *InterceptMode) UnmarshalText(text []byte) error {
	return enumUnmarshal(interceptNames, text, m, "intercept mode")
}

// String returns "tunnel", "inspect" or "refuse".
func (m InterceptSTLSMode) String() string {
	return enumString(interceptSTLSNames, m, "InterceptSTLSMode")
}

// MarshalText returns the text form of m (String); an unknown mode is an
// error.
func (m InterceptSTLSMode) MarshalText() ([]byte, error) {
	return enumMarshal(interceptSTLSNames, m, "intercept STLS mode")
}

// UnmarshalText sets m from its text form: "tunnel", "inspect" or
// "refuse".
func (m *InterceptSTLSMode) UnmarshalText(text []byte) error {
	return enumUnmarshal(interceptSTLSNames, text, m, "intercept STLS mode")
}

// enumString returns the name of v, or "Type(N)" when it has none.
func enumString[T ~int](names []string, v T, typ string) string {
	if v >= 0 && int(v) < len(names) {
		return names[v]
	}
	return typ + "(" + strconv.Itoa(int(v)) + ")"
}

// enumMarshal returns the name of v; a value without a name is an error.
func enumMarshal[T ~int](names []string, v T, what string) ([]byte, error) {
	if v >= 0 && int(v) < len(names) {
		return []byte(names[v]), nil
	}
	return nil, fmt.Errorf("proxy: unknown %s %d", what, int(v))
}

// enumUnmarshal sets *v to the value named text.
func enumUnmarshal[T ~int](names []string, text []byte, v *T, what string) error {
	for i, n := range names {
		if string(text) == n {
			*v = T(i)
			return nil
		}
	}
	return fmt.Errorf("proxy: %q is not a %s (want %s)", text, what, strings.Join(names, ", "))
}
