package audit

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// serve runs one exchange through next and records it. Records of an
// exchange with a body are written when the body ends (see tap); the others
// at once. Semantic records (auth, retrieve, delete, commit) follow the
// command record of their exchange.
func (f *Filter) serve(ctx context.Context, ex *filters.Exchange, next filters.Handler) error {
	s := ex.Session
	st := f.state(s)
	start := ex.Started
	if start.IsZero() {
		start = time.Now()
	}
	seq := st.seq.Add(1)
	if st.noteTLS(s) {
		version, cipher, sni := tlsFields(s)
		f.record(&tlsRecord{
			header:     newHeader(EventTLS, s, time.Now()),
			TLSVersion: version, TLSCipher: cipher, SNI: sni,
		})
	}
	preState := filters.Authorization
	if s != nil {
		preState = s.State()
	}
	cmd := ex.Command

	var uid string
	looked := false
	if msg, ok := wantsLookup(ex, st); ok {
		var err error
		if uid, err = f.lookupUIDL(ctx, ex, next, st, msg); err != nil {
			f.record(f.commandRecord(ex, seq, start, parser.Response{}, err))
			return err
		}
		looked = true
	}

	err := next.Serve(ctx, ex)
	resp := ex.Response
	if err != nil {
		resp = parser.ErrorResponse(err)
	}
	rec := f.commandRecord(ex, seq, start, resp, err)
	ok := err == nil && resp.IsOK()
	out := ex.Out
	sameVerb := out.Verb == cmd.Verb

	// The backend's answer to UIDL n teaches the cache, whoever asked.
	if ok && out.Verb == "UIDL" && len(out.Args) == 1 {
		if n, u, valid := parseUIDLLine(resp.Text); valid && out.Arg(0) == strconv.Itoa(n) {
			st.storeUID(n, u)
		}
	}

	if err == nil && ex.Body != nil {
		t := &tap{r: ex.Body, f: f, st: st, start: start, cmd: rec}
		if ok && sameVerb && (cmd.Verb == "RETR" || cmd.Verb == "TOP") {
			msg, _ := parseMsg(cmd.Arg(0))
			if uid == "" {
				uid, _ = st.uid(msg)
			}
			if looked && uid == "" {
				// RETR worked where UIDL n did not: the backend has
				// no UIDL (it is optional, RFC 1939 section 7).
				st.setUnsupported()
			}
			t.retrieve = &retrieveRecord{
				header: newHeader(EventRetrieve, s, start),
				Verb:   cmd.Verb, Msg: msg, UIDL: uid,
			}
			if cmd.Verb == "TOP" {
				if n, err := strconv.Atoi(cmd.Arg(1)); err == nil {
					t.retrieve.Lines = &n
				}
			}
			t.msgid = newMessageIDScanner()
		}
		if ok && out.Verb == "UIDL" && len(out.Args) == 0 {
			t.uidl = newUIDLScanner(st.storeUID)
		}
		st.addPending(t)
		ex.Body = t
		return nil
	}

	rec.Complete = true
	f.record(&rec)
	switch {
	case isLogin(cmd) && (resp.Status == parser.StatusOK || resp.Status == parser.StatusErr):
		f.recordAuth(s, resp)
	case !ok || !sameVerb:
	case cmd.Verb == "DELE":
		if msg, valid := parseMsg(cmd.Arg(0)); valid {
			st.mark(msg)
			u, _ := st.uid(msg)
			f.record(&deleteRecord{header: newHeader(EventDelete, s, time.Now()), Msg: msg, UIDL: u})
		}
	case cmd.Verb == "RSET":
		st.resetMarks()
	case cmd.Verb == "QUIT" && preState == filters.Transaction:
		msgs, count, truncated := st.marked()
		f.record(&commitRecord{
			header: newHeader(EventCommit, s, time.Now()),
			Count:  count, Msgs: msgs, Truncated: truncated,
		})
	}
	return err
}

// commandRecord builds the command record of ex; for an exchange with a
// body the tap completes it.
func (f *Filter) commandRecord(ex *filters.Exchange, seq int64, start time.Time, resp parser.Response, err error) commandRecord {
	now := time.Now()
	cmd := ex.Command
	rec := commandRecord{
		header:     newHeader(EventCommand, ex.Session, now),
		Seq:        seq,
		Verb:       cmd.Verb,
		Args:       redactedArgs(cmd),
		Status:     resp.Status.String(),
		Code:       resp.Code,
		DurationUS: now.Sub(start).Microseconds(),
	}
	if ex.Out.String() != cmd.String() {
		rec.Out = ex.Out.Redacted()
	}
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}

// recordAuth writes the auth record of a completed login attempt. The
// password is never part of it.
func (f *Filter) recordAuth(s *filters.Session, resp parser.Response) {
	rec := authRecord{
		header: newHeader(EventAuth, s, time.Now()),
		Result: "fail",
		Code:   resp.Code,
	}
	if resp.IsOK() {
		rec.Result = "ok"
	}
	if s != nil {
		l := s.Login
		rec.ClientUser, rec.BackendUser = l.User, l.BackendUser
		rec.Mechanism, rec.Backend = l.Mechanism, l.Backend
	}
	f.record(&rec)
}

// isLogin reports whether cmd completes a login attempt when answered with
// +OK or -ERR: PASS, APOP, and AUTH with a mechanism (AUTH alone lists the
// mechanisms).
func isLogin(cmd parser.Command) bool {
	switch cmd.Verb {
	case "PASS", "APOP":
		return true
	case "AUTH":
		return len(cmd.Args) > 0
	}
	return false
}

// redactedArgs returns the arguments of cmd as Command.Redacted prints
// them, so that PASS, APOP and AUTH secrets are masked.
func redactedArgs(cmd parser.Command) string {
	r := strings.TrimPrefix(cmd.Redacted(), cmd.Verb)
	return strings.TrimPrefix(r, " ")
}
