package proxy

import (
	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// argRule is how many arguments a command takes and whether they are
// message numbers. Checking them here keeps the framing decision
// (parser.HasBody depends on the argument count) in step with what the
// backend will do with the command.
type argRule struct {
	min, max int
	numeric  bool
}

var authorizationCommands = map[string]argRule{
	"USER": {1, 1, false},
	"PASS": {1, 1, false},
	"APOP": {2, 2, false},
	"AUTH": {0, 2, false},
	"CAPA": {0, 0, false},
	"QUIT": {0, 0, false},
	"STLS": {0, 0, false},
}

var transactionCommands = map[string]argRule{
	"STAT": {0, 0, false},
	"LIST": {0, 1, true},
	"UIDL": {0, 1, true},
	"RETR": {1, 1, true},
	"DELE": {1, 1, true},
	"TOP":  {2, 2, true},
	"NOOP": {0, 0, false},
	"RSET": {0, 0, false},
	"QUIT": {0, 0, false},
	"CAPA": {0, 0, false},
}

// ReachesFilters reports whether the session passes a command with this
// keyword (in upper case) to the filter chain, in some state. It does not
// for STLS, which the session performs itself (RFC 2595 section 4), nor
// for a keyword it does not know, which it answers "-ERR unknown command".
// main's validation uses it so that a filter rule for a command no filter
// ever sees (the policy filter's deny) is refused or warned about rather
// than silently never consulted.
func ReachesFilters(verb string) bool {
	_, inAuth := authorizationCommands[verb]
	_, inTrans := transactionCommands[verb]
	return (inAuth || inTrans) && verb != "STLS"
}

// check refuses commands that are unknown, not allowed in the current
// state, or malformed. It returns a response to send instead, or nil.
func (s *session) check(cmd parser.Command) *parser.Response {
	state := s.info.State()
	rules := authorizationCommands
	if state == filters.Transaction {
		rules = transactionCommands
	}
	rule, ok := rules[cmd.Verb]
	if !ok {
		_, inAuth := authorizationCommands[cmd.Verb]
		_, inTrans := transactionCommands[cmd.Verb]
		if inAuth || inTrans {
			return refusal("", cmd.Verb+" not allowed in the "+state.String()+" state")
		}
		return refusal("", "unknown command")
	}
	if n := len(cmd.Args); n < rule.min || n > rule.max {
		return refusal("", "wrong number of arguments to "+cmd.Verb)
	}
	if rule.numeric {
		for _, a := range cmd.Args {
			if _, ok := parser.Count(a); !ok {
				return refusal("", "invalid message number")
			}
		}
	}
	if state == filters.Authorization && s.needTLS() {
		switch cmd.Verb {
		case "USER", "PASS", "APOP", "AUTH":
			return refusal(parser.CodeAuth, "plaintext authentication disallowed; use STLS first")
		}
	}
	if state == filters.Authorization && cmd.Verb == "PASS" {
		switch {
		case s.lst.Connect == ConnectAfterAuth && !s.auth.userPending:
			// RFC 1939: PASS follows a USER; after a failed PASS the
			// client starts again with USER.
			return refusal("", "send USER first")
		case s.lst.Connect == ConnectOnAccept && s.auth.stlsDone && s.info.Login.User == "":
			// RFC 2595 section 4: a USER given before STLS is forgotten.
			// The backend saw it, so popgate refuses PASS until a new USER.
			return refusal("", "send USER first")
		}
	}
	return nil
}

// needTLS reports whether logins must wait for STLS.
func (s *session) needTLS() bool {
	return s.lst.RequireTLS && s.info.TLS == nil
}

func refusal(code, text string) *parser.Response {
	r := parser.Err(code, text)
	return &r
}
