package audit

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// The chain marks audit search gives each record it finds.
const (
	// ChainOK: the record verifies and links, through records that do
	// and breaks popgate recorded, to the start of its file.
	ChainOK = "ok"
	// ChainBroken: the line does not verify (edited or damaged), or an
	// unrecorded break (an edit, a removal) comes before it in its file.
	ChainBroken = "broken"
	// ChainUnchained: a record written without a hash chain, before any
	// chained record of its file.
	ChainUnchained = "unchained"
)

// Query selects records. Every non-empty criterion must match; within a
// criterion, any of its values may.
type Query struct {
	// Users are matched case-insensitively against an auth record's
	// client_user and backend_user (and the user field of other records
	// that name one, such as admin actions). Every record of a session
	// whose auth record names one of them matches: retrieve and delete
	// records carry no user.
	Users []string
	// Addrs match the client address's IP (a single address is a /32 or
	// /128 prefix).
	Addrs []netip.Prefix
	// Events are event names ("retrieve", "delete", ...).
	Events []string
	// Since and Until bound the record's time, Since inclusive and Until
	// exclusive; the zero time is no bound.
	Since, Until time.Time
	// Msgs are unique-ids (UIDL) or Message-IDs (with or without the
	// angle brackets). They match retrieve and delete records that carry
	// them, and the scan record of a matching retrieve.
	Msgs []string
}

// Match is one record found. Raw and the fields are valid until the
// emit function returns.
type Match struct {
	File  string // as given to Searcher.File
	Line  int    // 1-based
	Chain string // ChainOK, ChainBroken or ChainUnchained
	Raw   []byte // the line as it is in the file, without its newline
	Time  time.Time
	Event string
	// Instance, Session, Client and Listener are the record's header
	// fields (Instance "" when the record names none).
	Instance, Session, Client, Listener string
	// User is the session's user as its auth record names it (the
	// client user, then the backend user when it differs, joined by
	// "->"), or the record's own user field.
	User string
}

// Searcher searches audit files for the records a Query selects,
// verifying each file's hash chain as it reads it. Files are read in the
// order given: a session that spans a rotation is followed when the older
// file comes first. A Searcher is not safe for concurrent use.
type Searcher struct {
	q        Query
	emit     func(*Match) error
	events   map[string]bool
	msgs     [][]byte // the needles of Query.Msgs, without angle brackets
	sessions map[string]*searchSession
	// Stats counts what the searcher read.
	Stats SearchStats
}

// SearchStats counts what a Searcher read.
type SearchStats struct {
	Files, Lines, Records, Matches int
	Bytes                          int64
}

// searchSession is what the searcher knows of an open session.
type searchSession struct {
	user string // client_user[->backend_user] of its last auth record
	ok   bool   // user comes from a successful auth
	// With Query.Users: whether the session is a user's (matched), is
	// someone else's (other), or still unknown; held are the records
	// that passed the other criteria while it was unknown.
	matched, other bool
	held           []*Match
	retrieved      map[int]bool // msg numbers whose retrieve matched Query.Msgs
}

// maxHeld bounds the records held for one session until its auth record
// says whose it is.
const maxHeld = 256

// NewSearcher returns a Searcher for q that calls emit for every record
// found, in file order (records of a session held until its auth record
// come out with it). An error from emit stops the search.
func NewSearcher(q Query, emit func(*Match) error) *Searcher {
	s := &Searcher{q: q, emit: emit, sessions: map[string]*searchSession{}}
	if len(q.Events) > 0 {
		s.events = map[string]bool{}
		for _, e := range q.Events {
			s.events[e] = true
		}
	}
	for _, m := range q.Msgs {
		if n := strings.Trim(m, "<>"); n != "" {
			s.msgs = append(s.msgs, []byte(n))
		}
	}
	return s
}

// searchBuffer is the read buffer of a file: large reads, and lines of
// any length up to MaxLine.
const searchBuffer = 4 << 20

// File searches one audit file, read from r and named name in matches; a
// file compressed with gzip (logrotate's compress) is read through it. It
// returns the file's chain report, as Check makes it, and an error when
// reading failed or emit returned one.
func (s *Searcher) File(name string, r io.Reader) (*Report, error) {
	br := bufio.NewReaderSize(r, searchBuffer)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("audit search: %s: %w", name, err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, searchBuffer)
	}
	s.Stats.Files++
	f := searchFile{s: s, name: name, c: checker{rep: &Report{}}, gapUnchained: true}
	var off int64
	for num := 1; ; num++ {
		line, n, err := readLine(br)
		if err == io.EOF {
			break
		}
		s.Stats.Lines++
		s.Stats.Bytes += int64(n)
		if err != nil && !errors.Is(err, errPartial) {
			f.c.skipped(num, off, nil, 0, err.Error())
			f.c.finish()
			if errors.Is(err, errTooLong) {
				return f.c.rep, nil
			}
			return f.c.rep, fmt.Errorf("audit search: %s: read: %w", name, err)
		}
		if errors.Is(err, errPartial) {
			f.c.skipped(num, off, line, n, "last line has no newline")
			break // a torn last line is no record to find
		}
		if err := f.line(num, off, line, n); err != nil {
			return f.c.rep, err
		}
		off += int64(n)
	}
	f.c.finish()
	f.c.rep.LastHash = f.c.prev
	return f.c.rep, nil
}

// Close ends a search: records still held for sessions whose auth record
// never named a user of the query are dropped.
func (s *Searcher) Close() {
	clear(s.sessions)
}

// searchFile is the state of one file being searched.
type searchFile struct {
	s    *Searcher
	name string
	c    checker // the chain, checked by verify.go's checker
	// tainted: an unrecorded break came before, so what follows cannot
	// be linked to the start of the file.
	tainted bool
	chained bool // a chained record was read
	// gapUnchained: the lines of the pending gap are all unchained
	// records written before any chained one.
	gapUnchained bool
}

// line checks one line of the chain and searches it.
func (f *searchFile) line(num int, off int64, line []byte, n int) error {
	records, breaks := f.c.rep.Records, len(f.c.rep.Breaks)
	f.c.line(num, off, line, n)
	var mark string
	if f.c.rep.Records > records {
		f.s.Stats.Records++
		if len(f.c.rep.Breaks) > breaks {
			if b := f.c.rep.Breaks[len(f.c.rep.Breaks)-1]; !b.Recorded && !(f.gapUnchained && !f.chained) {
				f.tainted = true
			}
		}
		f.chained, f.gapUnchained = true, true
		mark = ChainOK
		if f.tainted {
			mark = ChainBroken
		}
	} else {
		// No record: it does not verify. It may still be a JSON object
		// worth finding, written without a chain or edited.
		if !json.Valid(line) {
			f.gapUnchained = false
			return nil
		}
		f.s.Stats.Records++
		_, _, hashed := splitHash(line)
		mark = ChainBroken
		if !hashed && !f.chained && !bytes.Contains(line, []byte(`"prev_hash":`)) {
			mark = ChainUnchained
		} else {
			f.gapUnchained = false
		}
	}
	return f.s.record(f.name, num, mark, line)
}

// record searches one record, a JSON object.
func (s *Searcher) record(file string, num int, mark string, line []byte) error {
	m := Match{File: file, Line: num, Chain: mark, Raw: line}
	if !parseHeader(line, &m) {
		var h struct {
			Time                                time.Time `json:"time"`
			Event                               string    `json:"event"`
			Instance, Session, Client, Listener string
		}
		if json.Unmarshal(line, &h) != nil {
			return nil
		}
		m.Time, m.Event, m.Instance, m.Session, m.Client, m.Listener = h.Time, h.Event, h.Instance, h.Session, h.Client, h.Listener
	}
	var st *searchSession
	// Session ids are unique within an instance only.
	key := m.Session
	if m.Instance != "" {
		key = m.Instance + "\x00" + m.Session
	}
	if m.Session != "" {
		st = s.sessions[key]
		if st == nil && (m.Event == EventAuth || len(s.q.Users) > 0 || len(s.msgs) > 0) {
			st = &searchSession{}
			s.sessions[key] = st
		}
	}
	ownUser := false
	if m.Event == EventAuth || !knownEvent(m.Event) && bytes.Contains(line, []byte(`user"`)) {
		var u struct {
			ClientUser  string `json:"client_user"`
			BackendUser string `json:"backend_user"`
			User        string `json:"user"`
			Result      string `json:"result"`
		}
		if err := json.Unmarshal(line, &u); err == nil {
			ownUser = s.userMatches(u.ClientUser) || s.userMatches(u.BackendUser) || s.userMatches(u.User)
			m.User = joinUser(u.ClientUser, u.BackendUser)
			if m.User == "" {
				m.User = u.User
			}
			if m.Event == EventAuth && st != nil {
				if u.Result == "ok" || !st.ok {
					st.user, st.ok = m.User, u.Result == "ok"
				}
				if err := s.resolve(st, ownUser, u.Result == "ok"); err != nil {
					return err
				}
			}
		}
	}
	if st != nil && m.User == "" {
		m.User = st.user
	}
	if m.Event == EventSessionEnd && st != nil {
		defer delete(s.sessions, key)
	}
	if !s.matches(&m, st, line) {
		return nil
	}
	switch {
	case len(s.q.Users) == 0 || ownUser || st != nil && st.matched:
		return s.found(&m)
	case st != nil && !st.other && len(st.held) < maxHeld:
		h := m
		h.Raw = bytes.Clone(line)
		st.held = append(st.held, &h)
	}
	return nil
}

// resolve settles whose session st is when its auth record arrives:
// a user's (flush what was held), or, after a successful login of
// someone else, not (drop it).
func (s *Searcher) resolve(st *searchSession, ownUser, ok bool) error {
	if len(s.q.Users) == 0 || st.matched || st.other {
		return nil
	}
	switch {
	case ownUser:
		st.matched = true
		held := st.held
		st.held = nil
		for _, h := range held {
			if h.User == "" {
				h.User = st.user
			}
			if err := s.found(h); err != nil {
				return err
			}
		}
	case ok:
		st.other, st.held = true, nil
	}
	return nil
}

func (s *Searcher) found(m *Match) error {
	s.Stats.Matches++
	return s.emit(m)
}

// matches applies every criterion but the user.
func (s *Searcher) matches(m *Match, st *searchSession, line []byte) bool {
	if s.events != nil && !s.events[m.Event] {
		return false
	}
	if !s.q.Since.IsZero() && m.Time.Before(s.q.Since) || !s.q.Until.IsZero() && !m.Time.Before(s.q.Until) {
		return false
	}
	if len(s.q.Addrs) > 0 {
		ap, err := netip.ParseAddrPort(m.Client)
		if err != nil {
			return false
		}
		ip, in := ap.Addr().Unmap(), false
		for _, p := range s.q.Addrs {
			in = in || p.Contains(ip)
		}
		if !in {
			return false
		}
	}
	if len(s.msgs) > 0 {
		return s.msgMatches(m, st, line)
	}
	return true
}

// msgMatches reports whether a retrieve or delete record carries one of
// the query's unique-ids or Message-IDs, or a scan record is that of a
// retrieve that did. A cheap search for the octets comes first.
func (s *Searcher) msgMatches(m *Match, st *searchSession, line []byte) bool {
	var r struct {
		Msg       int    `json:"msg"`
		UIDL      string `json:"uidl"`
		MessageID string `json:"message_id"`
	}
	switch m.Event {
	case EventScan:
		if st == nil || st.retrieved == nil {
			return false
		}
		return json.Unmarshal(line, &r) == nil && st.retrieved[r.Msg]
	case EventRetrieve, EventDelete:
	default:
		return false
	}
	cheap := false
	for _, n := range s.msgs {
		cheap = cheap || bytes.Contains(line, n)
	}
	if !cheap || json.Unmarshal(line, &r) != nil {
		return false
	}
	id := strings.Trim(r.MessageID, "<>")
	for _, n := range s.msgs {
		if r.UIDL == string(n) || id != "" && id == string(n) {
			if m.Event == EventRetrieve && st != nil {
				if st.retrieved == nil {
					st.retrieved = map[int]bool{}
				}
				st.retrieved[r.Msg] = true
			}
			return true
		}
	}
	return false
}

func (s *Searcher) userMatches(u string) bool {
	if u == "" {
		return false
	}
	for _, q := range s.q.Users {
		if strings.EqualFold(u, q) {
			return true
		}
	}
	return false
}

// joinUser names a login: the client's user, and the backend's when a
// rewrite changed it.
func joinUser(client, backend string) string {
	switch {
	case client == "":
		return backend
	case backend == "" || backend == client:
		return client
	}
	return client + "->" + backend
}

func knownEvent(e string) bool {
	switch e {
	case EventSessionStart, EventSessionEnd, EventTLS, EventAuth, EventCommand,
		EventRetrieve, EventDelete, EventCommit, EventScan, EventChainBreak,
		EventOpaque:
		return true
	}
	return false
}

// parseHeader reads the header popgate writes first in every record
// (`{"time":"…","event":"…","instance":"…","session":"…","client":"…",
// "listener":"…"`, instance optional) without a JSON decoder, when every
// one of its strings is plain ASCII without escapes; ok is false for any
// other line.
func parseHeader(line []byte, m *Match) bool {
	rest := line
	var vals [6][]byte
	for i, key := range [...]string{`{"time":`, `,"event":`, `,"instance":`, `,"session":`, `,"client":`, `,"listener":`} {
		if !bytes.HasPrefix(rest, []byte(key)) {
			if i == 2 {
				continue // no instance
			}
			return false
		}
		rest = rest[len(key):]
		if len(rest) == 0 || rest[0] != '"' {
			return false
		}
		end := bytes.IndexByte(rest[1:], '"')
		if end < 0 {
			return false
		}
		v, ok := plainText(rest[:end+2])
		if !ok {
			return false
		}
		vals[i], rest = v, rest[end+2:]
	}
	t, err := time.Parse(time.RFC3339Nano, string(vals[0]))
	if err != nil {
		return false
	}
	m.Time, m.Event, m.Instance = t, string(vals[1]), string(vals[2])
	m.Session, m.Client, m.Listener = string(vals[3]), string(vals[4]), string(vals[5])
	return true
}
