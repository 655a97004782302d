package metrics

import (
	"encoding/json"
	"net/http"
)

// Readiness says whether the instance takes new sessions, for load
// balancers (/readyz). It is not health: an instance whose Redis or one
// backend server is down still takes sessions (they fall back or fail
// over), and a load balancer that dropped it would drop every instance of
// the fleet at once.
type Readiness int32

// The readiness states, in the order an instance goes through them.
const (
	// Starting is the state from Start until the proxy's listeners are
	// bound (SetReadiness(Ready)): /readyz answers 503.
	Starting Readiness = iota
	// Ready is the state while the listeners accept sessions: /readyz
	// answers 200.
	Ready
	// Draining is the state from the moment a SIGTERM drain starts: the
	// listeners stop accepting, open sessions finish, and /readyz answers
	// 503 until the process exits.
	Draining
)

// String returns "starting", "ready" or "draining", the "status" of
// /readyz and the "readiness" of /healthz.
func (r Readiness) String() string {
	switch r {
	case Ready:
		return "ready"
	case Draining:
		return "draining"
	}
	return "starting"
}

// SetReadiness sets what /readyz answers. main owns the state: it sets
// Ready once the proxy's listeners are bound and Draining when a drain
// starts, before the listeners close.
func (s *Server) SetReadiness(r Readiness) {
	if s == nil {
		return
	}
	s.ready.Store(int32(r))
}

// Readiness returns the state SetReadiness set last.
func (s *Server) Readiness() Readiness {
	if s == nil {
		return Starting
	}
	return Readiness(s.ready.Load())
}

// readyReport is the JSON body of /readyz.
type readyReport struct {
	Status   string `json:"status"`
	Sessions int    `json:"sessions"`
}

// serveReady answers /readyz: 200 while Ready, 503 while Starting or
// Draining. It reads state only (no probe, no lock held across I/O), so a
// load balancer may ask it every second or faster.
func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	r0 := s.Readiness()
	rep := readyReport{Status: r0.String()}
	s.mu.Lock()
	srv := s.proxy
	s.mu.Unlock()
	if srv != nil {
		rep.Sessions = srv.Sessions()
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if r0 != Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	if r.Method == http.MethodHead {
		return
	}
	json.NewEncoder(w).Encode(rep)
}
