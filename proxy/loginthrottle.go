package proxy

import (
	"net/netip"
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
	l := s.info.Login
	user := l.BackendUser
	if user == "" {
		user = l.User
	}
	user = strings.ToLower(user)
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
	s.auth.charge = &loginCharge{keys: keys, delay: s.srv.throttle.fail(time.Now(), keys...)}
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
			s.srv.throttle.refund(charge.keys...)
		}
		return 0
	}
	if x.refused || cmd.Verb != "PASS" && cmd.Verb != "APOP" && (cmd.Verb != "AUTH" || len(cmd.Args) == 0) {
		return 0
	}
	if s.info.State() == filters.Transaction {
		if charge != nil {
			s.srv.throttle.refund(charge.keys...)
		}
		s.srv.throttle.succeed(s.throttleKeys()[1:]...)
		return 0
	}
	if resp.Status != parser.StatusErr || !isAuthFailure(resp) {
		if charge != nil {
			s.srv.throttle.refund(charge.keys...) // the server could not take a login: no guess was made
		}
		return 0
	}
	if charge != nil {
		return charge.delay
	}
	// Refused before any credentials went out (a local APOP or CRAM-MD5
	// check, a malformed SASL exchange): count it now.
	return s.srv.throttle.fail(time.Now(), s.throttleKeys()...)
}
