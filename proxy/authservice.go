package proxy

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/popgate/popgate/authhttp"
	"github.com/popgate/popgate/parser"
)

// AuthService is an nginx-compatible auth_http service a listener asks
// about every login (the auth_http block). It is immutable once the
// server has the Config; Client is safe for concurrent use.
type AuthService struct {
	Name   string
	Client *authhttp.Client
	// AllowedBackends are the servers, not in any backend block, that the
	// service may send sessions to; they are dialled with the settings of
	// the listener's backend. Empty: only servers of backend blocks.
	AllowedBackends []DestinationRule
	// VerifiesPassword says the service checks passwords: a login it
	// accepts counts as proven by a local verifier, so a master-user
	// backend may act for it. Otherwise the proof is the backend's.
	VerifiesPassword bool
}

// target is where a login goes: backend b, through its own choice of
// server when addr is "", or pinned to addr.
type target struct {
	b    *Backend
	addr string
}

// errServiceRoute is a refusal of the server a service named.
var errServiceRoute = errors.New("auth_http answer names a server popgate may not use")

// authSysTemp is the answer to a service that is down, slow or malformed,
// or that names a server popgate refuses: never [AUTH].
func authSysTemp() parser.Response {
	return parser.Err(parser.CodeSysTemp, "authentication service unavailable, try again later")
}

// askService sends the pending login to the listener's auth service and
// applies its answer: Auth-User and Auth-Pass replace the backend login,
// Auth-Server and Auth-Port choose the target. ok is false when the login
// ends here, with resp as its answer. verified is the service's proof.
func (s *session) askService(ctx context.Context) (t target, verified bool, resp parser.Response, ok bool) {
	svc := s.lst.Auth
	l := &s.info.Login
	s.auth.attempts++
	req := &authhttp.Request{
		Method:   authhttp.MethodPlain,
		User:     l.User,
		Pass:     l.Password,
		Attempt:  s.auth.attempts,
		ClientIP: s.clientIP(),
		TLS:      s.info.TLS != nil,
	}
	if s.auth.salt != "" {
		req.Method, req.Salt = authhttp.Method(l.Mechanism), s.auth.salt
	}
	start := time.Now()
	a, err := svc.Client.Authenticate(ctx, req)
	req.Pass = ""
	if h := s.cfg.Hooks.AuthService; h != nil {
		result := "error"
		switch {
		case err != nil:
		case a.Cached:
			result = "cached"
		case a.OK:
			result = "ok"
		default:
			result = "refused"
		}
		h(svc.Name, result, time.Since(start))
	}
	if err != nil {
		s.log.Warn("auth service failed", "auth", svc.Name, "user", l.User, "error", err)
		return target{}, false, authSysTemp(), false
	}
	s.log.Debug("auth service answered", "auth", svc.Name, "user", l.User, "ok", a.OK,
		"cached", a.Cached, "took", time.Since(start).Round(time.Microsecond))
	if !a.OK {
		s.auth.wait = a.Wait
		s.log.Info("auth service refused the login", "auth", svc.Name, "user", l.User, "status", a.Status)
		return target{}, false, serviceRefusal(a.Status), false
	}
	if a.User != "" {
		l.BackendUser = a.User
	}
	if a.HasPass {
		l.Password = a.Pass
	}
	t, err = s.serviceTarget(a.Server, a.Port)
	if err != nil {
		s.log.Error("auth service answer refused", "auth", svc.Name, "user", l.User, "error", err)
		return target{}, false, authSysTemp(), false
	}
	return t, svc.VerifiesPassword, parser.Response{}, true
}

// serviceTarget resolves Auth-Server and Auth-Port. No server: the
// listener's routing (route map, route blocks, the listener's backend).
// The name of a backend block (a popgate extension): that backend, which
// picks its server. An IP address whose address:port is a server of a
// backend block: that block pinned to it. Another IP address in
// AllowedBackends: the listener's backend's settings pinned to it.
// Anything else is refused, so that a compromised service cannot send
// sessions anywhere.
func (s *session) serviceTarget(server string, port int) (target, error) {
	if server == "" {
		name := s.routeName(s.info.Login.BackendUser)
		b, ok := s.cfg.Backends[name]
		if !ok {
			return target{}, fmt.Errorf("route names an unknown backend %q", name)
		}
		return target{b: b}, nil
	}
	if b, ok := s.cfg.Backends[server]; ok {
		return target{b: b}, nil
	}
	ip, err := netip.ParseAddr(server)
	if err != nil || ip.Zone() != "" {
		return target{}, fmt.Errorf("%w: Auth-Server %q is neither a backend name nor an IP address", errServiceRoute, server)
	}
	if port == 0 {
		return target{}, fmt.Errorf("%w: Auth-Server %s without Auth-Port", errServiceRoute, server)
	}
	dst := netip.AddrPortFrom(ip.Unmap(), uint16(port))
	if b := s.backendServing(dst); b != nil {
		return target{b: b, addr: dst.String()}, nil
	}
	if r, ok := matchAny(s.lst.Auth.AllowedBackends, dst); ok {
		b, ok := s.cfg.Backends[s.lst.Backend]
		if !ok {
			return target{}, fmt.Errorf("listener backend %q unknown", s.lst.Backend)
		}
		s.log.Debug("auth service server allowed", "server", dst.String(), "rule", r.String())
		return target{b: b, addr: dst.String()}, nil
	}
	return target{}, fmt.Errorf("%w: %s is in no backend block and not in allowed_backends", errServiceRoute, dst)
}

// backendServing returns the backend block one of whose servers is dst,
// the first by name, or nil. A server written as a host name matches only
// when it is written as dst is.
func (s *session) backendServing(dst netip.AddrPort) *Backend {
	names := make([]string, 0, len(s.cfg.Backends))
	for name := range s.cfg.Backends {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		b := s.cfg.Backends[name]
		if b.OriginalDestination {
			continue
		}
		for _, addr := range b.servers() {
			if ap, err := netip.ParseAddrPort(addr); err == nil && netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) == dst || addr == dst.String() {
				return b
			}
		}
	}
	return nil
}

// routeName is the backend the listener's routing picks for a login name:
// the Router's choice, else the listener's backend.
func (s *session) routeName(login string) string {
	if s.cfg.Router != nil {
		if n := s.cfg.Router.Route(login); n != "" {
			return n
		}
	}
	return s.lst.Backend
}

// serviceRefusal turns a refusal's Auth-Status text into the client's
// answer: "-ERR [AUTH] text", as nginx passes the text on. A text that
// starts with an RFC 3206 code of its own ([IN-USE], [LOGIN-DELAY],
// [SYS/TEMP], [SYS/PERM], [AUTH]) keeps it. Control characters are
// dropped and the text is bounded to 200 octets, cut between characters.
func serviceRefusal(status string) parser.Response {
	text := strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f {
			return -1
		}
		return r
	}, status)
	code := parser.CodeAuth
	for _, c := range []string{parser.CodeInUse, parser.CodeLoginDelay, parser.CodeSysTemp, parser.CodeSysPerm, parser.CodeAuth} {
		if rest, ok := strings.CutPrefix(text, "["+c+"]"); ok {
			code, text = c, rest
			break
		}
	}
	text = strings.TrimSpace(text)
	if len(text) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut-- // never half a character on the wire
		}
		text = strings.TrimSpace(text[:cut])
	}
	if text == "" {
		text = "authentication failed"
	}
	return parser.Err(code, text)
}

// serviceTimestamp makes the greeting's APOP timestamp of a listener that
// has an auth service but no APOP filter: <random.nanotime@host>, unique
// per greeting (RFC 1939 section 7).
func serviceTimestamp() string {
	var b [8]byte
	rand.Read(b[:])
	return fmt.Sprintf("<%d.%d@%s>", binary.BigEndian.Uint64(b[:])>>1, time.Now().UnixNano(), timestampHost)
}

// timestampHost is the host part of serviceTimestamp.
var timestampHost = func() string {
	h, _ := os.Hostname()
	if h == "" || strings.ContainsFunc(h, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-')
	}) {
		return "popgate"
	}
	return h
}()
