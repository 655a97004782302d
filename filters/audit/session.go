package audit

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/popgate/popgate/filters"
)

// Per-session bounds: the UIDL cache and the list of marked deletions stop
// growing here, so a session's memory is bounded whatever the mailbox size.
const (
	maxUIDLs     = 100_000
	maxUIDLBytes = 4 << 20
	maxMarks     = 100_000
)

// errNotRead finishes a body that the session never read to its end.
var errNotRead = errors.New("session ended before the body was read to its end")

// stateKey is the Session.Value key of a Filter's per-session state; it
// holds the Filter so that two audit filters keep separate state.
type stateKey struct{ f *Filter }

// session is a Filter's per-session state. Exchanges of one session may run
// concurrently (pipelining), so everything is behind mu or atomic.
type session struct {
	seq atomic.Int64 // exchanges served so far

	mu          sync.Mutex
	tlsKnown    bool // whether tls below has been initialised
	tls         bool // whether the session was last seen with TLS
	uids        map[int]string
	uidBytes    int
	unsupported bool // the backend answered RETR but not UIDL n: stop asking
	marks       []int
	markCount   int
	pending     map[*tap]struct{}
}

func newSession() *session {
	return &session{uids: make(map[int]string), pending: make(map[*tap]struct{})}
}

// state returns the per-session state of s, creating it on first use.
func (f *Filter) state(s *filters.Session) *session {
	if s == nil {
		return newSession()
	}
	key := stateKey{f}
	if st, ok := s.Value(key).(*session); ok {
		return st
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if st, ok := s.Value(key).(*session); ok {
		return st
	}
	st := newSession()
	s.SetValue(key, st)
	return st
}

// noteTLS reports whether s has just been seen with TLS for the first time
// after starting in plaintext (STLS, RFC 2595).
func (st *session) noteTLS(s *filters.Session) bool {
	now := s != nil && s.TLS != nil
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.tlsKnown {
		st.tlsKnown, st.tls = true, now
		return false
	}
	changed := now && !st.tls
	st.tls = now
	return changed
}

// uid returns the unique-id of message msg if it is known.
func (st *session) uid(msg int) (string, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	u, ok := st.uids[msg]
	return u, ok
}

// storeUID remembers a unique-id. Message numbers and unique-ids do not
// change during a session (RFC 1939 sections 5 and 7), so an entry is never
// replaced or evicted: once known, a message stays known.
func (st *session) storeUID(msg int, uid string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if _, ok := st.uids[msg]; ok || len(st.uids) >= maxUIDLs || st.uidBytes+len(uid) > maxUIDLBytes {
		return
	}
	st.uids[msg] = uid
	st.uidBytes += len(uid)
}

// needsLookup reports whether the backend should be asked for the
// unique-id of msg. It changes from true to false only, never back, which
// keeps Exclusive's answer valid until the exchange is served.
func (st *session) needsLookup(msg int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.unsupported {
		return false
	}
	_, ok := st.uids[msg]
	return !ok
}

func (st *session) setUnsupported() {
	st.mu.Lock()
	st.unsupported = true
	st.mu.Unlock()
}

// mark records a deletion marked by DELE.
func (st *session) mark(msg int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.markCount++
	if len(st.marks) < maxMarks {
		st.marks = append(st.marks, msg)
	}
}

// resetMarks forgets the marked deletions (RSET, RFC 1939 section 5).
func (st *session) resetMarks() {
	st.mu.Lock()
	st.marks, st.markCount = nil, 0
	st.mu.Unlock()
}

// marked returns the deletions marked so far, their count, and whether the
// list is shorter than the count.
func (st *session) marked() (msgs []int, count int, truncated bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	msgs = append([]int{}, st.marks...)
	return msgs, st.markCount, len(msgs) < st.markCount
}

func (st *session) addPending(t *tap) {
	st.mu.Lock()
	st.pending[t] = struct{}{}
	st.mu.Unlock()
}

func (st *session) removePending(t *tap) {
	st.mu.Lock()
	delete(st.pending, t)
	st.mu.Unlock()
}

func (st *session) takePending() []*tap {
	st.mu.Lock()
	defer st.mu.Unlock()
	ts := make([]*tap, 0, len(st.pending))
	for t := range st.pending {
		ts = append(ts, t)
	}
	clear(st.pending)
	return ts
}

// SessionStarted writes the session_start record. It implements
// filters.Observer.
func (f *Filter) SessionStarted(s *filters.Session) {
	st := f.state(s)
	st.noteTLS(s)
	version, cipher, sni := tlsFields(s)
	rec := sessionStartRecord{
		header:     newHeader(EventSessionStart, s, time.Now()),
		TLSVersion: version,
		TLSCipher:  cipher,
		SNI:        sni,
	}
	if s != nil {
		rec.Local = addrString(s.LocalAddr)
	}
	f.record(&rec)
}

// SessionEnded finishes the records of bodies the session left unread and
// writes the session_end record; the per-session state is then dropped. It
// implements filters.Observer.
func (f *Filter) SessionEnded(s *filters.Session, end filters.SessionEnd) {
	st := f.state(s)
	for _, t := range st.takePending() {
		t.finish(errNotRead)
	}
	f.record(&sessionEndRecord{
		header:           newHeader(EventSessionEnd, s, time.Now()),
		DurationMS:       end.Duration.Milliseconds(),
		BytesIn:          end.BytesIn,
		BytesOut:         end.BytesOut,
		Reason:           end.Reason,
		DeletesMarked:    end.DeletesMarked,
		DeletesCommitted: end.Committed,
	})
	if s != nil {
		s.SetValue(stateKey{f}, nil)
	}
}
