//go:build linux

package proxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from
// linux/netfilter_ipv6/ip6_tables.h (level SOL_IPV6); x/sys/unix lacks it.
const ip6tSOOriginalDst = 80

// originalDstSockopt reads the pre-NAT destination of a connection from
// connection tracking: SO_ORIGINAL_DST at SOL_IP fills a sockaddr_in,
// IP6T_SO_ORIGINAL_DST at SOL_IPV6 a sockaddr_in6. x/sys/unix has no
// getsockopt of an arbitrary buffer, so the two getters whose structs are
// at least that large (IPv6Mreq: 20 octets, IPv6MTUInfo: 32, starting
// with a RawSockaddrInet6) read them. ipv4First says which family to try
// first (the client's); the other is tried when it fails.
func originalDstSockopt(rc syscall.RawConn, ipv4First bool) (netip.AddrPort, error) {
	var ap netip.AddrPort
	var opErr error
	err := rc.Control(func(fd uintptr) {
		tries := []func(int) (netip.AddrPort, error){origDst4, origDst6}
		if !ipv4First {
			tries[0], tries[1] = tries[1], tries[0]
		}
		var errs []error
		for _, try := range tries {
			a, err := try(int(fd))
			if err == nil {
				ap = a
				return
			}
			errs = append(errs, err)
		}
		opErr = errors.Join(errs...)
	})
	if err != nil {
		return netip.AddrPort{}, err
	}
	return ap, opErr
}

func origDst4(fd int) (netip.AddrPort, error) {
	m, err := unix.GetsockoptIPv6Mreq(fd, unix.SOL_IP, unix.SO_ORIGINAL_DST)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("IPv4: %w", err)
	}
	// struct sockaddr_in: family, port (network order), address.
	b := m.Multiaddr
	if fam := binary.NativeEndian.Uint16(b[0:2]); fam != unix.AF_INET {
		return netip.AddrPort{}, fmt.Errorf("IPv4: address family %d", fam)
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4])), nil
}

func origDst6(fd int) (netip.AddrPort, error) {
	mi, err := unix.GetsockoptIPv6MTUInfo(fd, unix.SOL_IPV6, ip6tSOOriginalDst)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("IPv6: %w", err)
	}
	sa := mi.Addr
	if sa.Family != unix.AF_INET6 {
		return netip.AddrPort{}, fmt.Errorf("IPv6: address family %d", sa.Family)
	}
	// Port holds the octets of the network-order port as they lie in memory.
	var pb [2]byte
	binary.NativeEndian.PutUint16(pb[:], sa.Port)
	port := binary.BigEndian.Uint16(pb[:])
	return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), port), nil
}

// controlTransparent sets IP_TRANSPARENT (and IPV6_TRANSPARENT on an
// IPv6 socket) so the socket may accept connections to, or bind to,
// addresses that are not the host's: TPROXY listeners and spoof_source
// dials. It needs CAP_NET_ADMIN.
func controlTransparent(network string, c syscall.RawConn) error {
	var opErr error
	err := c.Control(func(fd uintptr) {
		if strings.HasSuffix(network, "6") {
			if err := unix.SetsockoptInt(int(fd), unix.SOL_IPV6, unix.IPV6_TRANSPARENT, 1); err != nil {
				opErr = fmt.Errorf("IPV6_TRANSPARENT: %w (needs CAP_NET_ADMIN)", err)
				return
			}
			// A dual-stack socket also takes IPv4; IPv6-only ones refuse.
			unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1)
			return
		}
		if err := unix.SetsockoptInt(int(fd), unix.SOL_IP, unix.IP_TRANSPARENT, 1); err != nil {
			opErr = fmt.Errorf("IP_TRANSPARENT: %w (needs CAP_NET_ADMIN)", err)
		}
	})
	if err != nil {
		return err
	}
	return opErr
}
