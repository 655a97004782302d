package audit

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
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
	h := f.with(b)
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
	h := f.with(b)
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

// TestCommandRecordOfError: an exchange that fails before the Response
// side sees its answer (the backend went away) is recorded at its Finish,
// with the error the session gives it.
func TestCommandRecordOfError(t *testing.T) {
	f, path := newTest(t, false)
	c := filters.NewChain(f)
	boom := errors.New("backend gone")
	ex, _ := newExchange(testSession("s1"), "NOOP")
	if _, err := c.Command(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	filtertest.Finish(c, ex, boom)
	recs := records(t, path)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
	want(t, recs[0], map[string]any{"event": "command", "seq": 1, "verb": "NOOP", "status": "-ERR", "code": "SYS/TEMP", "error": "backend gone"})
}

// failResponse is a filter whose Response side fails, as the clamav
// filter's does when the backend's body breaks off.
type failResponse struct{ err error }

func (failResponse) Name() string { return "fail" }

func (r failResponse) Response(context.Context, *filters.Exchange) error { return r.err }

// TestCommandRecordWhenInnerResponseFails: when a filter nearer the
// backend fails on the way back, the audit's Response side never runs; the
// exchange is recorded once, at Finish, with that error and its code.
func TestCommandRecordWhenInnerResponseFails(t *testing.T) {
	f, path := newTest(t, false)
	refused := parser.NewError(parser.CodeSysTemp, "scanner unavailable", errors.New("clamd down"))
	h := newHarness(&backend{answer: mailbox}, f, failResponse{refused})
	s := testSession("s1")
	s.SetState(filters.Authorization) // no listing
	if _, _, err := run(t, h, s, "RETR 1"); !errors.Is(err, refused) {
		t.Fatalf("error not passed on: %v", err)
	}
	recs := records(t, path)
	if len(recs) != 1 {
		t.Fatalf("got %d records, want 1: %v", len(recs), recs)
	}
	want(t, recs[0], map[string]any{"verb": "RETR", "status": "-ERR", "code": "SYS/TEMP", "error": refused.Error()})
}

// rewriteOut is a filter that rewrites every outgoing command.
type rewriteOut struct{ out parser.Command }

func (rewriteOut) Name() string { return "rewrite" }

func (r rewriteOut) Command(_ context.Context, ex *filters.Exchange) error {
	ex.Out = r.out
	return nil
}

func TestOutShownWhenRewritten(t *testing.T) {
	f, path := newTest(t, false)
	h := newHarness(&backend{answer: mailbox}, f, rewriteOut{parser.NewCommand("PASS", "other secret")})
	run(t, h, testSession("s1"), "USER bob")
	recs := records(t, path)
	want(t, recs[0], map[string]any{"verb": "USER", "args": "bob", "out": "PASS ***"})
}

func TestAuthRecords(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.with(b)
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

// TestAuthRecordTakesLoginAfterExchange: the auth record names the login
// as the session recorded it once the exchange was over, not as it was
// when the answer passed the filter.
func TestAuthRecordTakesLoginAfterExchange(t *testing.T) {
	f, path := newTest(t, false)
	h := f.with(&backend{answer: mailbox})
	s := testSession("s1")
	s.SetState(filters.Authorization)
	s.Login = filters.Login{}
	ex, _ := newExchange(s, "PASS right horse battery")
	if err := filtertest.Run(context.Background(), h.c, ex, h.b.reply); err != nil {
		t.Fatal(err)
	}
	// The session, the only writer of Login, records the login now.
	s.Login = filters.Login{User: "dave", BackendUser: "dave@backend", Mechanism: "user", Backend: "main"}
	filtertest.Finish(h.c, ex, nil)
	recs := records(t, path)
	if len(recs) != 2 || recs[0]["event"] != "command" {
		t.Fatalf("records %v, want command then auth", recs)
	}
	want(t, recs[1], map[string]any{"event": "auth", "client_user": "dave", "backend_user": "dave@backend", "result": "ok"})
}

// cramAnswer is a filter that answers AUTH CRAM-MD5 itself, as the apop
// filter does, and names the user it found inside the client's response.
type cramAnswer struct{ user string }

func (cramAnswer) Name() string { return "apop" }

func (c cramAnswer) Command(_ context.Context, ex *filters.Exchange) error {
	if ex.Command.Verb == "AUTH" {
		ex.User = c.user
		ex.Response = parser.Err(parser.CodeAuth, "authentication failed")
	}
	return nil
}

// TestAuthRecordOfLocalCRAMFailure: a failed CRAM-MD5 login that a filter
// answered is recorded with the user that filter put in Exchange.User,
// since the session never learnt a login name.
func TestAuthRecordOfLocalCRAMFailure(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := newHarness(b, f, cramAnswer{user: "carol"})
	s := testSession("s1")
	s.SetState(filters.Authorization)
	s.Login = filters.Login{Mechanism: "cram-md5"}
	run(t, h, s, "AUTH CRAM-MD5")
	if got := b.commands(); len(got) != 0 {
		t.Fatalf("backend was sent %q", got)
	}
	auths := only(records(t, path), "auth")
	if len(auths) != 1 {
		t.Fatalf("got %d auth records, want 1", len(auths))
	}
	want(t, auths[0], map[string]any{"client_user": "carol", "backend_user": "", "mechanism": "cram-md5", "result": "fail", "code": "AUTH"})
}

// exclusive asks f whether line, in session s, must run alone.
func exclusive(t *testing.T, f *Filter, s *filters.Session, line string) bool {
	t.Helper()
	ex, err := newExchange(s, line)
	if err != nil {
		t.Fatal(err)
	}
	return f.Exclusive(ex)
}

func TestRetrieveUsesClientUIDL(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.with(b)
	s := testSession("s1")
	if !exclusive(t, f, s, "RETR 2") {
		t.Fatal("RETR of an unknown message not exclusive")
	}
	run(t, h, s, "UIDL")
	if exclusive(t, f, s, "RETR 2") || exclusive(t, f, s, "TOP 3 0") || exclusive(t, f, s, "DELE 1") {
		t.Fatal("exclusive although the UIDL listing was seen")
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

// TestRetrieveAsksBackendForOneListing: the first RETR of a message whose
// unique-id is unknown runs alone and asks the backend for the whole UIDL
// listing, once; every later RETR, TOP and DELE of the session knows its
// unique-id from it and runs pipelined.
func TestRetrieveAsksBackendForOneListing(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.with(b)
	s := testSession("s1")
	resp, body, err := run(t, h, s, "RETR 1")
	if err != nil || !resp.IsOK() || !strings.Contains(body, "body one") {
		t.Fatalf("RETR after lookup: %v %v %q", resp, err, body)
	}
	if exclusive(t, f, s, "RETR 2") || exclusive(t, f, s, "DELE 3") {
		t.Fatal("still exclusive after the listing")
	}
	run(t, h, s, "RETR 1")
	run(t, h, s, "TOP 2 0")
	run(t, h, s, "DELE 3")
	if got := b.commands(); !slices.Equal(got, []string{"UIDL", "RETR 1", "RETR 1", "TOP 2 0", "DELE 3"}) {
		t.Fatalf("backend was sent %q", got)
	}
	if n := h.exclusive.Load(); n != 1 {
		t.Errorf("%d exchanges ran alone, want 1", n)
	}
	recs := records(t, path)
	rets := only(recs, "retrieve")
	want(t, rets[0], map[string]any{"msg": 1, "uidl": "uid-one", "message_id": "<one@example.org>"})
	want(t, rets[1], map[string]any{"uidl": "uid-one"})
	want(t, rets[2], map[string]any{"msg": 2, "uidl": "uid-two"})
	want(t, only(recs, "delete")[0], map[string]any{"msg": 3, "uidl": "uid-three"})
	if n := len(only(recs, "command")); n != 4 {
		t.Errorf("the listing was recorded: %d command records", n)
	}
}

// TestPipelinedBurstRunsAloneOnce: a burst of RETRs without a UIDL from
// the client drains the pipeline once, for the listing, and no more.
func TestPipelinedBurstRunsAloneOnce(t *testing.T) {
	f, path := newTest(t, true)
	b := &backend{answer: mailbox}
	h := f.with(b)
	s := testSession("s1")
	for _, r := range pipeline(h, s, 8, "RETR 1", "RETR 2", "RETR 3", "TOP 1 0", "DELE 2", "RETR 1") {
		if r.err != nil || !r.resp.IsOK() {
			t.Fatalf("burst: %v %v", r.resp, r.err)
		}
	}
	if n := h.exclusive.Load(); n != 1 {
		t.Errorf("%d exchanges ran alone, want 1", n)
	}
	wantSent := []string{"UIDL", "RETR 1", "RETR 2", "RETR 3", "TOP 1 0", "DELE 2", "RETR 1"}
	if got := b.commands(); !slices.Equal(got, wantSent) {
		t.Errorf("backend was sent %q, want %q", got, wantSent)
	}
	recs := records(t, path)
	var uids []string
	for _, r := range only(recs, "retrieve") {
		uids = append(uids, r["uidl"].(string))
	}
	if want := []string{"uid-one", "uid-two", "uid-three", "uid-one", "uid-one"}; !slices.Equal(uids, want) {
		t.Errorf("retrieve uidls %q, want %q", uids, want)
	}
	var seqs []float64
	for _, r := range only(recs, "command") {
		seqs = append(seqs, r["seq"].(float64))
	}
	if !slices.Equal(seqs, []float64{1, 2, 3, 4, 5, 6}) {
		t.Errorf("command seqs %v, want 1 to 6 in order", seqs)
	}
}

// TestClientListingInBurst: a client that sends UIDL first, pipelined with
// its RETRs, costs no listing of the filter's own and no drained pipeline.
func TestClientListingInBurst(t *testing.T) {
	f, path := newTest(t, false)
	b := &backend{answer: mailbox}
	h := f.with(b)
	s := testSession("s1")
	pipeline(h, s, 8, "UIDL", "RETR 3", "RETR 2", "DELE 1")
	if n := h.exclusive.Load(); n != 0 {
		t.Errorf("%d exchanges ran alone, want 0", n)
	}
	if got := b.commands(); !slices.Equal(got, []string{"UIDL", "RETR 3", "RETR 2", "DELE 1"}) {
		t.Errorf("backend was sent %q", got)
	}
	recs := records(t, path)
	rets := only(recs, "retrieve")
	want(t, rets[0], map[string]any{"msg": 3, "uidl": "uid-three"})
	want(t, rets[1], map[string]any{"msg": 2, "uidl": "uid-two"})
	want(t, only(recs, "delete")[0], map[string]any{"msg": 1, "uidl": "uid-one"})
}

func TestNoLookupOutsideTransaction(t *testing.T) {
	f, _ := newTest(t, false)
	b := &backend{answer: mailbox}
	s := testSession("s1")
	s.SetState(filters.Authorization)
	run(t, f.with(b), s, "RETR 1")
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
	h := f.with(b)
	s := testSession("s1")
	run(t, h, s, "RETR 9")
	if exclusive(t, f, s, "RETR 2") || exclusive(t, f, s, "DELE 1") {
		t.Error("still exclusive after the backend answered the listing -ERR")
	}
	run(t, h, s, "RETR 1")
	run(t, h, s, "RETR 2")
	want := []string{"UIDL", "RETR 9", "RETR 1", "RETR 2"}
	if got := b.commands(); !slices.Equal(got, want) {
		t.Fatalf("backend was sent %q, want %q", got, want)
	}
	rets := only(records(t, path), "retrieve")
	if len(rets) != 2 || rets[0]["uidl"] != "" || rets[1]["uidl"] != "" {
		t.Fatalf("retrieve records: %v", rets)
	}
}

// brokenBackend fails every round trip.
type brokenBackend struct {
	err  error
	sent []string
}

func (b *brokenBackend) Call(_ context.Context, cmd parser.Command) (parser.Response, io.Reader, error) {
	b.sent = append(b.sent, cmd.String())
	return parser.Response{}, nil, b.err
}

func TestLookupFailureStopsExchange(t *testing.T) {
	f, path := newTest(t, false)
	c := filters.NewChain(f)
	boom := errors.New("connection reset")
	b := &brokenBackend{err: boom}
	ex, _ := newExchange(testSession("s1"), "RETR 1")
	if !c.Exclusive(ex) {
		t.Fatal("RETR of an unknown message not exclusive")
	}
	ex.Backend = b
	_, err := c.Command(context.Background(), ex)
	ex.Backend = nil
	if !errors.Is(err, boom) {
		t.Fatalf("error = %v, want the listing's", err)
	}
	if !slices.Equal(b.sent, []string{"UIDL"}) {
		t.Fatalf("backend was sent %q", b.sent)
	}
	filtertest.Finish(c, ex, err) // the session ends: recorded once
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
	h := f.with(b)
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
	want(t, dels[1], map[string]any{"msg": 1, "uidl": "uid-one"}) // from the filter's listing
	want(t, dels[2], map[string]any{"msg": 2, "uidl": "uid-two"})
	if got := b.commands(); !slices.Equal(got[:4], []string{"UIDL 3", "DELE 3", "UIDL", "DELE 1"}) {
		t.Errorf("backend was sent %q", got)
	}
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

// respond runs line through h's chain as the session does, with resp and
// body as the backend's answer, and returns the exchange with its body
// (the filter's tap) left to read; the test then calls filtertest.Finish.
func respond(t *testing.T, h *harness, s *filters.Session, line string, resp parser.Response, body io.Reader) *filters.Exchange {
	t.Helper()
	ctx := context.Background()
	ex, err := newExchange(s, line)
	if err != nil {
		t.Fatal(err)
	}
	if h.c.Exclusive(ex) {
		ex.Backend = h.b
	}
	n, err := h.c.Command(ctx, ex)
	ex.Backend = nil
	if err != nil {
		t.Fatal(err)
	}
	ex.Response, ex.Body = resp, body
	if err := h.c.Response(ctx, ex, n); err != nil {
		t.Fatal(err)
	}
	return ex
}

func TestBodyCutShort(t *testing.T) {
	f, path := newTest(t, false)
	h := f.with(&backend{answer: func(cmd parser.Command) answer {
		return answer{resp: parser.OK(""), body: "1 u1\r\n"} // the listing
	}})
	s := testSession("s1")
	ex := respond(t, h, s, "RETR 1", parser.OK(""), &failingReader{strings.NewReader("Message-ID: <cut@x>\r\nSubj")})
	n, err := io.Copy(io.Discard, iotest.OneByteReader(ex.Body))
	if !errors.Is(err, io.ErrUnexpectedEOF) || n != 25 {
		t.Fatalf("read %d, %v", n, err)
	}
	filtertest.Finish(h.c, ex, err)
	recs := records(t, path)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2: %v", len(recs), recs)
	}
	want(t, only(recs, "command")[0], map[string]any{"bytes": 25, "complete": false, "error": io.ErrUnexpectedEOF.Error()})
	want(t, only(recs, "retrieve")[0], map[string]any{"size": 25, "complete": false, "message_id": "<cut@x>", "uidl": "u1"})
}

// TestUnreadBodyFinishedAtFinish: a body the session stopped reading (the
// client went away mid-message) is recorded at the exchange's Finish with
// the session's error, before any record of a later exchange.
func TestUnreadBodyFinishedAtFinish(t *testing.T) {
	f, path := newTest(t, false)
	h := f.with(&backend{answer: mailbox})
	s := testSession("s1")
	run(t, h, s, "UIDL")
	ex := respond(t, h, s, "RETR 2", parser.OK(""), strings.NewReader("Subject: two\r\n\r\nbody two\r\n"))
	buf := make([]byte, 5)
	if _, err := io.ReadFull(ex.Body, buf); err != nil {
		t.Fatal(err)
	}
	gone := errors.New("client write: broken pipe")
	ex.Err = gone
	h.c.Finish(ex)
	run(t, h, s, "NOOP")
	recs := records(t, path)
	events := []string{}
	for _, r := range recs {
		events = append(events, r["event"].(string))
	}
	if want := []string{"command", "command", "retrieve", "command"}; !slices.Equal(events, want) {
		t.Fatalf("events %q, want %q", events, want)
	}
	want(t, recs[1], map[string]any{"verb": "RETR", "bytes": 5, "complete": false, "error": gone.Error()})
	want(t, recs[2], map[string]any{"size": 5, "complete": false, "uidl": "uid-two"})
}

func TestUnreadBodyFinishedAtSessionEnd(t *testing.T) {
	f, path := newTest(t, false)
	h := f.with(&backend{answer: mailbox})
	s := testSession("s1")
	f.SessionStarted(s)
	run(t, h, s, "UIDL")
	ex := respond(t, h, s, "RETR 1", parser.OK(""), strings.NewReader("Message-ID: <one@example.org>\r\n\r\nbody one\r\n"))
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

// TestUnansweredExchangeRecordedAtSessionEnd: an exchange sent to the
// backend whose answer never came (the session ended first, and gave it
// no Finish) is recorded when the session ends, with why.
func TestUnansweredExchangeRecordedAtSessionEnd(t *testing.T) {
	f, path := newTest(t, false)
	c := filters.NewChain(f)
	s := testSession("s1")
	ex, _ := newExchange(s, "STAT")
	if _, err := c.Command(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	f.SessionEnded(s, filters.SessionEnd{Reason: "error"})
	recs := records(t, path)
	if len(recs) != 2 {
		t.Fatalf("got %d records, want 2", len(recs))
	}
	want(t, recs[0], map[string]any{"event": "command", "verb": "STAT", "status": "-ERR", "error": errNoAnswer.Error()})
	want(t, recs[1], map[string]any{"event": "session_end"})
}

// oversizeErr is an error like the clamav filter's for a skipped message.
type oversizeErr struct{}

func (oversizeErr) Error() string  { return "message larger than the scan limit" }
func (oversizeErr) Oversize() bool { return true }

// scanner is a filter that puts a verdict on every answer to RETR and TOP,
// as the clamav filter's Response side does.
type scanner struct{ v *filters.Verdict }

func (scanner) Name() string { return "clamav" }

func (sc *scanner) Response(_ context.Context, ex *filters.Exchange) error {
	if ex.Command.Verb == "RETR" || ex.Command.Verb == "TOP" {
		v := *sc.v
		ex.Verdict = &v
	}
	return nil
}

// TestScanRecordFromVerdict: the verdict on the exchange becomes a scan
// record at Finish, after the exchange's own records, whether the scanner
// stands before or after the audit filter in the chain.
func TestScanRecordFromVerdict(t *testing.T) {
	tooBig := errors.New("clamav: message larger than max_size, not scanned")
	marked := Oversize(tooBig)
	if !errors.Is(marked, tooBig) || marked.Error() != tooBig.Error() || Oversize(nil) != nil {
		t.Fatal("Oversize changes its error")
	}
	cases := []struct {
		line string
		v    filters.Verdict
		want map[string]any
	}{
		{"RETR 1", filters.Verdict{Scanned: true, Clean: true, Action: "deliver", Size: 1000, Wait: 2 * time.Millisecond},
			map[string]any{"verb": "RETR", "msg": 1, "verdict": "clean", "virus": "", "action": "deliver", "error": "", "bytes": 1000, "duration_us": 2000}},
		{"RETR 2", filters.Verdict{Scanned: true, Virus: "Eicar-Test-Signature", Action: "replace", Size: 68, Wait: time.Millisecond},
			map[string]any{"msg": 2, "verdict": "infected", "virus": "Eicar-Test-Signature", "action": "replace", "bytes": 68}},
		{"RETR 3", filters.Verdict{Err: errors.New("clamd: connection refused"), Action: "tempfail"},
			map[string]any{"verdict": "error", "error": "clamd: connection refused", "action": "tempfail"}},
		{"TOP 3 10", filters.Verdict{Err: errors.Join(errors.New("skip"), oversizeErr{}), Action: "pass", Size: 5},
			map[string]any{"verb": "TOP", "msg": 3, "verdict": "skipped-oversize", "action": "pass"}},
		{"RETR 1", filters.Verdict{Err: marked, Action: "pass", Size: 5},
			map[string]any{"verdict": "skipped-oversize", "error": tooBig.Error()}},
		{"RETR 1", filters.Verdict{Action: "pass"},
			map[string]any{"verdict": "error", "error": errNoVerdict.Error()}},
	}
	for _, scannerFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("scanner first %v", scannerFirst), func(t *testing.T) {
			f, path := newTest(t, false)
			sc := &scanner{}
			b := &backend{answer: mailbox}
			h := newHarness(b, f, sc)
			if scannerFirst {
				h = newHarness(b, sc, f)
			}
			s := testSession("s1")
			for _, c := range cases {
				sc.v = &c.v
				run(t, h, s, c.line)
			}
			recs := records(t, path)
			scans := only(recs, "scan")
			if len(scans) != len(cases) {
				t.Fatalf("got %d scan records, want %d", len(scans), len(cases))
			}
			for i, c := range cases {
				want(t, scans[i], c.want)
			}
			if recs[2]["event"] != "scan" || recs[1]["event"] != "retrieve" || recs[0]["event"] != "command" {
				t.Errorf("the scan record does not follow its exchange's records: %v", recs[:3])
			}
		})
	}
}

// closeTracker is a body that records whether it was closed.
type closeTracker struct {
	io.Reader
	closed bool
}

func (c *closeTracker) Close() error { c.closed = true; return nil }

func TestAbandonedBodyClosed(t *testing.T) {
	f, path := newTest(t, false)
	h := f.with(&backend{answer: mailbox})
	inner := &closeTracker{Reader: strings.NewReader("Message-ID: <c@x>\r\n\r\nbody\r\n")}
	s := testSession("s1")
	s.SetState(filters.Authorization) // no UIDL lookup
	ex := respond(t, h, s, "RETR 1", parser.OK(""), inner)
	buf := make([]byte, 19)
	io.ReadFull(ex.Body, buf)
	c, ok := ex.Body.(io.Closer)
	if !ok {
		t.Fatal("wrapped body is not an io.Closer")
	}
	if err := c.Close(); err != nil || !inner.closed {
		t.Fatalf("Close not passed on: %v, closed=%v", err, inner.closed)
	}
	filtertest.Finish(h.c, ex, nil)
	recs := records(t, path)
	want(t, only(recs, "command")[0], map[string]any{"bytes": 19, "complete": false, "error": errNotRead.Error()})
	want(t, only(recs, "retrieve")[0], map[string]any{"size": 19, "complete": false, "message_id": "<c@x>"})

	// A body read to its end and then closed is complete.
	inner2 := &closeTracker{Reader: strings.NewReader("x\r\n")}
	ex2 := respond(t, h, s, "CAPA", parser.OK(""), inner2)
	io.Copy(io.Discard, ex2.Body)
	ex2.Body.(io.Closer).Close()
	filtertest.Finish(h.c, ex2, nil)
	cmds := only(records(t, path), "command")
	want(t, cmds[len(cmds)-1], map[string]any{"verb": "CAPA", "bytes": 3, "complete": true})
	if len(cmds) != 2 || !inner2.closed {
		t.Fatalf("%d command records, closed=%v", len(cmds), inner2.closed)
	}
}
