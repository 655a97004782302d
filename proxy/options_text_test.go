package proxy

import (
	"strings"
	"testing"
	"time"
)

// textEnum is an option enum with a text form.
type textEnum interface {
	String() string
	MarshalText() ([]byte, error)
}

func TestOptionTextForms(t *testing.T) {
	for _, tc := range []struct {
		v    textEnum
		want string
	}{
		{TLSNone, "none"}, {TLSStartTLS, "starttls"}, {TLSImplicit, "implicit"},
		{ConnectOnAccept, "on-accept"}, {ConnectAfterAuth, "after-auth"},
		{LoginUser, "user"}, {LoginAPOP, "apop"}, {LoginSASLPlain, "sasl-plain"},
		{ForwardNone, "none"}, {ForwardXCLIENT, "xclient"}, {ForwardProxyV1, "proxy-v1"}, {ForwardProxyV2, "proxy-v2"},
	} {
		b, err := tc.v.MarshalText()
		if tc.v.String() != tc.want || string(b) != tc.want || err != nil {
			t.Errorf("%#v: String %q, MarshalText %q, %v; want %q", tc.v, tc.v.String(), b, err, tc.want)
		}
	}
	var m TLSMode
	if err := m.UnmarshalText([]byte("implicit")); err != nil || m != TLSImplicit {
		t.Errorf("UnmarshalText(implicit) = %v, %v", m, err)
	}
	if err := m.UnmarshalText([]byte("ssl")); err == nil || !strings.Contains(err.Error(), "none, starttls, implicit") {
		t.Errorf("UnmarshalText(ssl) = %v", err)
	}
	var c ConnectMode
	if err := c.UnmarshalText([]byte("after-auth")); err != nil || c != ConnectAfterAuth {
		t.Errorf("ConnectMode.UnmarshalText(after-auth) = %v, %v", c, err)
	}
	var l LoginMethod
	if err := l.UnmarshalText([]byte("sasl-plain")); err != nil || l != LoginSASLPlain {
		t.Errorf("LoginMethod.UnmarshalText(sasl-plain) = %v, %v", l, err)
	}
	var f ForwardMode
	if err := f.UnmarshalText([]byte("proxy-v2")); err != nil || f != ForwardProxyV2 {
		t.Errorf("ForwardMode.UnmarshalText(proxy-v2) = %v, %v", f, err)
	}
	if s := TLSMode(7).String(); s != "TLSMode(7)" {
		t.Errorf("TLSMode(7).String() = %q", s)
	}
	if _, err := ForwardMode(-1).MarshalText(); err == nil {
		t.Error("MarshalText of an unknown mode succeeded")
	}
}

// TestZeroLimitsAreDefaults: a zero Limits means DefaultLimits, except for
// the session counts, where zero means no limit, and the handshake
// timeout, which falls back to Config.HandshakeTimeout.
func TestZeroLimitsAreDefaults(t *testing.T) {
	want := DefaultLimits
	want.MaxSessions, want.MaxSessionsPerIP, want.HandshakeTimeout = 0, 0, 0
	if got := (Limits{}).withDefaults(); got != want {
		t.Errorf("Limits{}.withDefaults() = %+v, want %+v", got, want)
	}
	if DefaultLimits.IdleTimeout < 10*time.Minute || DefaultLimits.MaxLine < 255 {
		t.Errorf("DefaultLimits %+v below the RFC minimums", DefaultLimits)
	}
}
