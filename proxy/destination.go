package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/popgate/popgate/parser"
)

// DestinationRule is one entry of an original_destination backend's
// allowed_destinations or denied_destinations: a network and, optionally,
// one port. Its text form is "10.0.0.0/8", "0.0.0.0/0:110",
// "[2001:db8::/32]:110" (also "[2001:db8::]/32:110"), or a bare address ("192.0.2.7", "[::1]:110"),
// which is a network of one address.
type DestinationRule struct {
	Prefix netip.Prefix // masked
	Port   uint16       // 0 = any port
}

// ParseDestinationRule parses the text form of a DestinationRule.
func ParseDestinationRule(s string) (DestinationRule, error) {
	network, port := s, ""
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]")
		if end < 0 {
			return DestinationRule{}, fmt.Errorf("%q: missing ]", s)
		}
		network, port = s[1:end], s[end+1:]
		if strings.HasPrefix(port, "/") && !strings.Contains(network, "/") {
			// "[::]/0:110": the brackets around the address only.
			bits, rest, _ := strings.Cut(port, ":")
			network, port = network+bits, ":"+rest
			if rest == "" {
				port = ""
			}
		}
		if port != "" && !strings.HasPrefix(port, ":") {
			return DestinationRule{}, fmt.Errorf("%q: after ] only :PORT may follow", s)
		}
		port = strings.TrimPrefix(port, ":")
		if port == "" && strings.HasSuffix(s, ":") {
			return DestinationRule{}, fmt.Errorf("%q: empty port", s)
		}
		if !strings.Contains(network, ":") {
			return DestinationRule{}, fmt.Errorf("%q: brackets are for IPv6 networks", s)
		}
	case strings.Count(s, ":") == 1:
		// IPv4 with a port; a bare IPv6 network has several colons.
		i := strings.LastIndex(s, ":")
		network, port = s[:i], s[i+1:]
		if port == "" {
			return DestinationRule{}, fmt.Errorf("%q: empty port", s)
		}
	}
	var r DestinationRule
	if p, err := netip.ParsePrefix(network); err == nil {
		r.Prefix = p.Masked()
	} else if a, aerr := netip.ParseAddr(network); aerr == nil && a.Zone() == "" {
		r.Prefix = netip.PrefixFrom(a, a.BitLen())
	} else {
		return DestinationRule{}, fmt.Errorf("%q: %q is neither a network (\"10.0.0.0/8\") nor an IP address", s, network)
	}
	if r.Prefix.Addr().Is4In6() {
		return DestinationRule{}, fmt.Errorf("%q: write IPv4-mapped networks as IPv4", s)
	}
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return DestinationRule{}, fmt.Errorf("%q: port %q must be a number from 1 to 65535", s, port)
		}
		r.Port = uint16(n)
	}
	return r, nil
}

// String returns the text form of r.
func (r DestinationRule) String() string {
	switch {
	case r.Port == 0:
		return r.Prefix.String()
	case r.Prefix.Addr().Is6():
		return "[" + r.Prefix.String() + "]:" + strconv.Itoa(int(r.Port))
	}
	return r.Prefix.String() + ":" + strconv.Itoa(int(r.Port))
}

// Matches reports whether dst lies in r's network and, when r names a
// port, has that port. IPv4-mapped IPv6 addresses match as IPv4.
func (r DestinationRule) Matches(dst netip.AddrPort) bool {
	if r.Port != 0 && dst.Port() != r.Port {
		return false
	}
	return r.Prefix.Contains(dst.Addr().Unmap())
}

// matchAny returns the first rule of rules that dst matches.
func matchAny(rules []DestinationRule, dst netip.AddrPort) (DestinationRule, bool) {
	for _, r := range rules {
		if r.Matches(dst) {
			return r, true
		}
	}
	return DestinationRule{}, false
}

// errDestination is the refusal of a destination: the greeting the client
// gets, and the reason in the log.
func errDestination(dst netip.AddrPort, why string) error {
	return parser.NewError(parser.CodeSysPerm, "destination not allowed",
		fmt.Errorf("original destination %s: %s", dst, why))
}

// checkDestination decides whether backend b may connect to dst: it must
// match b.Allowed and match neither b.Denied nor the implicit deny-list,
// which is popgate's own listening addresses (own) and the host's own
// addresses (host) on every port b.Allowed lets through. That closes the
// redirect loop (popgate dialling itself through its own redirect rule)
// and the open proxy (a client asking popgate to reach the gateway's own
// services).
func checkDestination(b *Backend, dst netip.AddrPort, own []netip.AddrPort, host []netip.Addr) error {
	if !dst.IsValid() || dst.Port() == 0 {
		return errDestination(dst, "not a valid address")
	}
	a := dst.Addr().Unmap()
	dst = netip.AddrPortFrom(a, dst.Port())
	if a.IsUnspecified() || a.IsMulticast() {
		return errDestination(dst, "unspecified or multicast address")
	}
	if _, ok := matchAny(b.Allowed, dst); !ok {
		return errDestination(dst, "not in allowed_destinations")
	}
	if r, ok := matchAny(b.Denied, dst); ok {
		return errDestination(dst, "denied by denied_destinations entry "+r.String())
	}
	for _, o := range own {
		oa := o.Addr().Unmap()
		if o.Port() == dst.Port() && (oa == a || oa.IsUnspecified()) {
			return errDestination(dst, "popgate's own listening address "+o.String()+" (a redirect loop)")
		}
	}
	if a.IsLoopback() {
		return errDestination(dst, "a loopback address of this host")
	}
	for _, h := range host {
		if h.Unmap() == a {
			return errDestination(dst, "an address of this host")
		}
	}
	return nil
}

// hostAddrs caches the host's interface addresses for the implicit
// deny-list; they are read again at most every hostAddrsTTL, so a
// session costs no system call while addresses still change (DHCP, new
// interfaces) within seconds.
type hostAddrs struct {
	mu    sync.Mutex
	addrs []netip.Addr
	read  time.Time
}

const hostAddrsTTL = 5 * time.Second

// get returns the host's addresses, reading them when the cache is stale.
func (h *hostAddrs) get() ([]netip.Addr, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.addrs != nil && time.Since(h.read) < hostAddrsTTL {
		return h.addrs, nil
	}
	ifas, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("reading the host's addresses: %w", err)
	}
	out := make([]netip.Addr, 0, len(ifas))
	for _, ifa := range ifas {
		var ip net.IP
		switch v := ifa.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		}
		if a, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, a.Unmap())
		}
	}
	h.addrs, h.read = out, time.Now()
	return out, nil
}

// ownAddrs returns the addresses popgate's listeners are bound to.
func (s *Server) ownAddrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.AddrPort, 0, len(s.listeners))
	for _, bl := range s.listeners {
		if ap := addrPort(bl.ln.Addr()); ap.IsValid() {
			out = append(out, ap)
		}
	}
	return out
}

// errNoOriginalDest means an original_destination backend was dialled by
// a session that has no original destination (not an intercept listener).
var errNoOriginalDest = errors.New("no original destination: the listener does not intercept")
