package proxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
)

// HealthOptions tune the health checks of a backend's servers.
type HealthOptions struct {
	// Interval between active checks of each server (connect, greeting,
	// QUIT; never a login); 0 means passive checks only.
	Interval time.Duration
	// FailThreshold is how many consecutive failures take a server down;
	// 0 = DefaultFailThreshold.
	FailThreshold int
	// DownBackoff is how long a server stays down before it is tried
	// again; 0 = DefaultDownBackoff.
	DownBackoff time.Duration
}

// The defaults of HealthOptions.
const (
	DefaultFailThreshold = 3
	DefaultDownBackoff   = 30 * time.Second
)

func (h HealthOptions) withDefaults() HealthOptions {
	if h.FailThreshold <= 0 {
		h.FailThreshold = DefaultFailThreshold
	}
	if h.DownBackoff <= 0 {
		h.DownBackoff = DefaultDownBackoff
	}
	return h
}

// serverState is the health of one server of one backend's pool, and how
// many of this instance's sessions use it. The poolSet owns it; sessions
// and its active checker report to it; its mutex guards the health
// fields. It outlives configurations while the server stays configured.
//
// A server is up until FailThreshold consecutive failures; it is then
// down for DownBackoff, after which one session at a time (or the active
// check) may try it: a success brings it up, a failure keeps it down for
// another backoff. Every change is logged once, here.
type serverState struct {
	backend, addr string
	logger        hclog.Logger
	open          atomic.Int64 // sessions connected or connecting

	mu        sync.Mutex
	opts      HealthOptions // with defaults
	up        bool
	fails     int       // consecutive
	downUntil time.Time // while down: when it may be tried again
	probing   bool      // a session is trying it after its backoff
	failures  uint64    // all failures while configured
	lastErr   string
	pooled    bool           // the backend has servers, not one address
	checker   *healthChecker // nil without active checks
	retired   bool
	now       func() time.Time
}

func newServerState(backend, addr string, logger hclog.Logger) *serverState {
	return &serverState{backend: backend, addr: addr, logger: logger, up: true, now: time.Now,
		opts: HealthOptions{}.withDefaults()}
}

// configure takes b's health options, starting, restarting or stopping the
// active checker as they say. The poolSet calls it under its own lock.
func (st *serverState) configure(b *Backend) {
	st.mu.Lock()
	defer st.mu.Unlock()
	opts := b.Health.withDefaults()
	st.pooled = len(b.Servers) > 0
	if st.checker != nil && opts.Interval != st.opts.Interval {
		st.checker.stop()
		st.checker = nil
	}
	st.opts = opts
	if opts.Interval > 0 && !st.retired {
		if st.checker == nil {
			st.checker = newHealthChecker(st, b)
		} else {
			st.checker.backend.Store(b)
		}
	}
}

// retire stops the active checker: the server left the configuration.
func (st *serverState) retire() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.retired = true
	if st.checker != nil {
		st.checker.stop()
		st.checker = nil
	}
}

// admit reports whether a session may try the server now: it is up, or
// its backoff is over and no other session is probing it (this one then
// is the probe, and must report).
func (st *serverState) admit() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.up {
		return true
	}
	if st.probing || st.now().Before(st.downUntil) {
		return false
	}
	st.probing = true
	return true
}

// abandon gives back a probe admitted but never decided: the session
// ended or ran out of time before it could try the server.
func (st *serverState) abandon() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.probing = false
}

// succeeded records a successful connection or check: the server is up.
func (st *serverState) succeeded(via string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.fails, st.probing = 0, false
	if !st.up {
		st.up = true
		st.logger.Info("backend server up", "backend", st.backend, "server", st.addr, "via", via)
	}
}

// failed records a failed connection or check. The error text names the
// server and the step that failed; it never holds credentials, which are
// not sent before a server counts as reached.
func (st *serverState) failed(err error, via string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.failures++
	st.fails++
	st.lastErr = err.Error()
	wasProbe := st.probing
	st.probing = false
	if st.up && st.fails < st.opts.FailThreshold {
		return
	}
	st.downUntil = st.now().Add(st.opts.DownBackoff)
	if st.up {
		st.up = false
		st.logger.Warn("backend server down", "backend", st.backend, "server", st.addr,
			"failures", st.fails, "retry_in", st.opts.DownBackoff, "via", via, "error", err)
	} else if wasProbe {
		st.logger.Debug("backend server still down", "backend", st.backend, "server", st.addr, "error", err)
	}
}

// status returns the state of the server for /metrics and /healthz.
func (st *serverState) status() ServerStatus {
	st.mu.Lock()
	defer st.mu.Unlock()
	return ServerStatus{Backend: st.backend, Pool: st.pooled, Server: st.addr, Up: st.up, Failures: st.failures,
		Sessions: st.open.Load(), LastError: st.lastErr}
}

// checkDue reports whether the active check should run now: always while
// up, and once the backoff is over while down.
func (st *serverState) checkDue() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.up || !st.now().Before(st.downUntil)
}
