package clamav

import (
	"strconv"
	"sync"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// With Config.KeepReplaced, a session may not DELE a message the filter
// found infected in that session (replaced by a notice, or refused with
// on_infected "reject"): the original then stays on the server for an
// administrator, whatever the client does after reading the notice.
//
// The DELE has to be decided after every earlier RETR and TOP of the
// session has had its verdict, or a pipelined "RETR 1" "DELE 1" would be
// checked before message 1 was known to be infected. So the filter makes
// DELE exclusive (filters.Exclusive): the session lets every earlier
// exchange finish, its Response side (where verdicts are reached) and its
// answer included, before the DELE's Command side runs. That side answers
// -ERR for a kept message, and the DELE is not sent; any other DELE goes on
// to the backend. A pipelined burst drains at each DELE; no extra round
// trip is made.

// keptKey is the filters.Session value key of a session's keptSet.
type keptKey struct{ f *Filter }

// keptSet is the set of message numbers of one session found infected.
// Written by the Response side of the exchanges that scan (serve), read by
// the Command side of DELE; the two may run at once, so it is locked.
type keptSet struct {
	mu   sync.Mutex
	msgs map[int]bool
}

// respKept answers a DELE refused because the message is kept. No response
// code: RFC 3206's SYS/PERM would make clients give up on the session,
// while this is one command the server will not perform (RFC 1939
// section 3).
func respKept(msg int) parser.Response {
	return parser.Err("", "message "+strconv.Itoa(msg)+" was found infected and stays on the server")
}

// Exclusive reports whether ex must run alone: a DELE, when KeepReplaced
// is set, so that every earlier verdict is in before it is decided. It
// implements filters.Exclusive.
func (f *Filter) Exclusive(ex *filters.Exchange) bool {
	return f.cfg.KeepReplaced && ex.Command.Verb == "DELE"
}

// keep records that message arg (a RETR or TOP argument) of session s was
// found infected.
func (f *Filter) keep(s *filters.Session, arg string) {
	msg, ok := parser.MessageNumber(arg)
	if !ok || s == nil {
		return
	}
	set := f.kept(s)
	set.mu.Lock()
	set.msgs[msg] = true
	set.mu.Unlock()
}

// isKept reports whether message msg of session s was found infected.
func (f *Filter) isKept(s *filters.Session, msg int) bool {
	if s == nil {
		return false
	}
	set := f.kept(s)
	set.mu.Lock()
	defer set.mu.Unlock()
	return set.msgs[msg]
}

// kept returns the keptSet of session s, creating it on first use.
func (f *Filter) kept(s *filters.Session) *keptSet {
	f.keptMu.Lock()
	defer f.keptMu.Unlock()
	if set, ok := s.Value(keptKey{f}).(*keptSet); ok {
		return set
	}
	set := &keptSet{msgs: map[int]bool{}}
	s.SetValue(keptKey{f}, set)
	return set
}

// dele answers a DELE of a kept message -ERR, so it is not sent; any other
// DELE is left alone. Exclusive made the session finish every earlier
// exchange first, so the verdicts of this session are all in.
func (f *Filter) dele(ex *filters.Exchange) {
	msg, ok := parser.MessageNumber(ex.Out.Arg(0))
	if !ok || !f.isKept(ex.Session, msg) {
		return
	}
	ex.Response, ex.Body = respKept(msg), nil
	log := f.logger
	if ex.Session != nil {
		log = log.With("session", ex.Session.ID)
	}
	log.Info("DELE refused: the message was found infected and keep_replaced keeps it on the server", "msg", msg)
}
