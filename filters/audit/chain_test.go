package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
)

// writeSome writes a few records of different kinds.
func writeSome(t *testing.T, f *Filter, id string) {
	t.Helper()
	s := testSession(id)
	f.SessionStarted(s)
	h := f.with(&backend{answer: mailbox})
	run(t, h, s, "RETR 1")
	f.SessionEnded(s, filters.SessionEnd{Reason: "quit"})
}

func TestChainVerifies(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	data, _ := os.ReadFile(path)
	n, err := Verify(bytes.NewReader(data))
	if err != nil || n != 4 {
		t.Fatalf("Verify = %d, %v; want 4 records", n, err)
	}
	recs := records(t, path)
	if recs[0]["prev_hash"] != "" {
		t.Errorf("a fresh chain starts with prev_hash %q", recs[0]["prev_hash"])
	}
	for i := 1; i < len(recs); i++ {
		if recs[i]["prev_hash"] != recs[i-1]["hash"] {
			t.Errorf("record %d: prev_hash is not the hash of record %d", i+1, i)
		}
	}
	// The hash is the last field, prev_hash the one before it.
	first := strings.SplitN(string(data), "\n", 2)[0]
	if !strings.Contains(first, `"prev_hash":"","hash":"`) || !strings.HasSuffix(first, `"}`) {
		t.Errorf("chain fields not at the end: %s", first)
	}
}

// TestVerifyDetectsEveryByteEdit changes every byte of a small chained file
// in turn, to a set of other values, and deletes every byte in turn: each
// edit must make Verify fail.
func TestVerifyDetectsEveryByteEdit(t *testing.T) {
	f, path := newTest(t, true)
	s := testSession("s1")
	f.SessionStarted(s)
	f.SessionEnded(s, filters.SessionEnd{Reason: "quit"})
	data, _ := os.ReadFile(path)
	if _, err := Verify(bytes.NewReader(data)); err != nil {
		t.Fatalf("unedited file: %v", err)
	}
	values := []byte{'\n', ' ', '"', '0', 'a', 'F', '}', ',', '{', '\\', 0x00, 0x7f, 0xff}
	edited := make([]byte, len(data))
	for i := range data {
		for _, mask := range []byte{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0xff} {
			copy(edited, data)
			edited[i] ^= mask
			if _, err := Verify(bytes.NewReader(edited)); !errors.Is(err, ErrChain) {
				t.Fatalf("byte %d xor %#x: Verify = %v", i, mask, err)
			}
		}
		for _, v := range values {
			if data[i] == v {
				continue
			}
			copy(edited, data)
			edited[i] = v
			if _, err := Verify(bytes.NewReader(edited)); !errors.Is(err, ErrChain) {
				t.Fatalf("byte %d set to %q: Verify = %v", i, v, err)
			}
		}
		del := append(append([]byte{}, data[:i]...), data[i+1:]...)
		if _, err := Verify(bytes.NewReader(del)); !errors.Is(err, ErrChain) {
			t.Fatalf("byte %d deleted: Verify = %v", i, err)
		}
	}
}

func TestVerifyNamesTheBadLine(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	data, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(data), "\n")
	lines[2] = strings.Replace(lines[2], `"RETR"`, `"DELE"`, 1)
	_, err := Verify(strings.NewReader(strings.Join(lines, "")))
	if err == nil || !strings.Contains(err.Error(), "line 3:") {
		t.Fatalf("Verify = %v, want an error naming line 3", err)
	}
	// Removing a record in the middle breaks the link after it.
	removed := lines[0] + lines[2] + lines[3]
	if _, err := Verify(strings.NewReader(removed)); err == nil || !strings.Contains(err.Error(), "line 2:") {
		t.Fatalf("Verify after removing a line = %v", err)
	}
	for name, in := range map[string]string{
		"no newline":  strings.TrimSuffix(string(data), "\n"),
		"empty line":  lines[0] + "\n" + lines[1],
		"not chained": `{"time":"x","event":"y"}` + "\n",
	} {
		if _, err := Verify(strings.NewReader(in)); !errors.Is(err, ErrChain) {
			t.Errorf("%s: Verify = %v", name, err)
		}
	}
	if n, err := Verify(strings.NewReader("")); n != 0 || err != nil {
		t.Errorf("empty file: %d, %v", n, err)
	}
}

func TestChainContinuesInExistingFile(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	f.Close()
	f2, err := New(Config{Path: path, Chain: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f2.Close() })
	writeSome(t, f2, "s2")
	data, _ := os.ReadFile(path)
	if n, err := Verify(bytes.NewReader(data)); err != nil || n != 8 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestReopenAfterRotation(t *testing.T) {
	f, path := newTest(t, true)
	writeSome(t, f, "s1")
	rotated := path + ".1"
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	writeSome(t, f, "s2")

	old, _ := os.ReadFile(rotated)
	cur, _ := os.ReadFile(path)
	if !strings.Contains(string(old), `"session":"s1"`) || strings.Contains(string(old), `"session":"s2"`) {
		t.Fatal("rotated file has the wrong records")
	}
	if !strings.Contains(string(cur), `"session":"s2"`) || strings.Contains(string(cur), `"session":"s1"`) {
		t.Fatal("new file has the wrong records")
	}
	_, last, err := VerifyFrom(bytes.NewReader(old), "")
	if err != nil {
		t.Fatal(err)
	}
	if n, _, err := VerifyFrom(bytes.NewReader(cur), last); err != nil || n != 4 {
		t.Fatalf("new file does not continue the old chain: %d, %v", n, err)
	}
	if _, _, err := VerifyFrom(bytes.NewReader(cur), ""); err == nil {
		t.Fatal("VerifyFrom accepted a wrong starting hash")
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != fileMode {
		t.Errorf("new file mode %v", st.Mode().Perm())
	}
}

func TestStdoutAndClose(t *testing.T) {
	f, err := New(Config{Path: "-"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err != nil {
		t.Errorf("Reopen of stdout: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close of stdout: %v", err)
	}
	if err := f.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close = %v", err)
	}
	f.SessionStarted(testSession("s1")) // dropped, must not panic
}

func TestWriteFailureIsLoggedOnceAndNeverStopsMail(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})
	var lost []error
	f, err := New(Config{Path: "/dev/full", Chain: true, OnWriteError: func(err error) { lost = append(lost, err) }}, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := testSession("s1")
	h := f.with(&backend{answer: mailbox})
	for range 3 {
		if resp, _, err := run(t, h, s, "NOOP"); err != nil || !resp.IsOK() {
			t.Fatalf("mail access stopped by an audit failure: %v %v", resp, err)
		}
	}
	if n := strings.Count(logs.String(), "write failed"); n != 1 {
		t.Errorf("write failure logged %d times:\n%s", n, logs.String())
	}
	// Every lost record is counted: one command record per NOOP.
	if len(lost) != 3 {
		t.Errorf("OnWriteError called %d times for 3 lost records: %v", len(lost), lost)
	}
}

// TestConcurrentSessions runs sessions in parallel, each with a pipelined
// burst whose Command sides run while earlier answers stream back, and
// checks the file is whole: run it with -race.
func TestConcurrentSessions(t *testing.T) {
	f, path := newTest(t, true)
	const sessions, perSession = 8, 20
	var wg sync.WaitGroup
	for i := range sessions {
		s := testSession(fmt.Sprintf("s%d", i))
		f.SessionStarted(s)
		h := f.with(&backend{answer: mailbox})
		cmds := []string{"RETR 1", "UIDL", "DELE 2", "UIDL 3", "TOP 2 1"}
		var lines []string
		for j := range perSession {
			lines = append(lines, cmds[j%len(cmds)])
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, r := range pipeline(h, s, 4, lines...) {
				if r.err != nil {
					t.Error(r.err)
				}
			}
			f.SessionEnded(s, filters.SessionEnd{Reason: "quit"})
		}()
	}
	wg.Wait()
	data, _ := os.ReadFile(path)
	n, err := Verify(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	recs := records(t, path)
	if n != len(recs) {
		t.Fatalf("Verify counted %d, file has %d", n, len(recs))
	}
	if got := len(only(recs, "command")); got != sessions*perSession {
		t.Errorf("%d command records, want %d", got, sessions*perSession)
	}
	if got := len(only(recs, "session_end")); got != sessions {
		t.Errorf("%d session_end records, want %d", got, sessions)
	}
}
