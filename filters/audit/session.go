package audit

import (
	"errors"
	"sync"
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

var (
	// errNotRead finishes a body that the session never read to its end.
	errNotRead = errors.New("session ended before the body was read to its end")
	// errNoAnswer finishes an exchange whose answer the filter never saw.
	errNoAnswer = errors.New("session ended before the exchange was answered")
)

// stateKey is the Session.Value key of a Filter's per-session state; it
// holds the Filter so that two audit filters keep separate state.
type stateKey struct{ f *Filter }

// inflight is an exchange whose Command side the filter ran, from then
// until its Finish.
type inflight struct {
	ex    *filters.Exchange
	seq   int64
	start time.Time
	pre   filters.State // the session's state when the command was read
	// responded is set when the Response side ran: it wrote the
	// exchange's records, or left them to tap.
	responded bool
	tap       *tap // the tap on the body, if the Response side made one
}

// session is a Filter's per-session state. The Command side runs on the
// session's reading goroutine while the Response side and Finish of
// earlier exchanges run on its answer goroutine, so everything that
// changes is behind mu.
type session struct {
	// The header fields, set when the state is made and never changed.
	id, client, listener string
	originalDst          string // filters.Session.OriginalDest, "" when not intercepting
	instance             string // Config.Instance of the filter

	mu       sync.Mutex
	seq      int64 // exchanges seen so far
	tlsKnown bool  // whether tls below has been initialised
	tls      bool  // whether the session was last seen with TLS
	uids     map[int]string
	uidBytes int
	// listed is set once a full UIDL listing was asked for, by the
	// filter or by the client: the cache then holds every unique-id the
	// backend has, and the filter never asks again.
	listed bool
	// unsupported is set when the backend answered a UIDL listing -ERR:
	// it has no UIDL (RFC 1939 section 7 makes it optional).
	unsupported bool
	marks       []int
	markCount   int
	// queue holds the exchanges from their Command side to their Finish,
	// in the client's order, from queue[head].
	queue []inflight
	head  int
}

func newSession(s *filters.Session, instance string) *session {
	st := &session{uids: make(map[int]string), instance: instance}
	if s != nil {
		st.id, st.client, st.listener = s.ID, addrString(s.ClientAddr), s.Listener
		st.originalDst = addrString(s.OriginalDest)
	}
	return st
}

// state returns the per-session state of s, creating it on first use.
// Exchanges without a session share one state.
func (f *Filter) state(s *filters.Session) *session {
	if s == nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.orphans == nil {
			f.orphans = newSession(nil, f.cfg.Instance)
		}
		return f.orphans
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
	st := newSession(s, f.cfg.Instance)
	s.SetValue(key, st)
	return st
}

// header returns the start of a record of the session.
func (st *session) header(event string, now time.Time) header {
	return header{Time: now.UTC(), Event: event, Instance: st.instance, Session: st.id, Client: st.client, OriginalDst: st.originalDst, Listener: st.listener}
}

// begin numbers the exchange e, queues it until its Finish when queue is
// set, and reports whether s has just been seen with TLS for the first
// time after starting in plaintext (STLS, RFC 2595).
func (st *session) begin(e *inflight, s *filters.Session, queue bool) (tlsNow bool) {
	withTLS := s != nil && s.TLS != nil
	st.mu.Lock()
	defer st.mu.Unlock()
	st.seq++
	e.seq = st.seq
	if queue {
		st.queue = append(st.queue, *e)
	}
	return st.sawTLS(withTLS)
}

// sawTLS notes whether the session has TLS now; callers hold mu.
func (st *session) sawTLS(now bool) bool {
	if !st.tlsKnown {
		st.tlsKnown, st.tls = true, now
		return false
	}
	changed := now && !st.tls
	st.tls = now
	return changed
}

// find returns the index in st.queue of ex, or -1; callers hold mu.
func (st *session) find(ex *filters.Exchange) int {
	for i := st.head; i < len(st.queue); i++ {
		if st.queue[i].ex == ex {
			return i
		}
	}
	return -1
}

// respond marks ex as seen by the Response side and returns its entry;
// ok is false when the Command side did not queue it.
func (st *session) respond(ex *filters.Exchange) (e inflight, ok bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	i := st.find(ex)
	if i < 0 {
		return inflight{}, false
	}
	st.queue[i].responded = true
	return st.queue[i], true
}

// attach records the tap the Response side put on the body of ex.
func (st *session) attach(ex *filters.Exchange, t *tap) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if i := st.find(ex); i >= 0 {
		st.queue[i].tap = t
	}
}

// finish removes ex from the queue and returns its entry, with the
// entries queued before it that never had a Finish (none, from a session
// that keeps the filters contract). found is false when ex is not queued.
func (st *session) finish(ex *filters.Exchange) (e inflight, stale []inflight, found bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	i := st.find(ex)
	if i < 0 {
		return inflight{}, nil, false
	}
	if i > st.head {
		stale = append(stale, st.queue[st.head:i]...)
	}
	e = st.queue[i]
	clear(st.queue[st.head : i+1])
	st.head = i + 1
	switch {
	case st.head == len(st.queue):
		st.queue, st.head = st.queue[:0], 0
	case st.head >= 64 && 2*st.head >= len(st.queue):
		n := copy(st.queue, st.queue[st.head:])
		clear(st.queue[n:])
		st.queue, st.head = st.queue[:n], 0
	}
	return e, stale, true
}

// takeAll empties the queue and returns what it held.
func (st *session) takeAll() []inflight {
	st.mu.Lock()
	defer st.mu.Unlock()
	q := append([]inflight(nil), st.queue[st.head:]...)
	st.queue, st.head = nil, 0
	return q
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

// needsListing reports whether the filter should ask the backend for a
// UIDL listing to learn the unique-id of msg: it is not known, no listing
// was asked for yet, and the backend has not shown it has no UIDL.
func (st *session) needsListing(msg int) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.listed || st.unsupported {
		return false
	}
	_, ok := st.uids[msg]
	return !ok
}

func (st *session) setListed(v bool) {
	st.mu.Lock()
	st.listed = v
	st.mu.Unlock()
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

// SessionStarted writes the session_start record. It implements
// filters.Observer.
func (f *Filter) SessionStarted(s *filters.Session) {
	st := f.state(s)
	st.mu.Lock()
	st.sawTLS(s != nil && s.TLS != nil)
	st.mu.Unlock()
	version, cipher, sni := tlsFields(s)
	rec := sessionStartRecord{
		header:     st.header(EventSessionStart, time.Now()),
		TLSVersion: version,
		TLSCipher:  cipher,
		SNI:        sni,
	}
	if s != nil {
		rec.Local = addrString(s.LocalAddr)
	}
	f.record(&rec)
}

// SessionEnded finishes the records of exchanges the session left
// unfinished (bodies unread, answers never seen) and writes the
// session_end record; the per-session state is then dropped. It implements
// filters.Observer.
func (f *Filter) SessionEnded(s *filters.Session, end filters.SessionEnd) {
	st := f.state(s)
	for _, e := range st.takeAll() {
		f.abandon(st, e)
	}
	f.record(&sessionEndRecord{
		header:           st.header(EventSessionEnd, time.Now()),
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
