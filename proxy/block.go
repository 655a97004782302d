package proxy

import (
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// The block list: users and client addresses an administrator shut out
// for a while (popgate kick --block). It is local to this process and
// forgotten at restart. A blocked address cannot connect: the connection
// is answered "-ERR [SYS/PERM]" and closed, after the PROXY header, so
// the real client address is what counts. A blocked user cannot log in:
// the login is answered "-ERR [AUTH] authentication failed", exactly like
// a wrong password, before any backend sees the credentials, so a blocked
// account cannot even be used to test passwords. Sessions already open
// are not touched: Kick closes them.

// Block is one entry of the block list.
type Block struct {
	// User is a login name, matched case-insensitively as typed and after
	// rewriting; "" in an address block.
	User string `json:"user,omitempty"`
	// Addr is a client address prefix (a single address is a /32 or
	// /128); the zero Prefix in a user block.
	Addr netip.Prefix `json:"addr,omitzero"`
	// Until is when the block expires.
	Until time.Time `json:"until"`
}

// blockList is the Server's block list. Its zero value is empty and ready;
// checking an empty list costs one atomic load.
type blockList struct {
	n    atomic.Int32 // len(list), read without the lock
	mu   sync.Mutex
	list []Block
}

// add adds b, replacing an entry for the same user or prefix.
func (l *blockList) add(b Block) {
	b.User = strings.ToLower(b.User)
	if b.Addr.IsValid() {
		b.Addr = b.Addr.Masked()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(time.Now())
	for i := range l.list {
		if l.list[i].User == b.User && l.list[i].Addr == b.Addr {
			l.list[i].Until = b.Until
			return
		}
	}
	l.list = append(l.list, b)
	l.n.Store(int32(len(l.list)))
}

// pruneLocked drops expired entries; l.mu is held.
func (l *blockList) pruneLocked(now time.Time) {
	kept := l.list[:0]
	for _, b := range l.list {
		if now.Before(b.Until) {
			kept = append(kept, b)
		}
	}
	clear(l.list[len(kept):])
	l.list = kept
	l.n.Store(int32(len(kept)))
}

// active returns the entries in force.
func (l *blockList) active() []Block {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pruneLocked(time.Now())
	return append([]Block(nil), l.list...)
}

// blocked reports whether ip, or any of users, is blocked now.
func (l *blockList) blocked(ip netip.Addr, users ...string) bool {
	if l.n.Load() == 0 {
		return false
	}
	now := time.Now()
	ip = ip.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, b := range l.list {
		if !now.Before(b.Until) {
			continue
		}
		if b.Addr.IsValid() && ip.IsValid() && b.Addr.Contains(ip) {
			return true
		}
		if b.User == "" {
			continue
		}
		for _, u := range users {
			if u != "" && strings.EqualFold(u, b.User) {
				return true
			}
		}
	}
	return false
}

// Block adds b to the block list until b.Until. An entry for the same
// user or prefix is replaced, so a block can be shortened or extended.
func (s *Server) Block(b Block) { s.blocks.add(b) }

// Blocks returns the blocks in force.
func (s *Server) Blocks() []Block { return s.blocks.active() }

// addrBlocked reports whether the session's client address is blocked.
// Run by the reading goroutine once the PROXY header was read.
func (s *session) addrBlocked() bool { return s.srv.blocks.blocked(s.clientIP()) }

// loginBlocked reports whether the login in progress is blocked: its
// name as typed or after rewriting, or the client address. Run by the
// reading goroutine, owner of Session.Login.
func (s *session) loginBlocked() bool {
	l := &s.info.Login
	if !s.srv.blocks.blocked(s.clientIP(), l.User, l.BackendUser) {
		return false
	}
	s.log.Warn("login refused: blocked by an administrator", "user", l.User, "backend_user", l.BackendUser)
	s.auth.blocked = true
	return true
}

// passthroughBlocked reports whether a login command the client sends
// to the backend itself (on-accept mode) is blocked, before its
// credentials leave popgate: PASS after the USER the session recorded,
// or APOP. A SASL login names its user only inside the exchange; it is
// checked once the backend accepted it (trackPassthroughLogin).
func (s *session) passthroughBlocked(ex *filters.Exchange) bool {
	switch ex.Out.Verb {
	case "PASS":
		return s.loginBlocked()
	case "APOP":
		l := &s.info.Login
		saved := *l
		l.User, l.BackendUser = ex.Command.Arg(0), ex.Out.Arg(0)
		blocked := s.loginBlocked()
		*l = saved
		return blocked
	}
	return false
}

// errBlocked is the answer to a blocked login: the same as a wrong
// password (RFC 3206 [AUTH]).
func errBlocked() *parser.Error {
	return parser.NewError(parser.CodeAuth, "authentication failed", nil)
}
