package audit

import (
	"time"
)

// EventAdmin is the event of a record of an administrator's action
// (popgate kick, kick --block), written by RecordAdmin.
const EventAdmin = "admin"

// AdminAction is what an administrator did through the admin interface.
type AdminAction struct {
	// Action is "kick" or "block".
	Action string
	// User, Addr and Session are what the action selected: a login name,
	// a client address or prefix, a session id; "" when not used.
	User    string
	Addr    string
	Session string
	// Until is when a block expires; zero for a kick.
	Until time.Time
	// Sessions is how many sessions a kick closed.
	Sessions int
	// Via names the admin channel: "unix" for the socket, or "tcp" and
	// the peer's address.
	Via string
}

// adminRecord is the record of an AdminAction. Its header carries no
// session, client or listener: it is no session's record.
type adminRecord struct {
	header
	Action   string `json:"action"`
	User     string `json:"user"`
	Addr     string `json:"addr"`
	Target   string `json:"target_session"`
	Until    string `json:"until"`
	Sessions int    `json:"sessions"`
	Via      string `json:"via"`
}

var _ jsonRecord = (*adminRecord)(nil)

func (r *adminRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "action", r.Action)
	b = appendStr(b, "user", r.User)
	b = appendStr(b, "addr", r.Addr)
	b = appendStr(b, "target_session", r.Target)
	b = appendStr(b, "until", r.Until)
	b = appendInt(b, "sessions", int64(r.Sessions))
	b = appendStr(b, "via", r.Via)
	return append(b, '}')
}

// newAdminRecord builds the record of a at now.
func newAdminRecord(a AdminAction, now time.Time) *adminRecord {
	rec := &adminRecord{header: newHeader(EventAdmin, nil, now), Action: a.Action, User: a.User,
		Addr: a.Addr, Target: a.Session, Sessions: a.Sessions, Via: a.Via}
	if !a.Until.IsZero() {
		rec.Until = a.Until.UTC().Format(time.RFC3339)
	}
	return rec
}

// RecordAdmin writes the record of an administrator's action to the
// trail, chained like every other record. The admin interface calls it
// for every audit filter of the running configuration, so each trail
// shows who was thrown out or shut out, and when. A closed filter loses
// the record like any other (see Close).
func (f *Filter) RecordAdmin(a AdminAction) {
	rec := newAdminRecord(a, time.Now())
	rec.Instance = f.cfg.Instance
	f.record(rec)
}
