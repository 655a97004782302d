package proxy

import (
	"context"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseDestinationRule(t *testing.T) {
	good := []struct {
		in     string
		prefix string
		port   uint16
		text   string // String(), when it differs from in
	}{
		{"0.0.0.0/0:110", "0.0.0.0/0", 110, ""},
		{"10.0.0.0/8", "10.0.0.0/8", 0, ""},
		{"10.1.2.3/8:995", "10.0.0.0/8", 995, "10.0.0.0/8:995"}, // host bits masked
		{"192.0.2.7", "192.0.2.7/32", 0, "192.0.2.7/32"},
		{"192.0.2.7:110", "192.0.2.7/32", 110, "192.0.2.7/32:110"},
		{"[2001:db8::/32]:110", "2001:db8::/32", 110, ""},
		{"2001:db8::/32", "2001:db8::/32", 0, ""},
		{"[::]/0:110", "::/0", 110, "[::/0]:110"},
		{"[::/0]:110", "::/0", 110, ""},
		{"::1", "::1/128", 0, "::1/128"},
		{"[2001:db8::7]:995", "2001:db8::7/128", 995, "[2001:db8::7/128]:995"},
	}
	for _, c := range good {
		r, err := ParseDestinationRule(c.in)
		if err != nil {
			t.Errorf("ParseDestinationRule(%q): %v", c.in, err)
			continue
		}
		if r.Prefix != netip.MustParsePrefix(c.prefix) || r.Port != c.port {
			t.Errorf("ParseDestinationRule(%q) = %v port %d, want %s port %d", c.in, r.Prefix, r.Port, c.prefix, c.port)
		}
		want := c.text
		if want == "" {
			want = c.in
		}
		if r.String() != want {
			t.Errorf("%q prints as %q, want %q", c.in, r.String(), want)
		}
		if back, err := ParseDestinationRule(r.String()); err != nil || back != r {
			t.Errorf("%q does not round-trip: %v, %v", r.String(), back, err)
		}
	}
	bad := []string{
		"", "pop.example.com:110", "10.0.0.0/33", "10.0.0.0/8:", "10.0.0.0/8:0", "10.0.0.0/8:65536",
		"10.0.0.0/8:pop3", "[10.0.0.0/8]:110", "[2001:db8::/32", "[2001:db8::/32]110", "[2001:db8::/32]:",
		"::ffff:10.0.0.0/104", "fe80::1%eth0",
	}
	for _, s := range bad {
		if r, err := ParseDestinationRule(s); err == nil {
			t.Errorf("ParseDestinationRule(%q) = %v, want an error", s, r)
		}
	}
}

func mustRules(t *testing.T, texts ...string) []DestinationRule {
	t.Helper()
	var out []DestinationRule
	for _, s := range texts {
		r, err := ParseDestinationRule(s)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestDestinationRuleMatches(t *testing.T) {
	cases := []struct {
		rule, dst string
		want      bool
	}{
		{"0.0.0.0/0:110", "203.0.113.9:110", true},
		{"0.0.0.0/0:110", "203.0.113.9:995", false},
		{"0.0.0.0/0:110", "[2001:db8::1]:110", false},       // IPv4 rules never match IPv6
		{"0.0.0.0/0:110", "[::ffff:203.0.113.9]:110", true}, // IPv4-mapped is IPv4
		{"10.0.0.0/8", "10.200.0.1:12345", true},
		{"10.0.0.0/8", "11.0.0.1:110", false},
		{"[2001:db8::/32]:110", "[2001:db8:1::5]:110", true},
		{"[2001:db8::/32]:110", "[2001:db9::5]:110", false},
		{"[2001:db8::/32]:110", "[2001:db8::5]:995", false},
		{"[::/0]:110", "203.0.113.9:110", false},
	}
	for _, c := range cases {
		r := mustRules(t, c.rule)[0]
		if got := r.Matches(netip.MustParseAddrPort(c.dst)); got != c.want {
			t.Errorf("%s matches %s = %v, want %v", c.rule, c.dst, got, c.want)
		}
	}
}

func TestCheckDestination(t *testing.T) {
	b := &Backend{
		OriginalDestination: true,
		Allowed:             mustRules(t, "0.0.0.0/0:110", "[::/0]:110", "198.51.100.0/24"),
		Denied:              mustRules(t, "10.0.0.0/8", "[2001:db8:bad::/48]:110"),
	}
	own := []netip.AddrPort{
		netip.MustParseAddrPort("192.0.2.1:1110"),
		netip.MustParseAddrPort("[::]:1995"), // a wildcard listener: every address on its port
	}
	host := []netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8:1::1"), netip.MustParseAddr("127.0.0.1")}
	cases := []struct {
		dst, refusal string // refusal: "" allowed, else a part of the reason
	}{
		{"203.0.113.9:110", ""},
		{"[2001:db8:2::9]:110", ""},
		{"198.51.100.4:1995", "own listening address"}, // allowed network, but popgate's wildcard listener port
		{"198.51.100.4:1110", ""},                      // 1110 is only popgate's on 192.0.2.1
		{"203.0.113.9:995", "not in allowed_destinations"},
		{"10.1.1.1:110", "denied_destinations entry 10.0.0.0/8"},
		{"[2001:db8:bad::1]:110", "denied_destinations"},
		{"192.0.2.1:110", "an address of this host"}, // the gateway's own POP3 server: no open proxy
		{"[::ffff:192.0.2.1]:110", "an address of this host"},
		{"[2001:db8:1::1]:110", "an address of this host"},
		{"127.0.0.1:110", "loopback"},
		{"127.9.9.9:110", "loopback"}, // all of 127/8, not only the addresses of lo
		{"[::1]:110", "loopback"},
		{"0.0.0.0:110", "unspecified"},
		{"203.0.113.9:0", "not a valid address"},
	}
	for _, c := range cases {
		err := checkDestination(b, netip.MustParseAddrPort(c.dst), own, host)
		switch {
		case c.refusal == "" && err != nil:
			t.Errorf("%s refused: %v", c.dst, err)
		case c.refusal != "" && err == nil:
			t.Errorf("%s allowed, want refused (%s)", c.dst, c.refusal)
		case c.refusal != "" && !strings.Contains(errorChain(err), c.refusal):
			t.Errorf("%s refused for %q, want %q", c.dst, errorChain(err), c.refusal)
		case err != nil && !strings.Contains(err.Error(), "[SYS/PERM]"):
			t.Errorf("%s: the client's answer %q lacks [SYS/PERM]", c.dst, err.Error())
		}
	}
	if err := checkDestination(&Backend{OriginalDestination: true}, netip.MustParseAddrPort("203.0.113.9:110"), nil, nil); err == nil {
		t.Error("an empty allow-list allowed a destination")
	}
}

// errorChain renders err and every error it wraps.
func errorChain(err error) string {
	var b strings.Builder
	for ; err != nil; err = unwrap(err) {
		b.WriteString(err.Error())
		b.WriteString(" | ")
	}
	return b.String()
}

func unwrap(err error) error {
	u, ok := err.(interface{ Unwrap() error })
	if !ok {
		return nil
	}
	return u.Unwrap()
}

func TestHostAddrsIncludeLoopback(t *testing.T) {
	var h hostAddrs
	addrs, err := h.get()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range addrs {
		found = found || a.IsLoopback()
	}
	if !found {
		t.Fatalf("host addresses %v lack the loopback address", addrs)
	}
	again, _ := h.get()
	if &again[0] != &addrs[0] {
		t.Error("a second read within the TTL did not use the cache")
	}
}

// A TPROXY listener (IP_TRANSPARENT, so root on Linux) reads the original
// destination as the accepted socket's local address. Connected to
// directly, that is popgate's own listener: the client is greeted
// -ERR [SYS/PERM] and nothing is dialled, whatever the allow-list says.
// The redirect mode's SO_ORIGINAL_DST needs a nat rule, so it is proven by
// the namespace tests (integration/, engineer C).
func TestTProxyListenerRefusesItsOwnAddress(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Skip("IP_TRANSPARENT needs Linux and CAP_NET_ADMIN")
	}
	for _, allowed := range []string{"0.0.0.0/0", "192.0.2.0/24:110"} {
		t.Run(allowed, func(t *testing.T) {
			var dials atomic.Int32
			cfg := &Config{
				Listeners: []Listener{{Name: "intercept", Address: "127.0.0.1:0", Intercept: InterceptTProxy, Backend: "original"}},
				Backends: map[string]*Backend{"original": {
					Name: "original", OriginalDestination: true, Allowed: mustRules(t, allowed),
				}},
				Hooks: Hooks{BackendDial: func(string, time.Duration, error) { dials.Add(1) }},
			}
			srv := New(nil)
			if err := srv.Start(cfg); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			c := dialClient(t, srv.Addr("intercept").String())
			c.expect("-ERR [SYS/PERM] destination not allowed")
			if _, err := c.r.ReadByte(); err != io.EOF {
				t.Errorf("connection still open after the refusal: %v", err)
			}
			if n := dials.Load(); n != 0 {
				t.Errorf("%d backend dials, want none", n)
			}
		})
	}
}

// An ordinary listener never dials an original_destination backend: it
// has no original destination.
func TestOriginalDestinationNeedsInterceptListener(t *testing.T) {
	cfg := &Config{
		Listeners: []Listener{{Name: "plain", Address: "127.0.0.1:0", Backend: "original"}},
		Backends: map[string]*Backend{"original": {
			Name: "original", OriginalDestination: true, Allowed: mustRules(t, "0.0.0.0/0"),
		}},
	}
	srv := New(nil)
	if err := srv.Start(cfg); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	c := dialClient(t, srv.Addr("plain").String())
	c.expect("-ERR [SYS/TEMP]")
}
