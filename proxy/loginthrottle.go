package proxy

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// clientIP is the client's IP address: the one the PROXY header gave, or,
// when the header carried none (LOCAL, or an AF_UNIX address), the address
// of the peer that connected.
func (s *session) clientIP() netip.Addr {
	if ip := addrPort(s.info.ClientAddr).Addr(); ip.IsValid() {
		return ip
	}
	return addrPort(s.tcp.RemoteAddr()).Addr()
}

// clientNet is the network that counts as one client address for
// max_sessions_per_ip and login throttling: the IPv4 address itself, or
// its IPv6 prefix of Limits.IPv6Prefix bits, so that rotating addresses
// within one customer's /64 gains an attacker nothing.
func (s *session) clientNet() netip.Prefix {
	ip := s.clientIP()
	bits := ip.BitLen()
	if ip.Is6() {
		bits = s.limits.IPv6Prefix
	}
	p, err := ip.Prefix(bits)
	if err != nil {
		return netip.Prefix{}
	}
	return p
}

// throttleKeys are the throttle keys of the login in progress: the client
// network, the mailbox actually attacked (the login name after rewriting,
// lower-cased) and, for a name with a realm, its local part, so alice@1,
// alice@2, ... share one counter. Without a user name only the network
// counts: an empty name must not be a key all clients share.
func (s *session) throttleKeys() []string {
	keys := []string{"net:" + s.clientNet().String()}
	user := s.loginName()
	if user == "" {
		return keys
	}
	keys = append(keys, "user:"+user)
	if i := strings.LastIndexByte(user, '@'); i > 0 {
		keys = append(keys, "local:"+user[:i])
	}
	return keys
}

// loginCharge is a login attempt counted as failed before its outcome is
// known; the session's login owner (the exchange holding the AUTHORIZATION
// state) sets and settles it.
type loginCharge struct {
	keys  []string
	delay time.Duration
}

// chargeLogin counts the login in progress as a failure the moment its
// credentials go to a verifier or the backend. A success refunds it
// (settleLogin); a client that hangs up before the answer has still paid
// for its guess.
func (s *session) chargeLogin() {
	if s.auth.charge != nil {
		return
	}
	keys := s.throttleKeys()
	s.auth.charge = &loginCharge{keys: keys, delay: s.srv.throttle.delay(s.srv.state.Fail(keys))}
}

// loginName is the mailbox the login in progress is for: the login name
// after rewriting, lower-cased; "" while no name is known.
func (s *session) loginName() string {
	l := s.info.Login
	user := l.BackendUser
	if user == "" {
		user = l.User
	}
	return strings.ToLower(user)
}

// settleSuccess settles a login the backend accepted, before the session
// enters TRANSACTION, in one call to the LoginState (the second and last
// shared-state round trip of a successful login): the charge is refunded,
// the user's failures are forgotten and, under Limits.MaxSessionsPerUser,
// the session takes a lease on one of the user's sessions. It returns false
// when the user already holds the most sessions allowed: the caller then
// refuses the login with [IN-USE] and drops the backend connection
// without QUIT, so nothing the backend did is committed.
func (s *session) settleSuccess() bool {
	var refund []string
	if c := s.auth.charge; c != nil {
		refund = c.keys
		s.auth.charge = nil
	}
	keys := s.throttleKeys()
	// The user key of the charge names the login as it was before the
	// auth service's Auth-User rewrote it: forget its failures too (not
	// its local part's, which other realms share).
	forget := keys[1:]
	for _, k := range refund {
		if strings.HasPrefix(k, "user:") && !slices.Contains(forget, k) {
			forget = append(forget, k)
		}
	}
	user, limit := s.loginName(), s.limits.MaxSessionsPerUser
	if user == "" || s.auth.lease != nil {
		limit = 0
	}
	lease := SessionLease{User: user, ID: s.info.ID}
	if !s.srv.state.Succeed(refund, forget, lease, limit) {
		s.log.Info("login refused: the user holds the most sessions allowed", "user", user, "max_sessions_per_user", limit)
		if h := s.cfg.Hooks.Throttled; h != nil {
			h(s.lst.Name, "max-sessions-per-user")
		}
		return false
	}
	if limit > 0 {
		s.auth.lease = &lease
	}
	return true
}

// errInUse is the answer to a login over Limits.MaxSessionsPerUser. RFC
// 2449 section 8.1.2: [IN-USE] says the maildrop cannot be opened because
// other sessions hold it, which is what the client must learn (retry
// later, close another client), and it is not an authentication failure.
func errInUse() *parser.Error {
	return parser.NewError(parser.CodeInUse, "too many sessions for this user, try again later", nil)
}

// loginDelay settles the outcome of a login attempt with the throttle and
// returns how long to hold back a failure answer.
func (s *session) loginDelay(x *exchange) time.Duration {
	cmd, resp := x.ex.Command, x.ex.Response
	if s.info.State() == filters.Transaction && !x.alone {
		return 0 // a pipelined exchange: no login in flight
	}
	wait := s.auth.wait // the auth service's Auth-Wait for a refusal
	s.auth.wait = 0
	d := s.settleLogin(x, cmd, resp)
	if resp.Status == parser.StatusErr {
		d = max(d, wait)
	}
	return d
}

// settleLogin is loginDelay without the auth service's Auth-Wait.
func (s *session) settleLogin(x *exchange, cmd parser.Command, resp parser.Response) time.Duration {
	charge := s.auth.charge
	s.auth.charge = nil
	if s.auth.blocked {
		// Refused by an administrator's block, not a guess: the
		// throttle neither counts it nor delays the answer.
		s.auth.blocked = false
		if charge != nil {
			s.srv.state.Refund(charge.keys)
		}
		return 0
	}
	if x.refused || cmd.Verb != "PASS" && cmd.Verb != "APOP" && (cmd.Verb != "AUTH" || len(cmd.Args) == 0) {
		return 0
	}
	if s.info.State() == filters.Transaction {
		// settleSuccess refunded the charge when the login succeeded.
		return 0
	}
	if resp.Status != parser.StatusErr || !isAuthFailure(resp) {
		if charge != nil {
			s.srv.state.Refund(charge.keys) // the server could not take a login: no guess was made
		}
		return 0
	}
	if charge != nil {
		return charge.delay
	}
	// Refused before any credentials went out (a local APOP or CRAM-MD5
	// check, a malformed SASL exchange): count it now.
	return s.srv.throttle.delay(s.srv.state.Fail(s.throttleKeys()))
}
