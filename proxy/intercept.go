package proxy

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// Interception (issue 13): a listener with an InterceptMode takes TCP
// connections that the firewall diverted to it and learns, per
// connection, the address the client meant to reach (docs/INTERCEPT.md):
//   - InterceptRedirect: nat redirect or DNAT rewrote the destination;
//     the kernel's connection tracking still knows the original one,
//     which getsockopt(SO_ORIGINAL_DST) (IPv4) or
//     getsockopt(IP6T_SO_ORIGINAL_DST) (IPv6) on the accepted socket
//     returns (intercept_linux.go).
//   - InterceptTProxy: the TPROXY target delivered the packet unchanged to
//     a listener with IP_TRANSPARENT; the accepted socket's local address
//     is the original destination.
//
// The session (accept) stores it in filters.Session.OriginalDest and, for
// an OriginalDestination backend, checks it (destination.go) before
// anything is dialled.

// listen binds l's address, with IP_TRANSPARENT for a TPROXY listener.
func listen(l Listener) (net.Listener, error) {
	var lc net.ListenConfig
	if l.Intercept == InterceptTProxy {
		lc.Control = func(network, _ string, c syscall.RawConn) error {
			return controlTransparent(network, c)
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", l.Address)
	if err != nil {
		return nil, fmt.Errorf("proxy: listener %q: %w", l.Name, err)
	}
	return ln, nil
}

// originalDest returns where the client of conn, accepted on a listener
// of the given mode, meant to connect.
func originalDest(conn net.Conn, mode InterceptMode) (netip.AddrPort, error) {
	switch mode {
	case InterceptTProxy:
		ap := addrPort(conn.LocalAddr())
		if !ap.IsValid() {
			return ap, fmt.Errorf("tproxy: no local address on %T", conn)
		}
		return ap, nil
	case InterceptRedirect:
		sc, ok := conn.(syscall.Conn)
		if !ok {
			return netip.AddrPort{}, fmt.Errorf("redirect: %T has no socket", conn)
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("redirect: %w", err)
		}
		ap, err := originalDstSockopt(rc, addrPort(conn.RemoteAddr()).Addr().Is4())
		if err != nil {
			return netip.AddrPort{}, fmt.Errorf("redirect: SO_ORIGINAL_DST: %w", err)
		}
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	return netip.AddrPort{}, fmt.Errorf("listener does not intercept")
}

// spoofDialer returns a dialer that connects from the client's address
// (IP_TRANSPARENT and a bind to an address that is not the host's); the
// port is left to the kernel, so a client's own connections never clash.
func spoofDialer(client netip.AddrPort) net.Dialer {
	return net.Dialer{
		LocalAddr: &net.TCPAddr{IP: client.Addr().Unmap().AsSlice()},
		Control: func(network, _ string, c syscall.RawConn) error {
			return controlTransparent(network, c)
		},
	}
}

// interceptDest sets the session's original destination, on an intercept
// listener, and refuses a destination its OriginalDestination backend may
// not reach. It returns false when the session must end; the client has
// then been told why.
func (s *session) interceptDest() bool {
	if s.lst.Intercept == InterceptNone {
		return true
	}
	var dst netip.AddrPort
	var err error
	if s.lst.originalDest != nil {
		dst, err = s.lst.originalDest(s.tcp)
	} else {
		dst, err = originalDest(s.tcp, s.lst.Intercept)
	}
	if err != nil {
		s.log.Warn("intercepted connection without an original destination", "error", err)
		s.setReason("no-original-destination")
		s.refuseEarly("-ERR [SYS/TEMP] cannot tell where this connection was going")
		return false
	}
	s.info.OriginalDest = net.TCPAddrFromAddrPort(dst)
	s.log = s.log.With("original_dst", dst.String())
	s.info.Logger = s.log
	b := s.cfg.Backends[s.lst.Backend]
	if b == nil || !b.OriginalDestination {
		return true
	}
	host, herr := s.srv.hosts.get()
	if herr != nil {
		// Without the host's addresses the loop guard is incomplete:
		// refuse rather than risk an open proxy.
		s.log.Error("destination refused", "error", herr)
		s.setReason("destination-denied")
		s.refuseEarly("-ERR [SYS/TEMP] cannot check the destination")
		return false
	}
	if err := checkDestination(b, dst, s.srv.ownAddrs(), host); err != nil {
		s.log.Warn("destination refused", "client", s.info.ClientAddr.String(), "error", err)
		s.setReason("destination-denied")
		s.refuseEarly("-ERR [SYS/PERM] destination not allowed")
		return false
	}
	return true
}

// refuseEarly writes a last line to a client that is refused before its
// session starts (not on implicit TLS, where no handshake happened yet).
func (s *session) refuseEarly(line string) {
	if s.lst.TLS == TLSImplicit {
		return
	}
	s.raw.SetWriteDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(s.raw, "%s\r\n", line)
}
