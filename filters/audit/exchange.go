package audit

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Response records the exchange ex as it goes back to the client. The
// records of an answer with a body are written when the body ends (see
// tap), the others at once: the command record, then delete or commit.
// Answers to "UIDL n" and UIDL listings teach the unique-id cache. It
// implements filters.ResponseFilter; it never fails.
func (f *Filter) Response(_ context.Context, ex *filters.Exchange) error {
	st := f.state(ex.Session)
	e, ok := st.respond(ex)
	if !ok {
		return nil // the Command side did not see it
	}
	cmd, out, resp := ex.Command, ex.Out, ex.Response
	st.learn(out, resp, e.pre)
	if ex.Body == nil {
		f.records(st, ex, e, resp, nil)
		return nil
	}
	t := &tap{r: ex.Body, f: f, start: e.start}
	t.cmd = f.commandRecord(st, ex, e.seq, e.start, resp, nil)
	if resp.IsOK() && out.Verb == cmd.Verb {
		switch cmd.Verb {
		case "RETR", "TOP":
			msg, _ := parseMsg(cmd.Arg(0))
			uid, _ := st.uid(msg)
			t.retrieving = true
			t.retrieve = retrieveRecord{
				header: st.header(EventRetrieve, e.start),
				Verb:   cmd.Verb, Msg: msg, UIDL: uid,
			}
			if cmd.Verb == "TOP" {
				if n, err := strconv.Atoi(cmd.Arg(1)); err == nil {
					t.retrieve.Lines = &n
				}
			}
			t.msgid.init()
		case "UIDL":
			if len(out.Args) == 0 {
				t.uidl = newUIDLScanner(st.storeUID)
			}
		}
	}
	st.attach(ex, t)
	ex.Body = t
	return nil
}

// Finish ends the records of ex. An exchange whose answer the Response
// side never saw (it failed first: ex.Err) gets its command record now;
// one whose body the session did not read to its end gets its records
// with ex.Err or errNotRead. A login attempt gets its auth record, with
// the login as the session recorded it. A message the scanner looked at
// gets its scan record from ex.Verdict, whatever the filter's place in
// the chain. It implements filters.Finisher.
func (f *Filter) Finish(ex *filters.Exchange) {
	st := f.state(ex.Session)
	e, stale, found := st.finish(ex)
	wrote := len(stale) > 0 // records written here go out at once, not with a burst
	for _, o := range stale {
		f.abandon(st, o)
	}
	if found {
		resp := ex.Response
		switch {
		case e.tap != nil:
			cause := ex.Err
			if cause == nil {
				cause = errNotRead
			}
			wrote = e.tap.finish(cause) || wrote // nothing when the body ended already
		case !e.responded:
			err := ex.Err
			switch {
			case err != nil:
				resp = parser.ErrorResponse(err)
			case resp.Status == 0:
				err = errNoAnswer
				resp = parser.ErrorResponse(err)
			}
			if isListing(ex.Command) {
				st.setListed(false) // it taught nothing
			}
			f.records(st, ex, e, resp, err)
			wrote = true
		}
		if isLogin(ex.Command) && (resp.Status == parser.StatusOK || resp.Status == parser.StatusErr) {
			f.recordAuth(st, ex, resp)
		}
	}
	if ex.Verdict != nil {
		f.recordVerdict(st, ex)
	}
	if wrote {
		f.Flush(ex.Session)
	}
}

// abandon finishes the records of an exchange that had no Finish.
func (f *Filter) abandon(st *session, e inflight) {
	switch {
	case e.tap != nil:
		e.tap.finish(errNotRead)
	case !e.responded:
		f.records(st, e.ex, e, parser.ErrorResponse(errNoAnswer), errNoAnswer)
	}
}

// records writes the records of an exchange without a body: its command
// record, then, for an answer +OK to the client's own command, the delete
// or commit record. err is why the exchange failed, if it did.
func (f *Filter) records(st *session, ex *filters.Exchange, e inflight, resp parser.Response, err error) {
	rec := f.commandRecord(st, ex, e.seq, e.start, resp, err)
	rec.Complete = true
	f.recordCommand(&rec)
	cmd := ex.Command
	if err != nil || !resp.IsOK() || ex.Out.Verb != cmd.Verb {
		return
	}
	switch {
	case cmd.Verb == "DELE":
		if msg, ok := parseMsg(cmd.Arg(0)); ok {
			st.mark(msg)
			u, _ := st.uid(msg)
			f.recordLater(&deleteRecord{header: st.header(EventDelete, time.Now()), Msg: msg, UIDL: u})
		}
	case cmd.Verb == "RSET":
		st.resetMarks()
	case cmd.Verb == "QUIT" && e.pre == filters.Transaction:
		msgs, count, truncated := st.marked()
		f.recordLater(&commitRecord{
			header: st.header(EventCommit, time.Now()),
			Count:  count, Msgs: msgs, Truncated: truncated,
		})
	}
}

// learn teaches the cache what an answer says about unique-ids: the +OK
// to "UIDL n" names one, and a UIDL listing answered -ERR in the
// TRANSACTION state means the backend has none. (The +OK listing itself
// is read as it streams past, by tap.)
func (st *session) learn(out parser.Command, resp parser.Response, pre filters.State) {
	if out.Verb != "UIDL" {
		return
	}
	switch {
	case len(out.Args) == 1 && resp.IsOK():
		if n, u, ok := parseUIDLLine(resp.Text); ok && out.Arg(0) == strconv.Itoa(n) {
			st.storeUID(n, u)
		}
	case len(out.Args) == 0 && resp.Status == parser.StatusErr && pre == filters.Transaction:
		st.setUnsupported()
	}
}

// commandRecord builds the command record of ex; for an exchange with a
// body the tap completes it.
func (f *Filter) commandRecord(st *session, ex *filters.Exchange, seq int64, start time.Time, resp parser.Response, err error) commandRecord {
	now := time.Now()
	cmd := ex.Command
	rec := commandRecord{
		header:     st.header(EventCommand, now),
		Seq:        seq,
		Verb:       cmd.Verb,
		Args:       redactedArgs(cmd),
		Status:     resp.Status.String(),
		Code:       resp.Code,
		DurationUS: now.Sub(start).Microseconds(),
	}
	if !sameWire(ex.Out, cmd) {
		rec.Out = ex.Out.Redacted()
	}
	if err != nil {
		rec.Error = err.Error()
	}
	return rec
}

// recordAuth writes the auth record of a completed login attempt, with
// the login the session recorded; the user a filter learnt where the
// session could not see it (ex.User, CRAM-MD5) stands in for an empty
// login name. The password is never part of it.
func (f *Filter) recordAuth(st *session, ex *filters.Exchange, resp parser.Response) {
	rec := authRecord{
		header: st.header(EventAuth, time.Now()),
		Result: "fail",
		Code:   resp.Code,
	}
	if resp.IsOK() {
		rec.Result = "ok"
	}
	if s := ex.Session; s != nil {
		l := s.Login
		rec.ClientUser, rec.BackendUser = l.User, l.BackendUser
		rec.Mechanism, rec.Backend = l.Mechanism, l.Backend
	}
	if rec.ClientUser == "" {
		rec.ClientUser = ex.User
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
// them, so that PASS, APOP and AUTH secrets are masked. Commands that
// carry no secret take a path that allocates nothing for one argument.
func redactedArgs(cmd parser.Command) string {
	switch {
	case len(cmd.Args) == 0:
		return ""
	case strings.EqualFold(cmd.Verb, "PASS"), strings.EqualFold(cmd.Verb, "APOP"), strings.EqualFold(cmd.Verb, "AUTH"):
		r := strings.TrimPrefix(cmd.Redacted(), cmd.Verb)
		return strings.TrimPrefix(r, " ")
	}
	return strings.Join(cmd.Args, " ")
}

// sameWire reports whether a and b are sent as the same line.
func sameWire(a, b parser.Command) bool {
	if a.Verb == b.Verb && slices.Equal(a.Args, b.Args) {
		return true
	}
	return a.String() == b.String()
}
