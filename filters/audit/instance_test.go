package audit

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// newInstance returns a chained filter of the named instance writing to a
// file of its own in a temporary directory.
func newInstance(t *testing.T, instance string) (*Filter, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), instance+".jsonl")
	f, err := New(Config{Path: path, Chain: true, Instance: instance}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, path
}

// TestEveryRecordNamesItsInstance: with Config.Instance set, every record
// (session, command, retrieve, auth, admin, and the writer's own
// chain_break) carries "instance" right after "event"; two instances'
// files each verify as their own chain.
func TestEveryRecordNamesItsInstance(t *testing.T) {
	for _, name := range []string{"pg1", "pg2"} {
		f, path := newInstance(t, name)
		writeSome(t, f, "s-"+name)
		f.RecordAdmin(AdminAction{Action: "kick", User: "alice", Sessions: 1, Via: "unix"})
		f.Close()
		// A torn tail: the next start's chain_break names the instance too.
		data, _ := os.ReadFile(path)
		os.WriteFile(path, append(data, `{"time":"cut`...), 0o600)
		f2, err := New(Config{Path: path, Chain: true, Instance: name}, nil)
		if err != nil {
			t.Fatal(err)
		}
		writeSome(t, f2, "t-"+name)
		f2.Close()

		data, _ = os.ReadFile(path)
		events := map[string]bool{}
		for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
			if strings.HasPrefix(line, `{"time":"cut`) {
				continue // the fragment the chain_break names
			}
			_, fields, problem := checkLine([]byte(line))
			if problem != "" {
				t.Fatalf("%s line %d: %s", name, i+1, problem)
			}
			events[*fields.Event] = true
			prefix := `","event":"` + *fields.Event + `","instance":"` + name + `",`
			if !strings.Contains(line, prefix) {
				t.Errorf("%s line %d does not name its instance right after the event: %s", name, i+1, line)
			}
		}
		for _, ev := range []string{EventSessionStart, EventCommand, EventRetrieve, EventSessionEnd, EventAdmin, EventChainBreak} {
			if !events[ev] {
				t.Errorf("%s: no %s record written", name, ev)
			}
		}
		rep, err := Check(bytes.NewReader(data), "", false)
		if err != nil || !rep.OK() || len(rep.Breaks) != 1 {
			t.Errorf("%s: Check = %v, %+v; want OK with the one recorded break", name, err, rep)
		}
	}
}

// TestNoInstanceNoField: without Config.Instance (no cluster) records
// carry no "instance" field, exactly as before.
func TestNoInstanceNoField(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	for _, rec := range records(t, path) {
		if _, ok := rec["instance"]; ok {
			t.Errorf("record without a configured instance names one: %v", rec)
		}
	}
}

// TestSecondInstanceOnOneFileRefused: a second instance configured with
// the same file (here through a hard link, as another process would open
// it) is refused with ErrLocked and an error that says what to do, and
// the first instance's chain is untouched.
func TestSecondInstanceOnOneFileRefused(t *testing.T) {
	f, path := newInstance(t, "pg1")
	writeSome(t, f, "s1")
	link := filepath.Join(t.TempDir(), "same.jsonl")
	if err := os.Link(path, link); err != nil {
		t.Fatal(err)
	}
	_, err := New(Config{Path: link, Chain: true, Instance: "pg2"}, nil)
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second instance on one file: %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, link) || !strings.Contains(msg, "every instance needs an audit file of its own") {
		t.Errorf("error %q does not name the file and the remedy", msg)
	}
	writeSome(t, f, "s2")
	if rep, err := check(t, path); err != nil || rep.Records != 8 || len(rep.Segments) != 1 {
		t.Errorf("first instance's chain after the refusal: %v, %+v", err, rep)
	}
}

// TestSearchKeepsInstancesApart: two instances' trails use the same
// session id; a search by user finds only the records of the instance
// whose session logged that user in, the header's fast path reads the
// instance, and records without one still parse.
func TestSearchKeepsInstancesApart(t *testing.T) {
	trail := func(instance string, whole bool, user string) []byte {
		tw := newSearchTrail(t)
		hdr := func(event string) header {
			h := tw.hdr(event, "s1", "192.0.2.9:4000")
			h.Instance = instance
			return h
		}
		tw.put(&sessionStartRecord{header: hdr(EventSessionStart)})
		tw.put(&authRecord{header: hdr(EventAuth), ClientUser: user, BackendUser: user, Result: "ok"})
		if whole {
			tw.put(&commandRecord{header: hdr(EventCommand), Seq: 1, Verb: "STAT", Status: "+OK"})
			tw.put(&sessionEndRecord{header: hdr(EventSessionEnd), Reason: "quit"})
		}
		return tw.buf.Bytes()
	}
	pg1 := trail("pg1", false, "alice") // still open when the file ends
	pg2 := trail("pg2", true, "bob")
	ms, _ := searchAll(t, Query{Users: []string{"alice"}}, pg1, pg2)
	if len(ms) != 2 {
		t.Fatalf("alice: %d matches, want her 2 records in the trail of pg1:\n%s", len(ms), searchSummary(ms))
	}
	for _, m := range ms {
		if m.Instance != "pg1" || m.File != "f0" {
			t.Errorf("alice matched a record of %q in %s", m.Instance, m.File)
		}
	}
	ms, _ = searchAll(t, Query{Users: []string{"bob"}}, pg1, pg2)
	if len(ms) != 4 || ms[0].Instance != "pg2" || ms[0].Session != "s1" || ms[0].Listener != "pop3" {
		t.Errorf("bob: %d matches, want 4 of pg2:\n%s", len(ms), searchSummary(ms))
	}
	var m Match
	if !parseHeader(pg2[:bytes.IndexByte(pg2, '\n')], &m) || m.Instance != "pg2" || m.Client != "192.0.2.9:4000" {
		t.Errorf("parseHeader of a record with an instance: %+v", m)
	}
	tw := newSearchTrail(t)
	tw.put(&sessionStartRecord{header: tw.hdr(EventSessionStart, "s2", "192.0.2.9:4001")})
	if m := (Match{}); !parseHeader(bytes.TrimSuffix(tw.buf.Bytes(), []byte("\n")), &m) || m.Instance != "" || m.Session != "s2" {
		t.Errorf("parseHeader of a record without an instance: %+v", m)
	}
}
