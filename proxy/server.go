package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
)

// Server accepts clients on the configured listeners and runs a session
// for each. Its zero value is not usable; call New.
type Server struct {
	logger hclog.Logger
	cfg    atomic.Pointer[Config]

	mu        sync.Mutex
	listeners map[string]*boundListener // by listener name
	sessions  map[*session]struct{}
	perCfg    map[*Config]int // open sessions per configuration, for Config.Retired
	perIP     map[ipKey]int   // sessions per listener and client address
	perLst    map[string]int  // sessions per listener
	closing   bool
	sessWG    sync.WaitGroup
	acceptWG  sync.WaitGroup
	nextID    atomic.Uint64
	idPrefix  string
	throttle  *throttle
	blocks    blockList  // block.go
	hosts     hostAddrs  // the host's addresses, for intercept deny-lists (destination.go)
	pools     *poolSet   // every backend's servers and their health, across reloads (pool.go)
	state     LoginState // the throttle's counters and the users' sessions (loginstate.go); set before Start
}

type boundListener struct {
	name      string
	addr      string
	intercept InterceptMode // a change of mode rebinds (IP_TRANSPARENT is set at bind)
	ln        net.Listener
	done      chan struct{}
}

// New returns a Server that logs to logger.
func New(logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{
		logger:    logger,
		listeners: make(map[string]*boundListener),
		sessions:  make(map[*session]struct{}),
		perCfg:    make(map[*Config]int),
		perIP:     make(map[ipKey]int),
		perLst:    make(map[string]int),
		idPrefix:  fmt.Sprintf("%x", time.Now().UnixNano()&0xffffff),
		throttle:  newThrottle(),
		pools:     newPoolSet(logger),
	}
	s.SetLoginState(nil)
	return s
}

// Start binds every listener of cfg and serves them in the background.
// On error nothing stays bound.
func (s *Server) Start(cfg *Config) error {
	if err := checkConfig(cfg); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var bound []*boundListener
	for _, l := range cfg.Listeners {
		bl, err := s.bind(l)
		if err != nil {
			for _, b := range bound {
				b.ln.Close()
			}
			return err
		}
		bound = append(bound, bl)
	}
	s.cfg.Store(cfg)
	s.pools.update(cfg)
	for _, bl := range bound {
		s.serve(bl)
	}
	return nil
}

// Reload switches to cfg for new sessions: listeners that are new, or whose
// address changed, are bound; listeners no longer configured stop accepting.
// Open sessions keep the configuration they started with. On error the old
// configuration stays in force.
func (s *Server) Reload(cfg *Config) error {
	if err := checkConfig(cfg); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return errors.New("proxy: server is shutting down")
	}
	want := make(map[string]Listener)
	for _, l := range cfg.Listeners {
		want[l.Name] = l
	}
	// Bind the new ones first so a failure changes nothing.
	var added []*boundListener
	for _, l := range cfg.Listeners {
		if old, ok := s.listeners[l.Name]; ok && old.addr == l.Address && old.intercept == l.Intercept {
			continue
		}
		bl, err := s.bind(l)
		if err != nil {
			for _, b := range added {
				b.ln.Close()
			}
			return err
		}
		added = append(added, bl)
	}
	s.pools.update(cfg)
	if old := s.cfg.Swap(cfg); old != cfg && s.perCfg[old] == 0 {
		defer retire(old) // after s.mu is released
	}
	for name, bl := range s.listeners {
		if _, ok := want[name]; !ok {
			s.logger.Info("listener removed", "listener", name, "address", bl.addr)
			bl.ln.Close()
			delete(s.listeners, name)
		}
	}
	for _, bl := range added {
		if old, ok := s.listeners[bl.name]; ok {
			s.logger.Info("listener moved", "listener", bl.name, "from", old.addr, "to", bl.addr)
			old.ln.Close()
		}
		s.serve(bl)
	}
	return nil
}

func (s *Server) bind(l Listener) (*boundListener, error) {
	ln, err := listen(l) // intercept.go
	if err != nil {
		return nil, err
	}
	return &boundListener{name: l.Name, addr: l.Address, intercept: l.Intercept, ln: ln, done: make(chan struct{})}, nil
}

// serve starts the accept loop of bl; s.mu is held.
func (s *Server) serve(bl *boundListener) {
	s.listeners[bl.name] = bl
	s.logger.Info("listening", "listener", bl.name, "address", bl.ln.Addr().String())
	s.acceptWG.Add(1)
	go s.acceptLoop(bl)
}

// Addr returns the bound address of the named listener, or nil.
func (s *Server) Addr(name string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if bl, ok := s.listeners[name]; ok {
		return bl.ln.Addr()
	}
	return nil
}

func (s *Server) acceptLoop(bl *boundListener) {
	defer s.acceptWG.Done()
	defer close(bl.done)
	var delay time.Duration
	for {
		conn, err := bl.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Temporary errors (EMFILE and friends): back off, as net/http does.
			if delay == 0 {
				delay = 5 * time.Millisecond
			} else if delay *= 2; delay > time.Second {
				delay = time.Second
			}
			s.logger.Warn("accept failed; backing off", "listener", bl.name, "error", err, "delay", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		s.startSession(bl.name, conn)
	}
}

func (c *Config) listener(name string) *Listener {
	for i := range c.Listeners {
		if c.Listeners[i].Name == name {
			return &c.Listeners[i]
		}
	}
	return nil
}

// startSession starts a session of the configuration in force on the
// listener called name. The configuration is read under s.mu, where Reload
// swaps it, so a session is never counted against a configuration already
// retired.
func (s *Server) startSession(name string, conn net.Conn) {
	s.mu.Lock()
	cfg := s.cfg.Load()
	lst := cfg.listener(name)
	if s.closing || lst == nil {
		s.mu.Unlock()
		conn.Close()
		return
	}
	limits := lst.Limits.withDefaults()
	if limits.MaxSessions > 0 && s.perLst[lst.Name] >= limits.MaxSessions {
		s.mu.Unlock()
		s.refuse(cfg, lst, conn, "max-sessions", "too many connections, try again later")
		return
	}
	sess := newSession(s, cfg, lst, conn, fmt.Sprintf("%s-%d", s.idPrefix, s.nextID.Add(1)))
	s.sessions[sess] = struct{}{}
	s.perLst[lst.Name]++
	s.perCfg[cfg]++
	s.sessWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.sessWG.Done()
		sess.run()
		s.mu.Lock()
		delete(s.sessions, sess)
		if s.perLst[lst.Name]--; s.perLst[lst.Name] <= 0 {
			delete(s.perLst, lst.Name)
		}
		last := false
		if s.perCfg[cfg]--; s.perCfg[cfg] <= 0 {
			delete(s.perCfg, cfg)
			last = s.cfg.Load() != cfg
		}
		s.mu.Unlock()
		if last {
			retire(cfg)
		}
	}()
}

// retire calls cfg.Retired, if set; s.mu must not be held.
func retire(cfg *Config) {
	if cfg.Retired != nil {
		cfg.Retired()
	}
}

// ipKey counts sessions per listener and client network: an IPv4 /32 or
// an IPv6 prefix of Limits.IPv6Prefix bits.
type ipKey struct {
	listener string
	net      netip.Prefix
}

// acquireIP counts a session against its client address on its listener;
// false means the per-address limit is reached.
func (s *Server) acquireIP(k ipKey, limit int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.perIP[k] >= limit {
		return false
	}
	s.perIP[k]++
	return true
}

func (s *Server) releaseIP(k ipKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.perIP[k]--; s.perIP[k] <= 0 {
		delete(s.perIP, k)
	}
}

// refuse answers a connection that is over a limit and closes it.
func (s *Server) refuse(cfg *Config, lst *Listener, conn net.Conn, reason, text string) {
	if cfg.Hooks.Throttled != nil {
		cfg.Hooks.Throttled(lst.Name, reason)
	}
	s.logger.Warn("connection refused", "listener", lst.Name, "client", conn.RemoteAddr().String(), "reason", reason)
	go func() {
		conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if lst.TLS != TLSImplicit {
			fmt.Fprintf(conn, "-ERR [SYS/TEMP] %s\r\n", text)
		}
		conn.Close()
	}()
}

// Shutdown stops accepting, lets open sessions finish until ctx is done,
// then closes the rest without QUIT to their backends, so nothing the user
// did not QUIT on is deleted.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	for _, bl := range s.listeners {
		bl.ln.Close()
	}
	s.mu.Unlock()
	s.pools.close()
	s.acceptWG.Wait()

	done := make(chan struct{})
	go func() { s.sessWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	n := len(s.sessions)
	for sess := range s.sessions {
		sess.abort("shutdown")
	}
	s.mu.Unlock()
	s.logger.Warn("shutdown deadline reached; closed open sessions without QUIT", "sessions", n)
	<-done
	return ctx.Err()
}

// Sessions returns the number of open sessions.
func (s *Server) Sessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func checkConfig(cfg *Config) error {
	if cfg == nil || len(cfg.Listeners) == 0 {
		return errors.New("proxy: no listeners configured")
	}
	seen := map[string]bool{}
	for i := range cfg.Listeners {
		l := &cfg.Listeners[i]
		if l.ch == nil {
			l.ch = filters.NewChain(l.Filters...)
		}
		if seen[l.Name] {
			return fmt.Errorf("proxy: duplicate listener %q", l.Name)
		}
		seen[l.Name] = true
		if _, ok := cfg.Backends[l.Backend]; !ok {
			return fmt.Errorf("proxy: listener %q: unknown backend %q", l.Name, l.Backend)
		}
		if err := checkInterceptTLS(l); err != nil { // intercept_stls.go
			return err
		}
		if l.TLS != TLSNone && cfg.ServerTLS == nil && l.TLSConfig == nil && !(l.Intercept != InterceptNone && l.InterceptSTLS == InterceptSTLSInspect) {
			return fmt.Errorf("proxy: listener %q needs TLS but no server TLS configuration is set", l.Name)
		}
	}
	return nil
}
