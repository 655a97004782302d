package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/proxy"
)

// Proxy is what the admin interface acts on; *proxy.Server implements it.
type Proxy interface {
	Snapshot() []proxy.SessionInfo
	Kick(m proxy.Match) int
	Block(b proxy.Block)
	Blocks() []proxy.Block
}

var _ Proxy = (*proxy.Server)(nil)

// Recorder writes an admin action to every audit trail of the running
// configuration. main supplies it; it may be nil (no audit filter).
type Recorder func(a audit.AdminAction)

// Server serves the admin API. Create it with Start; Close stops it.
type Server struct {
	proxy  Proxy
	record Recorder
	log    hclog.Logger
	token  atomic.Pointer[[sha256.Size]byte] // SHA-256 of the TCP token; nil: TCP refuses everything
	socket string
	https  []*http.Server
	lns    []net.Listener
}

// Start binds the socket (and the TCP address, if any) of opts and
// serves the API in the background. A stale socket file left by a
// process that died is replaced; a socket another popgate serves is not.
func Start(opts Options, p Proxy, rec Recorder, logger hclog.Logger) (*Server, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{proxy: p, record: rec, log: logger, socket: opts.Socket}
	s.SetToken(opts.Token)
	uln, err := listenUnix(opts.Socket)
	if err != nil {
		return nil, err
	}
	s.serve(uln, "unix")
	logger.Info("admin interface listening", "socket", opts.Socket)
	if opts.Address != "" {
		tln, err := net.Listen("tcp", opts.Address)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("admin: address %s: %w", opts.Address, err)
		}
		s.serve(tln, "tcp")
		logger.Info("admin interface listening", "address", tln.Addr().String())
	}
	return s, nil
}

// SetToken replaces the token TCP requests must carry (on reload).
func (s *Server) SetToken(token string) {
	if token == "" {
		s.token.Store(nil)
		return
	}
	sum := sha256.Sum256([]byte(token))
	s.token.Store(&sum)
}

// Addr returns the bound TCP address, or nil without one.
func (s *Server) Addr() net.Addr {
	if len(s.lns) < 2 {
		return nil
	}
	return s.lns[1].Addr()
}

// Close stops serving and removes the socket file.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	var errs []error
	for _, ln := range s.lns {
		ln.Close() // Serve may not have taken it yet: Shutdown would miss it
	}
	for _, h := range s.https {
		if err := h.Shutdown(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// listenUnix binds a unix socket at path with mode 0600, creating its
// directory (mode 0700) if needed.
func listenUnix(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("admin: socket directory: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("admin: socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("admin: socket %s: another process serves it", path)
		}
		os.Remove(path) // stale: its process died
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("admin: socket: %w", err)
	}
	// The socket was created with the process's umask (0077 under the
	// shipped unit); without write permission nobody else could connect
	// in between anyway.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("admin: socket: %w", err)
	}
	return ln, nil
}

// serve runs the API on ln; on "tcp" every request needs the token.
func (s *Server) serve(ln net.Listener, kind string) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/sessions", s.sessions)
	mux.HandleFunc("POST /v1/kick", s.kick)
	mux.HandleFunc("GET /v1/blocks", s.blocks)
	var h http.Handler = mux
	if kind == "tcp" {
		h = s.requireToken(mux)
	}
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          s.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(ctx, viaKey{}, via(kind, c))
		},
	}
	s.https = append(s.https, hs)
	s.lns = append(s.lns, ln)
	go hs.Serve(ln)
}

type viaKey struct{}

// via names the channel a request came on, for the audit trail.
func via(kind string, c net.Conn) string {
	if kind == "tcp" {
		return "tcp " + c.RemoteAddr().String()
	}
	return "unix"
}

// requireToken refuses a request without the right bearer token with 401.
// The token is hashed and compared in constant time; it is never logged.
func (s *Server) requireToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := s.token.Load()
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(got))
		if want == nil || !ok || subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
			s.log.Warn("admin request refused: wrong or missing token", "peer", r.RemoteAddr, "path", r.URL.Path)
			w.Header().Set("WWW-Authenticate", `Bearer realm="popgate admin"`)
			writeError(w, http.StatusUnauthorized, "wrong or missing token")
			return
		}
		next.ServeHTTP(w, r)
	})
}

// SessionsResponse is the answer of GET /v1/sessions.
type SessionsResponse struct {
	Sessions []proxy.SessionInfo `json:"sessions"`
}

// KickRequest is the body of POST /v1/kick. Exactly one of User, Addr and
// ID selects the sessions; Block, a Go duration ("1h30m"), also blocks
// the user or address for that long (for an ID: the session's login name
// after rewriting, or its address before login).
type KickRequest struct {
	User  string `json:"user,omitempty"`
	Addr  string `json:"addr,omitempty"`
	ID    string `json:"id,omitempty"`
	Block string `json:"block,omitempty"`
}

// KickResponse is the answer of POST /v1/kick.
type KickResponse struct {
	Kicked int           `json:"kicked"`
	Blocks []proxy.Block `json:"blocks,omitempty"` // the blocks this request added
}

// BlocksResponse is the answer of GET /v1/blocks.
type BlocksResponse struct {
	Blocks []proxy.Block `json:"blocks"`
}

// ErrorResponse is the body of every answer that is not 200.
type ErrorResponse struct {
	Error string `json:"error"`
}

func (s *Server) sessions(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	m, err := ParseMatch(q.Get("user"), q.Get("addr"), q.Get("id"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	m.Backend = q.Get("backend")
	out := SessionsResponse{Sessions: []proxy.SessionInfo{}}
	for _, si := range s.proxy.Snapshot() {
		if m.Matches(si) {
			out.Sessions = append(out.Sessions, si)
		}
	}
	writeJSON(w, out)
}

func (s *Server) blocks(w http.ResponseWriter, _ *http.Request) {
	out := BlocksResponse{Blocks: s.proxy.Blocks()}
	if out.Blocks == nil {
		out.Blocks = []proxy.Block{}
	}
	writeJSON(w, out)
}

func (s *Server) kick(w http.ResponseWriter, r *http.Request) {
	var req KickRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 4096))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return
	}
	n := 0
	for _, v := range []string{req.User, req.Addr, req.ID} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		writeError(w, http.StatusBadRequest, "give exactly one of user, addr and id")
		return
	}
	m, err := ParseMatch(req.User, req.Addr, req.ID)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	var d time.Duration
	if req.Block != "" {
		if d, err = time.ParseDuration(req.Block); err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("block: %q is not a positive duration", req.Block))
			return
		}
	}
	via, _ := r.Context().Value(viaKey{}).(string)
	var out KickResponse
	if d > 0 {
		// Blocked first, so a kicked client cannot log in again in between.
		out.Blocks = s.blocksFor(m, time.Now().Add(d))
		for _, b := range out.Blocks {
			s.proxy.Block(b)
			s.log.Warn("admin: blocked", "user", b.User, "addr", prefixString(b.Addr), "until", b.Until.Format(time.RFC3339), "via", via)
			s.audit(audit.AdminAction{Action: "block", User: b.User, Addr: prefixString(b.Addr), Session: m.ID, Until: b.Until, Via: via})
		}
	}
	out.Kicked = s.proxy.Kick(m)
	s.log.Warn("admin: kicked", "user", m.User, "addr", prefixString(m.Addr), "session", m.ID, "sessions", out.Kicked, "via", via)
	s.audit(audit.AdminAction{Action: "kick", User: m.User, Addr: prefixString(m.Addr), Session: m.ID, Sessions: out.Kicked, Via: via})
	writeJSON(w, out)
}

// blocksFor returns the blocks a kick --block of m adds: its user or
// address, or for a session id that session's login name after rewriting
// (its address before login).
func (s *Server) blocksFor(m proxy.Match, until time.Time) []proxy.Block {
	switch {
	case m.User != "":
		return []proxy.Block{{User: m.User, Until: until}}
	case m.Addr.IsValid():
		return []proxy.Block{{Addr: m.Addr, Until: until}}
	}
	for _, si := range s.proxy.Snapshot() {
		if si.ID != m.ID {
			continue
		}
		if si.BackendUser != "" {
			return []proxy.Block{{User: si.BackendUser, Until: until}}
		}
		ip := si.Client.Addr()
		return []proxy.Block{{Addr: netip.PrefixFrom(ip, ip.BitLen()), Until: until}}
	}
	return nil
}

func (s *Server) audit(a audit.AdminAction) {
	if s.record != nil {
		s.record(a)
	}
}

// ParseMatch builds the proxy.Match of a user, an address or prefix
// ("192.0.2.7", "2001:db8::/32"), and a session id; "" leaves a field
// unset.
func ParseMatch(user, addr, id string) (proxy.Match, error) {
	m := proxy.Match{User: user, ID: id}
	if addr != "" {
		p, err := ParsePrefix(addr)
		if err != nil {
			return m, err
		}
		m.Addr = p
	}
	return m, nil
}

// ParsePrefix parses an address ("192.0.2.7", a /32) or a prefix
// ("192.0.2.0/24").
func ParsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("addr: %q is not an address or prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("addr: %q is not an address or prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func prefixString(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	if p.Bits() == p.Addr().BitLen() {
		return p.Addr().String()
	}
	return p.String()
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(ErrorResponse{Error: msg})
}
