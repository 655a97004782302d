package proxy

import "context"

// dialAddress dials backend b's settings (TLS, login, forward_client,
// master user, timeouts) pinned to one server, addr (host:port), for a
// server an auth_http service named. It is a minimal stand-in for the
// pinned dial of backend pools: drop this file when they provide theirs.
func (s *session) dialAddress(ctx context.Context, b *Backend, addr string) (*backendConn, error) {
	pinned := *b
	pinned.Address = addr
	pinned.OriginalDestination = false
	return s.dial(ctx, &pinned)
}
