package audit

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

var searchT0 = time.Date(2025, 5, 1, 10, 0, 0, 0, time.UTC)

// trailWriter builds a chained trail in memory with popgate's own writer
// and encoders.
type trailWriter struct {
	t   *testing.T
	buf bytes.Buffer
	w   *writer
	n   int // records written, for their times
}

func newSearchTrail(t *testing.T) *trailWriter {
	tw := &trailWriter{t: t}
	tw.w = &writer{out: &tw.buf}
	return tw
}

func (tw *trailWriter) hdr(event, session, client string) header {
	tw.n++
	return header{Time: searchT0.Add(time.Duration(tw.n) * time.Minute), Event: event, Session: session, Client: client, Listener: "pop3"}
}

func (tw *trailWriter) put(r jsonRecord) {
	if _, err := tw.w.put(r.appendJSON([]byte{0}), true); err != nil {
		tw.t.Fatal(err)
	}
}

// session writes a whole session of user from client: start, USER, auth,
// a retrieve (with scan) and a delete of msg 1 with uidl, QUIT, commit,
// end.
func (tw *trailWriter) session(id, client, user, uidl, msgid string) {
	tw.put(&sessionStartRecord{header: tw.hdr(EventSessionStart, id, client)})
	tw.put(&commandRecord{header: tw.hdr(EventCommand, id, client), Seq: 1, Verb: "USER", Args: user, Status: "+OK"})
	tw.put(&authRecord{header: tw.hdr(EventAuth, id, client), ClientUser: user, BackendUser: user, Result: "ok"})
	tw.put(&retrieveRecord{header: tw.hdr(EventRetrieve, id, client), Verb: "RETR", Msg: 1, UIDL: uidl, MessageID: msgid, Complete: true})
	tw.put(&scanRecord{header: tw.hdr(EventScan, id, client), Verb: "RETR", Msg: 1, Verdict: VerdictClean})
	tw.put(&deleteRecord{header: tw.hdr(EventDelete, id, client), Msg: 1, UIDL: uidl})
	tw.put(&commitRecord{header: tw.hdr(EventCommit, id, client), Count: 1, Msgs: []int{1}})
	tw.put(&sessionEndRecord{header: tw.hdr(EventSessionEnd, id, client), Reason: "quit"})
}

// searchAll searches files (each read one octet at a time) and returns
// the matches and the searcher.
func searchAll(t *testing.T, q Query, files ...[]byte) ([]Match, *Searcher) {
	t.Helper()
	var out []Match
	s := NewSearcher(q, func(m *Match) error {
		c := *m
		c.Raw = bytes.Clone(m.Raw)
		out = append(out, c)
		return nil
	})
	for i, f := range files {
		if _, err := s.File(fmt.Sprintf("f%d", i), iotest.OneByteReader(bytes.NewReader(f))); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()
	return out, s
}

func searchSummary(ms []Match) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "%s/%s/%s/%s ", m.Event, m.Session, m.User, m.Chain)
	}
	return strings.TrimSpace(b.String())
}

// Two sessions interleaved: alice's and bob's.
func twoSessions(t *testing.T) []byte {
	tw := newSearchTrail(t)
	tw.put(&sessionStartRecord{header: tw.hdr(EventSessionStart, "b1", "198.51.100.9:4000")})
	tw.session("a1", "203.0.113.7:5000", "alice", "uid-a", "<m1@example.org>")
	tw.put(&authRecord{header: tw.hdr(EventAuth, "b1", "198.51.100.9:4000"), ClientUser: "bob", BackendUser: "bob@example.org", Result: "ok"})
	tw.put(&retrieveRecord{header: tw.hdr(EventRetrieve, "b1", "198.51.100.9:4000"), Verb: "RETR", Msg: 1, UIDL: "uid-b"})
	tw.put(&deleteRecord{header: tw.hdr(EventDelete, "b1", "198.51.100.9:4000"), Msg: 1, UIDL: "uid-b"})
	tw.put(&sessionEndRecord{header: tw.hdr(EventSessionEnd, "b1", "198.51.100.9:4000"), Reason: "quit"})
	return tw.buf.Bytes()
}

func TestSearchUserJoinsTheSession(t *testing.T) {
	trail := twoSessions(t)
	got, s := searchAll(t, Query{Users: []string{"ALICE"}}, trail)
	want := "session_start/a1/alice/ok command/a1/alice/ok auth/a1/alice/ok retrieve/a1/alice/ok scan/a1/alice/ok " +
		"delete/a1/alice/ok commit/a1/alice/ok session_end/a1/alice/ok"
	if searchSummary(got) != want {
		t.Errorf("--user ALICE:\n got %s\nwant %s", searchSummary(got), want)
	}
	if s.Stats.Records != 13 || s.Stats.Matches != 8 || len(s.sessions) != 0 {
		t.Errorf("stats %+v, %d sessions left", s.Stats, len(s.sessions))
	}
	// The backend user matches too, and the user column names both.
	got, _ = searchAll(t, Query{Users: []string{"bob@EXAMPLE.org"}, Events: []string{EventRetrieve, EventDelete}}, trail)
	if want := "retrieve/b1/bob->bob@example.org/ok delete/b1/bob->bob@example.org/ok"; searchSummary(got) != want {
		t.Errorf("--user bob@EXAMPLE.org --event retrieve,delete:\n got %s\nwant %s", searchSummary(got), want)
	}
	// Without --user every record comes out, retrieves with their user.
	got, _ = searchAll(t, Query{Events: []string{EventDelete}}, trail)
	if want := "delete/a1/alice/ok delete/b1/bob->bob@example.org/ok"; searchSummary(got) != want {
		t.Errorf("--event delete: got %s, want %s", searchSummary(got), want)
	}
}

func TestSearchFailedLoginOfAnotherUserKeepsWaiting(t *testing.T) {
	tw := newSearchTrail(t)
	c := "203.0.113.7:5000"
	tw.put(&sessionStartRecord{header: tw.hdr(EventSessionStart, "x", c)})
	tw.put(&authRecord{header: tw.hdr(EventAuth, "x", c), ClientUser: "bob", Result: "fail"})
	tw.put(&authRecord{header: tw.hdr(EventAuth, "x", c), ClientUser: "alice", Result: "fail"})
	tw.put(&sessionEndRecord{header: tw.hdr(EventSessionEnd, "x", c), Reason: "client closed"})
	got, _ := searchAll(t, Query{Users: []string{"alice"}}, tw.buf.Bytes())
	// Held from the start, since bob's failure settles nothing, and let
	// out by alice's attempt.
	if want := "session_start/x/alice/ok auth/x/bob/ok auth/x/alice/ok session_end/x/alice/ok"; searchSummary(got) != want {
		t.Errorf("got %s, want %s", searchSummary(got), want)
	}
}

func TestSearchAddrTimeMsg(t *testing.T) {
	trail := twoSessions(t)
	for _, tc := range []struct {
		name string
		q    Query
		want string
	}{
		{"addr", Query{Addrs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}, Events: []string{EventAuth}}, "auth/b1/bob->bob@example.org/ok"},
		{"addr single", Query{Addrs: []netip.Prefix{netip.MustParsePrefix("203.0.113.7/32")}, Events: []string{EventAuth}}, "auth/a1/alice/ok"},
		{"addr none", Query{Addrs: []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}}, ""},
		// Record n is at searchT0 + n minutes: since is inclusive, until not.
		// Without --user, records before the auth have no user yet.
		{"time", Query{Since: searchT0.Add(2 * time.Minute), Until: searchT0.Add(5 * time.Minute)}, "session_start/a1//ok command/a1//ok auth/a1/alice/ok"},
		{"uidl", Query{Msgs: []string{"uid-a"}}, "retrieve/a1/alice/ok scan/a1/alice/ok delete/a1/alice/ok"},
		{"message-id", Query{Msgs: []string{"<m1@example.org>"}}, "retrieve/a1/alice/ok scan/a1/alice/ok"},
		{"message-id bare", Query{Msgs: []string{"m1@example.org"}}, "retrieve/a1/alice/ok scan/a1/alice/ok"},
		{"uidl of bob", Query{Msgs: []string{"uid-b"}, Users: []string{"alice"}}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := searchAll(t, tc.q, trail)
			if searchSummary(got) != tc.want {
				t.Errorf("got  %s\nwant %s", searchSummary(got), tc.want)
			}
		})
	}
}

// The chain marks: an edited line and what follows it are broken, what
// precedes it ok; a break popgate recorded keeps the records after it ok.
func TestSearchChainMarks(t *testing.T) {
	trail := twoSessions(t)
	lines := bytes.SplitAfter(trail, []byte("\n"))
	lines[4] = bytes.Replace(lines[4], []byte(`"msg":1`), []byte(`"msg":2`), 1) // line 5: a1's retrieve
	edited := bytes.Join(lines, nil)
	got, _ := searchAll(t, Query{Users: []string{"alice"}}, edited)
	want := "session_start/a1/alice/ok command/a1/alice/ok auth/a1/alice/ok retrieve/a1/alice/broken scan/a1/alice/broken " +
		"delete/a1/alice/broken commit/a1/alice/broken session_end/a1/alice/broken"
	if searchSummary(got) != want {
		t.Errorf("edited:\n got %s\nwant %s", searchSummary(got), want)
	}

	// A torn write that popgate named in a chain_break record.
	tw := newSearchTrail(t)
	tw.session("a1", "203.0.113.7:5000", "alice", "uid-a", "")
	frag := `{"time":"2025-05-01T10:09:00Z","event":"ret` + "\n"
	off := int64(tw.buf.Len())
	tw.buf.WriteString(frag)
	sum := sha256.Sum256([]byte(frag))
	tw.put(&chainBreakRecord{header: tw.hdr(EventChainBreak, "", ""), Reason: ReasonTornWrite,
		SkippedOffset: off, SkippedBytes: int64(len(frag)), SkippedSHA256: hex.EncodeToString(sum[:])})
	tw.session("a2", "203.0.113.8:5000", "alice", "uid-c", "")
	got, _ = searchAll(t, Query{Users: []string{"alice"}, Events: []string{EventDelete}}, tw.buf.Bytes())
	if want := "delete/a1/alice/ok delete/a2/alice/ok"; searchSummary(got) != want {
		t.Errorf("recorded break: got %s, want %s", searchSummary(got), want)
	}
	got, _ = searchAll(t, Query{Events: []string{EventChainBreak}}, tw.buf.Bytes())
	if want := "chain_break///ok"; searchSummary(got) != want {
		t.Errorf("chain_break: got %s, want %s", searchSummary(got), want)
	}

	// Unchained records before the chain starts are unchained; the chain
	// after them is ok.
	var plain bytes.Buffer
	r := &deleteRecord{header: header{Time: searchT0, Event: EventDelete, Session: "u1", Client: "203.0.113.7:1"}, Msg: 3, UIDL: "u"}
	plain.Write(r.appendJSON(nil))
	plain.WriteByte('\n')
	got, _ = searchAll(t, Query{Events: []string{EventDelete}}, append(plain.Bytes(), trail...))
	if want := "delete/u1//unchained delete/a1/alice/ok delete/b1/bob->bob@example.org/ok"; searchSummary(got) != want {
		t.Errorf("unchained prefix: got %s, want %s", searchSummary(got), want)
	}
}

// A rotated, compressed file comes first and a session spans the two.
func TestSearchAcrossRotatedGzipFiles(t *testing.T) {
	tw := newSearchTrail(t)
	tw.session("a1", "203.0.113.7:5000", "alice", "uid-a", "")
	all := tw.buf.Bytes()
	cut := bytes.Index(all, []byte(`"event":"retrieve"`))
	cut = bytes.LastIndexByte(all[:cut], '\n') + 1
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(all[:cut])
	zw.Close()
	got, s := searchAll(t, Query{Users: []string{"alice"}, Events: []string{EventRetrieve, EventDelete}}, gz.Bytes(), all[cut:])
	if want := "retrieve/a1/alice/ok delete/a1/alice/ok"; searchSummary(got) != want || s.Stats.Files != 2 {
		t.Errorf("got %s (%d files), want %s", searchSummary(got), s.Stats.Files, want)
	}
	if got[0].File != "f1" || got[0].Line != 1 {
		t.Errorf("retrieve at %s:%d, want f1:1", got[0].File, got[0].Line)
	}
}

func TestParseTimeBound(t *testing.T) {
	now := time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"7d":                        now.Add(-7 * 24 * time.Hour),
		"1w":                        now.Add(-7 * 24 * time.Hour),
		"1w2d3h30m":                 now.Add(-(9*24*time.Hour + 3*time.Hour + 30*time.Minute)),
		"36h":                       now.Add(-36 * time.Hour),
		"1.5d":                      now.Add(-36 * time.Hour),
		"90m":                       now.Add(-90 * time.Minute),
		"2025-05-01T08:00:00Z":      time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC),
		"2025-05-01T10:00:00+02:00": time.Date(2025, 5, 1, 8, 0, 0, 0, time.UTC),
		"2025-05-01":                time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := ParseTimeBound(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("ParseTimeBound(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "7", "d", "-7d", "7x", "7dd", "yesterday", "2025-13-01"} {
		if got, err := ParseTimeBound(in, now); err == nil {
			t.Errorf("ParseTimeBound(%q) = %v, want an error", in, got)
		}
	}
}

// decodeLineFields agrees with json.Unmarshal, which it replaces in
// checkLine, on every line Check may meet.
func TestDecodeLineFieldsLikeUnmarshal(t *testing.T) {
	for _, in := range []string{
		`{"time":"t","event":"auth","prev_hash":""}`,
		`{ "time" : "t" , "event":"chain_break","reason":"torn tail","skipped_offset":12,"skipped_bytes":0,"skipped_sha256":"ab","prev_hash":"x"}`,
		`{"time":"a","time":"b","event":"e","prev_hash":"p"}`,
		`{"TIME":"a","Event":"e","Prev_Hash":"p"}`,
		`{"time":"a","TIME":"b","event":"e","prev_hash":"p"}`,
		`{"\u0074ime":"a","event":"e\u00e9\n","prev_hash":"p"}`,
		`{"time":null,"event":"e","prev_hash":"p"}`,
		`{"time":"t","event":"e","prev_hash":"p","nested":{"time":"inner","a":[1,{"b":"}"}]},"s":"q\"uote"}`,
		`{"time":"t","event":"e","prev_hash":"p","skipped_offset":1.5}`,
		`{"time":"t","event":"e","prev_hash":"p","skipped_offset":"12"}`,
		`{"time":5,"event":"e","prev_hash":"p"}`,
		`{"time":"t","event":"e","prev_hash":"p","skipped_bytes":-3,"skipped_offset":99999999999999999999}`,
		`{"time":"t","event":"\xff","prev_hash":"p","reason":null}`,
		`{"ſkipped_offset":4,"time":"t","event":"e","prev_hash":"p"}`,
		`{}`,
	} {
		var want, got lineFields
		wantErr := json.Unmarshal([]byte(in), &want)
		gotErr := decodeLineFields([]byte(in), &got)
		if (wantErr != nil) != (gotErr != nil) {
			t.Errorf("%s: error %v, json.Unmarshal's %v", in, gotErr, wantErr)
			continue
		}
		if wantErr == nil && fmt.Sprint(deref(got)) != fmt.Sprint(deref(want)) {
			t.Errorf("%s:\n got %v\nwant %v", in, deref(got), deref(want))
		}
	}
}

func deref(f lineFields) []any {
	s := func(p *string) any {
		if p == nil {
			return nil
		}
		return *p
	}
	return []any{s(f.Time), s(f.Event), s(f.PrevHash), f.Reason, f.SkippedOffset, f.SkippedBytes, f.SkippedSHA256}
}
