package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

func TestNewRefusesEmptyPath(t *testing.T) {
	if _, err := New(Config{}, nil); err == nil {
		t.Fatal("New accepted an empty path")
	}
	if _, err := New(Config{Path: t.TempDir() + "/no/such/dir/log"}, nil); err == nil {
		t.Fatal("New accepted a path in a missing directory")
	}
}

func TestSessionStartAndEnd(t *testing.T) {
	f, path := newTest(t, false)
	s := testSession("s1")
	s.TLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256}
	s.SNI = "mail.example.org"
	f.SessionStarted(s)
	plain := testSession("s2")
	f.SessionStarted(plain)
	f.SessionEnded(s, filters.SessionEnd{
		Reason: "quit", BytesIn: 120, BytesOut: 4567, Duration: 2500 * time.Millisecond,
		DeletesMarked: 2, Committed: true,
	})

	recs := records(t, path)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	want(t, recs[0], map[string]any{
		"event": "session_start", "session": "s1", "client": "192.0.2.7:40001", "listener": "pop3",
		"local": "198.51.100.1:110", "tls_version": "TLS 1.3", "tls_cipher": "TLS_AES_128_GCM_SHA256",
		"sni": "mail.example.org",
	})
	want(t, recs[1], map[string]any{"event": "session_start", "session": "s2", "tls_version": "", "tls_cipher": "", "sni": ""})
	want(t, recs[2], map[string]any{
		"event": "session_end", "session": "s1", "duration_ms": 2500, "bytes_in": 120, "bytes_out": 4567,
		"reason": "quit", "deletes_marked": 2, "deletes_committed": true,
	})
	if _, ok := recs[0]["prev_hash"]; ok {
		t.Error("unchained record carries prev_hash")
	}
}

func TestTLSAfterSTLS(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.Wrap(b)
	s := testSession("s1")
	f.SessionStarted(s)
	run(t, h, s, "STLS")
	s.TLS = &tls.ConnectionState{Version: tls.VersionTLS12, CipherSuite: tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256}
	run(t, h, s, "NOOP")
	run(t, h, s, "NOOP")
	tlsRecs := only(records(t, path), "tls")
	if len(tlsRecs) != 1 {
		t.Fatalf("got %d tls records, want 1", len(tlsRecs))
	}
	want(t, tlsRecs[0], map[string]any{"tls_version": "TLS 1.2", "tls_cipher": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "sni": ""})
}

func TestCommandRecord(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: func(cmd parser.Command) answer {
		if cmd.Verb == "STAT" {
			return answer{resp: parser.Err(parser.CodeSysTemp, "try later")}
		}
		return mailbox(cmd)
	}}
	h := f.Wrap(b)
	s := testSession("s1")
	run(t, h, s, "NOOP")
	run(t, h, s, "STAT")
	resp, body, err := run(t, h, s, "RETR 1")
	if err != nil || !resp.IsOK() || !strings.HasPrefix(body, "Message-ID: <one@") {
		t.Fatalf("RETR through the filter: %v %v %q", resp, err, body)
	}
	recs := only(records(t, path), "command")
	if len(recs) != 3 {
		t.Fatalf("got %d command records, want 3", len(recs))
	}
	want(t, recs[0], map[string]any{"seq": 1, "verb": "NOOP", "args": "", "status": "+OK", "code": "", "bytes": 0, "complete": true})
	want(t, recs[1], map[string]any{"seq": 2, "verb": "STAT", "status": "-ERR", "code": "SYS/TEMP"})
	want(t, recs[2], map[string]any{"seq": 3, "verb": "RETR", "args": "1", "status": "+OK", "bytes": len(body), "complete": true})
	for _, r := range recs {
		if d, ok := r["duration_us"].(float64); !ok || d < 0 {
			t.Errorf("bad duration_us in %v", r)
		}
		if _, ok := r["out"]; ok {
			t.Errorf("out written although it equals the command: %v", r)
		}
		if _, ok := r["error"]; ok {
			t.Errorf("error written for a successful exchange: %v", r)
		}
	}
}

func TestCommandRecordOfError(t *testing.T) {
	f, path := newTest(t, false)
	boom := errors.New("backend gone")
	h := f.Wrap(&backend{answer: func(parser.Command) answer { return answer{err: boom} }})
	if _, _, err := run(t, h, testSession("s1"), "NOOP"); !errors.Is(err, boom) {
		t.Fatalf("error not passed on: %v", err)
	}
	recs := records(t, path)
	want(t, recs[0], map[string]any{"event": "command", "status": "-ERR", "code": "SYS/TEMP", "error": "backend gone"})
}

func TestOutShownWhenRewritten(t *testing.T) {
	f, path := newTest(t, false)
	rewrite := filters.HandlerFunc(func(ctx context.Context, ex *filters.Exchange) error {
		ex.Out = parser.NewCommand("PASS", "other secret")
		return (&backend{answer: mailbox}).Serve(ctx, ex)
	})
	run(t, f.Wrap(rewrite), testSession("s1"), "USER bob")
	recs := records(t, path)
	want(t, recs[0], map[string]any{"verb": "USER", "args": "bob", "out": "PASS ***"})
}

func TestAuthRecords(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.Wrap(b)
	s := testSession("s1")
	s.SetState(filters.Authorization)
	run(t, h, s, "USER alice")
	run(t, h, s, "PASS right horse battery")
	run(t, h, s, "PASS wrong horse battery")
	run(t, h, s, "APOP alice c4c9334bac560ecc979e58001b3e22fb")
	run(t, h, s, "AUTH")
	run(t, h, s, "AUTH PLAIN AGFsaWNlAHNlc2FtZQ==")

	auths := only(records(t, path), "auth")
	if len(auths) != 4 {
		t.Fatalf("got %d auth records, want 4 (PASS, PASS, APOP, AUTH PLAIN)", len(auths))
	}
	login := map[string]any{"client_user": "alice", "backend_user": "alice@backend", "mechanism": "user", "backend": "main"}
	for _, a := range auths {
		want(t, a, login)
	}
	want(t, auths[0], map[string]any{"result": "ok", "code": ""})
	want(t, auths[1], map[string]any{"result": "fail", "code": "AUTH"})
	want(t, auths[2], map[string]any{"result": "ok"})

	cmds := only(records(t, path), "command")
	args := []string{}
	for _, c := range cmds {
		args = append(args, c["verb"].(string)+" "+c["args"].(string))
	}
	wantArgs := []string{"USER alice", "PASS ***", "PASS ***", "APOP alice ***", "AUTH ", "AUTH PLAIN ***"}
	if !slices.Equal(args, wantArgs) {
		t.Errorf("command args = %q, want %q", args, wantArgs)
	}
	raw, _ := os.ReadFile(path)
	for _, secret := range []string{"horse", "battery", "c4c9334bac560ecc979e58001b3e22fb", "AGFsaWNl"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("secret %q leaked into the audit trail", secret)
		}
	}
}

func TestRetrieveUsesClientUIDL(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.Wrap(b)
	s := testSession("s1")
	if !f.Exclusive(parser.NewCommand("RETR", "2"), s) {
		t.Fatal("RETR of an unknown message not exclusive")
	}
	run(t, h, s, "UIDL")
	if f.Exclusive(parser.NewCommand("RETR", "2"), s) || f.Exclusive(parser.NewCommand("TOP", "3", "0"), s) {
		t.Fatal("RETR exclusive although the UIDL listing was seen")
	}
	_, body2, _ := run(t, h, s, "RETR 2")
	_, body3, _ := run(t, h, s, "TOP 3 0")
	if got := b.commands(); !slices.Equal(got, []string{"UIDL", "RETR 2", "TOP 3 0"}) {
		t.Fatalf("backend was sent %q", got)
	}
	rets := only(records(t, path), "retrieve")
	if len(rets) != 2 {
		t.Fatalf("got %d retrieve records, want 2", len(rets))
	}
	want(t, rets[0], map[string]any{
		"verb": "RETR", "msg": 2, "uidl": "uid-two", "size": len(body2),
		"message_id": "<two@example.org>", "complete": true,
	})
	if _, ok := rets[0]["lines"]; ok {
		t.Error("RETR record has lines")
	}
	want(t, rets[1], map[string]any{
		"verb": "TOP", "msg": 3, "lines": 0, "uidl": "uid-three", "size": len(body3), "message_id": "",
	})
}

func TestRetrieveAsksBackendForUIDL(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.Wrap(b)
	s := testSession("s1")
	resp, body, err := run(t, h, s, "RETR 1")
	if err != nil || !resp.IsOK() || !strings.Contains(body, "body one") {
		t.Fatalf("RETR after lookup: %v %v %q", resp, err, body)
	}
	run(t, h, s, "RETR 1")
	if got := b.commands(); !slices.Equal(got, []string{"UIDL 1", "RETR 1", "RETR 1"}) {
		t.Fatalf("backend was sent %q", got)
	}
	recs := records(t, path)
	rets := only(recs, "retrieve")
	want(t, rets[0], map[string]any{"msg": 1, "uidl": "uid-one", "message_id": "<one@example.org>"})
	want(t, rets[1], map[string]any{"uidl": "uid-one"})
	if n := len(only(recs, "command")); n != 2 {
		t.Errorf("the lookup was recorded: %d command records", n)
	}
}

func TestNoLookupOutsideTransaction(t *testing.T) {
	f, _ := newTest(t, false)
	b := &backend{answer: mailbox}
	s := testSession("s1")
	s.SetState(filters.Authorization)
	run(t, f.Wrap(b), s, "RETR 1")
	if got := b.commands(); !slices.Equal(got, []string{"RETR 1"}) {
		t.Fatalf("backend was sent %q", got)
	}
}

func TestBackendWithoutUIDL(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: func(cmd parser.Command) answer {
		if cmd.Verb == "UIDL" {
			return answer{resp: parser.Err("", "unknown command")}
		}
		return mailbox(cmd)
	}}
	h := f.Wrap(b)
	s := testSession("s1")
	run(t, h, s, "RETR 9") // no such message: proves nothing about UIDL
	run(t, h, s, "RETR 1")
	if f.Exclusive(parser.NewCommand("RETR", "2"), s) {
		t.Error("still exclusive after the backend showed it has no UIDL")
	}
	run(t, h, s, "RETR 2")
	want := []string{"UIDL 9", "RETR 9", "UIDL 1", "RETR 1", "RETR 2"}
	if got := b.commands(); !slices.Equal(got, want) {
		t.Fatalf("backend was sent %q, want %q", got, want)
	}
	rets := only(records(t, path), "retrieve")
	if len(rets) != 2 || rets[0]["uidl"] != "" || rets[1]["uidl"] != "" {
		t.Fatalf("retrieve records: %v", rets)
	}
}

func TestLookupFailureStopsExchange(t *testing.T) {
	f, path := newTest(t, false)
	boom := errors.New("connection reset")
	b := &backend{answer: func(cmd parser.Command) answer {
		if cmd.Verb == "UIDL" {
			return answer{err: boom}
		}
		return mailbox(cmd)
	}}
	_, _, err := run(t, f.Wrap(b), testSession("s1"), "RETR 1")
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want the lookup's", err)
	}
	if got := b.commands(); !slices.Equal(got, []string{"UIDL 1"}) {
		t.Fatalf("backend was sent %q", got)
	}
	recs := records(t, path)
	if len(recs) != 1 || recs[0]["verb"] != "RETR" || !strings.Contains(recs[0]["error"].(string), "connection reset") {
		t.Fatalf("records: %v", recs)
	}
}

func TestDeleteAndCommit(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: func(cmd parser.Command) answer {
		if cmd.Verb == "DELE" && cmd.Arg(0) == "9" {
			return answer{resp: parser.Err("", "no such message")}
		}
		return mailbox(cmd)
	}}
	h := f.Wrap(b)
	s := testSession("s1")
	run(t, h, s, "UIDL 3")
	run(t, h, s, "DELE 3")
	run(t, h, s, "DELE 1")
	run(t, h, s, "RSET")
	run(t, h, s, "DELE 2")
	run(t, h, s, "DELE 9")
	run(t, h, s, "QUIT")
	recs := records(t, path)
	dels := only(recs, "delete")
	if len(dels) != 3 {
		t.Fatalf("got %d delete records, want 3", len(dels))
	}
	want(t, dels[0], map[string]any{"msg": 3, "uidl": "uid-three"})
	want(t, dels[1], map[string]any{"msg": 1, "uidl": ""})
	want(t, dels[2], map[string]any{"msg": 2})
	commits := only(recs, "commit")
	if len(commits) != 1 {
		t.Fatalf("got %d commit records, want 1", len(commits))
	}
	want(t, commits[0], map[string]any{"count": 1, "msgs": []int{2}})
	if recs[len(recs)-1]["event"] != "commit" || recs[len(recs)-2]["verb"] != "QUIT" {
		t.Error("commit does not follow the QUIT command record")
	}

	// QUIT in AUTHORIZATION commits nothing (RFC 1939 section 4).
	s2 := testSession("s2")
	s2.SetState(filters.Authorization)
	run(t, h, s2, "QUIT")
	if n := len(only(records(t, path), "commit")); n != 1 {
		t.Errorf("QUIT in AUTHORIZATION wrote a commit record")
	}
}

// failingReader returns some octets, then an error.
type failingReader struct{ r io.Reader }

func (fr *failingReader) Read(p []byte) (int, error) {
	n, err := fr.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func TestBodyCutShort(t *testing.T) {
	f, path := newTest(t, false)
	b := filters.HandlerFunc(func(_ context.Context, ex *filters.Exchange) error {
		ex.Response = parser.OK("")
		if ex.Out.Verb == "RETR" {
			ex.Body = &failingReader{strings.NewReader("Message-ID: <cut@x>\r\nSubj")}
		} else {
			ex.Response = parser.OK("1 u1")
		}
		return nil
	})
	s := testSession("s1")
	ex := &filters.Exchange{Session: s, Command: parser.NewCommand("RETR", "1"), Out: parser.NewCommand("RETR", "1")}
	if err := f.Wrap(b).Serve(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, iotest.OneByteReader(ex.Body))
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 25 {
		t.Fatalf("read %d, %v", n, err)
	}
	recs := records(t, path)
	want(t, only(recs, "command")[0], map[string]any{"bytes": 25, "complete": false, "error": io.ErrUnexpectedEOF.Error()})
	want(t, only(recs, "retrieve")[0], map[string]any{"size": 25, "complete": false, "message_id": "<cut@x>", "uidl": "u1"})
}

func TestUnreadBodyFinishedAtSessionEnd(t *testing.T) {
	f, path := newTest(t, false)
	h := f.Wrap(&backend{answer: mailbox})
	s := testSession("s1")
	f.SessionStarted(s)
	run(t, h, s, "UIDL")
	ex := &filters.Exchange{Session: s, Command: parser.NewCommand("RETR", "1"), Out: parser.NewCommand("RETR", "1")}
	if err := h.Serve(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	if _, err := io.ReadFull(ex.Body, buf); err != nil {
		t.Fatal(err)
	}
	if n := len(only(records(t, path), "retrieve")); n != 0 {
		t.Fatalf("retrieve written before the body ended")
	}
	f.SessionEnded(s, filters.SessionEnd{Reason: "client-closed"})
	recs := records(t, path)
	events := []string{}
	for _, r := range recs {
		events = append(events, r["event"].(string))
	}
	wantEvents := []string{"session_start", "command", "command", "retrieve", "session_end"}
	if !slices.Equal(events, wantEvents) {
		t.Fatalf("events %q, want %q", events, wantEvents)
	}
	want(t, recs[2], map[string]any{"verb": "RETR", "bytes": 10, "complete": false, "error": errNotRead.Error()})
	want(t, recs[3], map[string]any{"size": 10, "complete": false, "uidl": "uid-one", "message_id": ""})
	// Reading on after the session ended writes nothing more.
	io.Copy(io.Discard, ex.Body)
	if n := len(records(t, path)); n != len(recs) {
		t.Errorf("records written after the session ended")
	}
	if s.Value(stateKey{f}) != nil {
		t.Error("per-session state kept after SessionEnded")
	}
}

// oversizeErr is an error like the clamav filter's for a skipped message.
type oversizeErr struct{}

func (oversizeErr) Error() string  { return "message larger than the scan limit" }
func (oversizeErr) Oversize() bool { return true }

func TestRecordVerdict(t *testing.T) {
	f, path := newTest(t, false)
	s := testSession("s1")
	retr := parser.NewCommand("RETR", "4")
	f.RecordVerdict(s, retr, "", true, nil, 1000, 2*time.Millisecond)
	f.RecordVerdict(s, retr, "Eicar-Test-Signature", false, nil, 68, time.Millisecond)
	f.RecordVerdict(s, retr, "", false, errors.New("clamd: connection refused"), 0, 0)
	f.RecordVerdict(s, parser.NewCommand("TOP", "4", "10"), "", false, errors.Join(errors.New("skip"), oversizeErr{}), 5, 0)
	tooBig := errors.New("clamav: message larger than max_size, not scanned")
	marked := Oversize(tooBig)
	if !errors.Is(marked, tooBig) || marked.Error() != tooBig.Error() || Oversize(nil) != nil {
		t.Fatal("Oversize changes its error")
	}
	f.RecordVerdict(s, retr, "", false, marked, 5, 0)
	recs := records(t, path)
	if len(recs) != 5 {
		t.Fatalf("got %d records", len(recs))
	}
	want(t, recs[0], map[string]any{"event": "scan", "verb": "RETR", "msg": 4, "verdict": "clean", "virus": "", "error": "", "bytes": 1000, "duration_us": 2000})
	want(t, recs[1], map[string]any{"verdict": "infected", "virus": "Eicar-Test-Signature", "bytes": 68})
	want(t, recs[2], map[string]any{"verdict": "error", "error": "clamd: connection refused"})
	want(t, recs[3], map[string]any{"verb": "TOP", "verdict": "skipped-oversize"})
	want(t, recs[4], map[string]any{"verdict": "skipped-oversize", "error": tooBig.Error()})
}

// closeTracker is a body that records whether it was closed.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestAbandonedBodyClosed(t *testing.T) {
	f, path := newTest(t, false)
	inner := &closeTracker{Reader: strings.NewReader("Message-ID: <c@x>\r\n\r\nbody\r\n")}
	next := filters.HandlerFunc(func(_ context.Context, ex *filters.Exchange) error {
		ex.Response, ex.Body = parser.OK(""), inner
		return nil
	})
	s := testSession("s1")
	s.SetState(filters.Authorization) // no UIDL lookup
	ex := &filters.Exchange{Session: s, Command: parser.NewCommand("RETR", "1"), Out: parser.NewCommand("RETR", "1")}
	if err := f.Wrap(next).Serve(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 19)
	io.ReadFull(ex.Body, buf)
	c, ok := ex.Body.(io.Closer)
	if !ok {
		t.Fatal("wrapped body is not an io.Closer")
	}
	if err := c.Close(); err != nil || !inner.closed {
		t.Fatalf("Close not passed on: %v, closed=%v", err, inner.closed)
	}
	recs := records(t, path)
	want(t, only(recs, "command")[0], map[string]any{"bytes": 19, "complete": false, "error": errNotRead.Error()})
	want(t, only(recs, "retrieve")[0], map[string]any{"size": 19, "complete": false, "message_id": "<c@x>"})

	// A body read to its end and then closed is complete.
	inner2 := &closeTracker{Reader: strings.NewReader("x\r\n")}
	next2 := filters.HandlerFunc(func(_ context.Context, ex *filters.Exchange) error {
		ex.Response, ex.Body = parser.OK(""), inner2
		return nil
	})
	ex2 := &filters.Exchange{Session: s, Command: parser.NewCommand("CAPA"), Out: parser.NewCommand("CAPA")}
	f.Wrap(next2).Serve(context.Background(), ex2)
	io.Copy(io.Discard, ex2.Body)
	ex2.Body.(io.Closer).Close()
	cmds := only(records(t, path), "command")
	want(t, cmds[len(cmds)-1], map[string]any{"verb": "CAPA", "bytes": 3, "complete": true})
	if len(cmds) != 2 || !inner2.closed {
		t.Fatalf("%d command records, closed=%v", len(cmds), inner2.closed)
	}
}
