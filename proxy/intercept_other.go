//go:build !linux

package proxy

import (
	"errors"
	"net/netip"
	"syscall"
)

var errInterceptOS = errors.New("interception needs Linux (netfilter)")

func originalDstSockopt(syscall.RawConn, bool) (netip.AddrPort, error) {
	return netip.AddrPort{}, errInterceptOS
}

func controlTransparent(string, syscall.RawConn) error { return errInterceptOS }
