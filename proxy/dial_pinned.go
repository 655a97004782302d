package proxy

import (
	"context"
	"net"
)

// dialAddress dials backend b's settings (TLS, login, forward_client,
// master user, timeouts) pinned to one server, addr (host:port), for a
// server an auth_http service named. A TLS server name that was the host
// of b's own address becomes addr's host, so each server is verified as
// itself; an explicit server_name is kept. It is a minimal stand-in for
// the pinned dial of backend pools: drop this file when they provide
// theirs.
func (s *session) dialAddress(ctx context.Context, b *Backend, addr string) (*backendConn, error) {
	pinned := *b
	pinned.Address = addr
	pinned.OriginalDestination = false
	if b.TLSConfig != nil && addr != b.Address {
		own, _, _ := net.SplitHostPort(b.Address)
		host, _, _ := net.SplitHostPort(addr)
		if b.TLSConfig.ServerName == own && host != "" {
			pinned.TLSConfig = b.TLSConfig.Clone()
			pinned.TLSConfig.ServerName = host
		}
	}
	return s.dial(ctx, &pinned)
}
