package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/popgate/popgate/filters"
)

// check runs Check on the file at path.
func check(t *testing.T, path string) (*Report, error) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return Check(bytes.NewReader(data), "", false)
}

// reopenFilter opens a new filter on path, as the next start of popgate.
func reopenFilter(t *testing.T, path string) *Filter {
	t.Helper()
	f, err := New(Config{Path: path, Chain: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestTornTailStartsSegment: a partial last line found at the next start
// is named at once in a chain_break record that ends it with a newline and
// chains on from the last good record; the file then verifies, in two
// segments.
func TestTornTailStartsSegment(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	f.Close()
	good, _ := os.ReadFile(path)
	fragment := `{"time":"cut sho`
	os.WriteFile(path, append(append([]byte{}, good...), fragment...), 0o600)

	f2 := reopenFilter(t, path) // the break is written at open, before any session
	data, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
	if len(lines) != 6 || lines[4] != fragment {
		t.Fatalf("want 4 records, the fragment on its own line and a break: %q", lines)
	}
	_, fields, problem := checkLine([]byte(lines[5]))
	if problem != "" || *fields.Event != EventChainBreak {
		t.Fatalf("line 6 is no chain_break record (%s): %s", problem, lines[5])
	}
	if fields.Reason != ReasonTornTail || fields.SkippedOffset != int64(len(good)) ||
		fields.SkippedBytes != int64(len(fragment)+1) || fields.SkippedSHA256 != sha([]byte(fragment+"\n")) {
		t.Errorf("break record %s: want offset %d, %d octets, the fragment's hash", lines[5], len(good), len(fragment)+1)
	}
	lastGood, _, _ := splitHash([]byte(lines[3]))
	if *fields.PrevHash != lastGood {
		t.Errorf("the break does not chain on from the last good record")
	}

	writeSome(t, f2, "s2")
	rep, err := check(t, path)
	if err != nil {
		t.Fatalf("Check after a recorded break: %v", err)
	}
	if len(rep.Segments) != 2 || len(rep.Breaks) != 1 || !rep.Breaks[0].Recorded || !rep.OK() {
		t.Fatalf("report %+v", rep)
	}
	if b := rep.Breaks[0]; b.Line != 5 || b.Lines != 1 || b.Reason != ReasonTornTail {
		t.Errorf("break %+v", b)
	}
	if s := rep.Segments[1]; s.FirstLine != 6 || s.Records != 5 || !s.StartsWithBreak {
		t.Errorf("second segment %+v", s)
	}
	if n, err := Verify(bytes.NewReader(data)); err != nil || n != 5 {
		t.Errorf("Verify before s2 = %d, %v", n, err)
	}
}

// TestUnverifiableTailStartsSegment: complete last lines that do not
// verify (an edited record, a line of garbage) are named the same way.
func TestUnverifiableTailStartsSegment(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	f.Close()
	good, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(good), "\n")
	lines[3] = strings.Replace(lines[3], `"quit"`, `"QUIT"`, 1)
	bad := strings.Join(lines, "") + "garbage\n"
	os.WriteFile(path, []byte(bad), 0o600)

	reopenFilter(t, path)
	rep, err := check(t, path)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	b := rep.Breaks[0]
	if len(rep.Breaks) != 1 || !b.Recorded || b.Reason != ReasonUnverifiableTail || b.Line != 4 || b.Lines != 2 ||
		b.Offset != int64(len(lines[0]+lines[1]+lines[2])) {
		t.Fatalf("report %+v", rep)
	}
	if rep.Records != 4 {
		t.Errorf("%d records verified, want 3 and the break", rep.Records)
	}
}

// TestUnrecordedBreaksFail: a gap no chain_break names, a chain_break whose
// octets were changed afterwards, an edited record in the middle, and a
// torn tail not yet seen by popgate all fail, naming the line.
func TestUnrecordedBreaksFail(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	f.Close()
	good, _ := os.ReadFile(path)
	os.WriteFile(path, append(append([]byte{}, good...), `{"time":"cut`...), 0o600)
	f2 := reopenFilter(t, path)
	writeSome(t, f2, "s2")
	f2.Close()
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")

	edits := map[string]struct {
		text string
		line string
	}{
		"skipped octets changed": {strings.Replace(string(data), `{"time":"cut`, `{"time":"CUT`, 1), "line 5:"},
		"skipped octets removed": {strings.Join(append(append([]string{}, lines[:4]...), lines[5:]...), ""), "line 5:"},
		"record in the middle":   {strings.Replace(string(data), `"session":"s2","client":"192.0.2.7:40001","listener":"pop3","seq":1`, `"session":"s2","client":"192.0.2.7:40001","listener":"pop3","seq":2`, 1), "line 8:"},
		"record removed":         {strings.Join(append(append([]string{}, lines[:7]...), lines[8:]...), ""), "line 8:"},
		"torn tail not seen yet": {string(data) + `{"ti`, "line 11:"},
	}
	for name, e := range edits {
		if e.text == string(data) {
			t.Fatalf("%s: edit changed nothing", name)
		}
		rep, err := Check(strings.NewReader(e.text), "", false)
		if !errors.Is(err, ErrChain) || !strings.Contains(err.Error(), e.line) || rep.OK() {
			t.Errorf("%s: Check = %v, want ErrChain naming %s", name, err, e.line)
		}
	}
	if rep, err := Check(bytes.NewReader(data), "", false); err != nil || !rep.OK() {
		t.Fatalf("unedited file: %v", err)
	}
}

// TestTornWriteRecordedWhileRunning: a write that fails part-way leaves a
// fragment; the next record is preceded by a chain_break naming it.
func TestTornWriteRecordedWhileRunning(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	file := f.w.file
	f.w.mu.Lock()
	f.w.out = &tearingWriter{w: file, n: 30}
	f.w.mu.Unlock()
	var lost atomic.Int64
	f.cfg.OnWriteError = func(error) { lost.Add(1) }
	s := testSession("s2")
	f.SessionStarted(s)
	if lost.Load() != 1 {
		t.Fatalf("torn record not counted as lost")
	}
	f.w.mu.Lock()
	f.w.out = file
	f.w.mu.Unlock()
	f.SessionEnded(s, filters.SessionEnd{Reason: "quit"})
	rep, err := check(t, path)
	if err != nil || len(rep.Breaks) != 1 || rep.Breaks[0].Reason != ReasonTornWrite || rep.Breaks[0].Bytes != 31 {
		t.Fatalf("Check = %v, %+v", err, rep)
	}
}

// tearingWriter writes the first n octets of a write, then fails.
type tearingWriter struct {
	w *os.File
	n int
}

func (tw *tearingWriter) Write(p []byte) (int, error) {
	n, err := tw.w.Write(p[:min(tw.n, len(p))])
	if err != nil {
		return n, err
	}
	return n, errors.New("disk full")
}

// TestFileLocked: while a filter holds the file, another open of the same
// file (here through a symbolic link, as a second process would) is
// refused with ErrLocked; filters on the same path share the writer.
func TestFileLocked(t *testing.T) {
	f, path := newTest(t, true)
	link := filepath.Join(t.TempDir(), "link.log")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Config{Path: link, Chain: true}, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("second open of a locked file: %v, want ErrLocked", err)
	}
	same, err := New(Config{Path: path, Chain: true}, nil)
	if err != nil {
		t.Fatalf("a second filter on the same path: %v", err)
	}
	if same.w != f.w {
		t.Fatal("filters on one path do not share the writer")
	}
	f.Close()
	if _, err := New(Config{Path: link, Chain: true}, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("the lock went away while a filter still uses the file: %v", err)
	}
	same.Close()
	other, err := New(Config{Path: link, Chain: true}, nil)
	if err != nil {
		t.Fatalf("open after the last filter closed: %v", err)
	}
	other.Close()
}

// TestSharedWriterKeepsOneChain is a reload: the old generation's filter
// and the new one write to one file, interleaved, and it stays one chain;
// the old one's records after its Close are counted, not written.
func TestSharedWriterKeepsOneChain(t *testing.T) {
	old, path := newTest(t, true)
	var lost atomic.Int64
	newer, err := New(Config{Path: path, Chain: true, Sync: SyncRecord, OnWriteError: func(error) { lost.Add(1) }}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { newer.Close() })
	s1, s2 := testSession("s1"), testSession("s2")
	old.SessionStarted(s1)
	newer.SessionStarted(s2)
	old.SessionEnded(s1, filters.SessionEnd{Reason: "quit"})
	newer.SessionEnded(s2, filters.SessionEnd{Reason: "quit"})
	if old.w.policy != SyncRecord {
		t.Errorf("shared policy %q, want the strictest (record)", old.w.policy)
	}
	newer.Close()
	if old.w.policy != SyncInterval {
		t.Errorf("policy %q after the stricter filter closed, want interval", old.w.policy)
	}
	newer.SessionStarted(testSession("s3"))
	if lost.Load() != 1 {
		t.Errorf("record after Close counted %d times, want 1", lost.Load())
	}
	rep, err := check(t, path)
	if err != nil || rep.Records != 4 || len(rep.Segments) != 1 {
		t.Fatalf("Check = %v, %+v", err, rep)
	}
}

func TestSyncPolicies(t *testing.T) {
	for _, p := range []SyncPolicy{"", SyncRecord, SyncInterval, SyncNone} {
		path := filepath.Join(t.TempDir(), "audit.log")
		f, err := New(Config{Path: path, Chain: true, Sync: p}, nil)
		if err != nil {
			t.Fatalf("%q: %v", p, err)
		}
		writeSome(t, f, "s1")
		if err := f.Close(); err != nil {
			t.Errorf("%q: Close: %v", p, err)
		}
		if rep, err := check(t, path); err != nil || rep.Records != 4 {
			t.Errorf("%q: %v", p, err)
		}
	}
	if _, err := New(Config{Path: filepath.Join(t.TempDir(), "x"), Sync: "always"}, nil); err == nil {
		t.Error("New accepted an unknown sync policy")
	}
}
