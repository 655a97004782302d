package proxy

import (
	"sync"
	"time"
)

// LoginState holds what sessions share about logins: the failed-login
// counters of the throttle and the sessions each user holds
// (Limits.MaxSessionsPerUser). The Server owns one for its whole life: by
// default the in-process LocalLoginState; with a cluster, package cluster's
// Redis store, which shares both with the other instances. Implementations
// are safe for concurrent use and never block a session for long: a store
// that cannot reach its backing service answers from a local fallback.
//
// The success path of a login makes exactly two calls, Fail before the
// credentials leave popgate and Succeed once they were accepted, so a
// shared store costs at most two round trips per successful login.
type LoginState interface {
	// Fail counts one failed login for each key and returns the highest
	// count of failures in a row among them.
	Fail(keys []string) int
	// Refund takes back one failure of each key: an attempt charged
	// before its outcome was known that did not fail after all.
	Refund(keys []string)
	// Succeed settles a successful login: it refunds one failure of each
	// key of refund, forgets every failure of the keys of forget, and,
	// when limit > 0, takes a session lease for lease.User. It returns
	// false, having taken no lease, when the user already holds limit
	// sessions.
	Succeed(refund, forget []string, lease SessionLease, limit int) bool
	// Release ends a lease Succeed took.
	Release(lease SessionLease)
}

// SessionLease is one session held by a user, for MaxSessionsPerUser.
type SessionLease struct {
	User string // the login name after rewriting, lower-cased
	ID   string // the session's ID, unique within the process
}

// LocalLoginState is the in-process LoginState: the throttle's bounded
// table and a count of sessions per user. Its owner is the Server that
// uses it, or package cluster's store, which falls back to it while Redis
// is unreachable.
type LocalLoginState struct {
	th *throttle

	mu    sync.Mutex
	users map[string]map[string]struct{} // user -> session IDs holding a lease
}

var _ LoginState = (*LocalLoginState)(nil)

// NewLocalLoginState returns an empty in-process LoginState.
func NewLocalLoginState() *LocalLoginState {
	return &LocalLoginState{th: newThrottle(), users: make(map[string]map[string]struct{})}
}

// Fail implements LoginState.
func (l *LocalLoginState) Fail(keys []string) int { return l.th.fail(time.Now(), keys...) }

// Refund implements LoginState.
func (l *LocalLoginState) Refund(keys []string) { l.th.refund(keys...) }

// Succeed implements LoginState.
func (l *LocalLoginState) Succeed(refund, forget []string, lease SessionLease, limit int) bool {
	l.th.refund(refund...)
	l.th.succeed(forget...)
	if limit <= 0 {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.users[lease.User]
	if _, ok := held[lease.ID]; ok {
		return true
	}
	if len(held) >= limit {
		return false
	}
	if held == nil {
		held = make(map[string]struct{})
		l.users[lease.User] = held
	}
	held[lease.ID] = struct{}{}
	return true
}

// Release implements LoginState.
func (l *LocalLoginState) Release(lease SessionLease) {
	l.mu.Lock()
	defer l.mu.Unlock()
	held := l.users[lease.User]
	delete(held, lease.ID)
	if len(held) == 0 {
		delete(l.users, lease.User)
	}
}

// Sessions returns the number of leases user holds (for tests and the
// cluster store's fallback accounting).
func (l *LocalLoginState) Sessions(user string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.users[user])
}

// Fails returns the failures counted for key (for tests).
func (l *LocalLoginState) Fails(key string) int { return l.th.fails(key) }

// SetLoginState makes st the Server's LoginState; nil restores an
// in-process one. Call it before Start: sessions read it without a lock.
func (s *Server) SetLoginState(st LoginState) {
	if st == nil {
		st = &LocalLoginState{th: s.throttle, users: make(map[string]map[string]struct{})}
	}
	s.state = st
}
