package metrics

import (
	"encoding/json"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"
)

// backendHealth is the outcome of the last real connection to a backend.
type backendHealth struct {
	when time.Time
	err  string
}

// healthWindow is how long a dial result counts as recent; older ones are
// refreshed by a probe when /healthz is asked.
const healthWindow = 30 * time.Second

// healthReport is the JSON body of /healthz.
type healthReport struct {
	Status string `json:"status"`
	// Readiness is what /readyz says: "starting", "ready" or "draining".
	// It does not change Status or the HTTP status of /healthz.
	Readiness string                   `json:"readiness"`
	Sessions  int                      `json:"sessions"`
	Backends  map[string]backendStatus `json:"backends"`
	// Parts holds the detail of every part registered with SetHealthPart,
	// by name.
	Parts map[string]any `json:"parts,omitempty"`
	// Degraded names the parts that are not OK ("backends" included),
	// sorted; empty when Status is "ok".
	Degraded []string `json:"degraded,omitempty"`
}

// HealthPart is the state of one named part of the instance on /healthz:
// a pool of backend servers, the cluster store.
type HealthPart struct {
	// OK false makes the instance degraded and names the part in the
	// report's "degraded" list.
	OK bool
	// Detail is encoded as JSON under the part's name in "parts".
	Detail any
}

// HealthFunc reports one part's state. It runs on every /healthz and
// /status request, so it must answer from state it already has, without
// waiting on the network.
type HealthFunc func() HealthPart

// SetHealthPart registers the named part of /healthz, replacing any part
// of that name; a nil f removes it. The caller that wires the part (main)
// owns its registration.
func (s *Server) SetHealthPart(name string, f HealthFunc) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f == nil {
		delete(s.parts, name)
		return
	}
	s.parts[name] = f
}

// backendStatus is one backend's entry in a healthReport.
type backendStatus struct {
	Reachable bool      `json:"reachable"`
	Checked   time.Time `json:"checked"`
	Error     string    `json:"error,omitempty"`
}

// serveHealth reports whether each backend was reachable recently (the
// last real connection within healthWindow, else a fresh TCP probe) and
// the state of every registered part. It answers 503 when anything is
// degraded, so that an operator's monitoring (check_http, blackbox
// exporter) alerts on it; load balancers must ask /readyz instead, which
// a degraded part never turns to 503 (docs/CLUSTER.md).
func (s *Server) serveHealth(w http.ResponseWriter, r *http.Request) {
	_, rep := s.checkHealth()
	w.Header().Set("Content-Type", "application/json")
	if rep.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rep)
}

// checkHealth returns the backends of the running configuration (name ->
// address) and the health report of /healthz, probing the backends
// without a recent connection.
func (s *Server) checkHealth() (map[string]string, healthReport) {
	s.mu.Lock()
	backends := s.backends // replaced whole by SetBackends, never changed
	health := make(map[string]backendHealth, len(s.health))
	for k, v := range s.health {
		health[k] = v
	}
	srv := s.proxy
	parts := make(map[string]HealthFunc, len(s.parts))
	for k, f := range s.parts {
		parts[k] = f
	}
	s.mu.Unlock()

	rep := healthReport{Status: "ok", Readiness: s.Readiness().String(), Backends: map[string]backendStatus{}}
	if srv != nil {
		rep.Sessions = srv.Sessions()
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	names := make([]string, 0, len(backends))
	for n := range backends {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		h, ok := health[name]
		if ok && time.Since(h.when) < healthWindow {
			rep.Backends[name] = backendStatus{Reachable: h.err == "", Checked: h.when, Error: h.err}
			continue
		}
		wg.Add(1)
		go func(name, addr string) {
			defer wg.Done()
			st := backendStatus{Checked: time.Now()}
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err == nil {
				c.Close()
				st.Reachable = true
			} else {
				st.Error = err.Error()
			}
			mu.Lock()
			rep.Backends[name] = st
			mu.Unlock()
		}(name, backends[name])
	}
	wg.Wait()
	for _, st := range rep.Backends {
		if !st.Reachable {
			rep.Degraded = append(rep.Degraded, "backends")
			break
		}
	}
	if len(parts) > 0 {
		rep.Parts = make(map[string]any, len(parts))
	}
	for name, f := range parts {
		p := f()
		rep.Parts[name] = p.Detail
		if !p.OK {
			rep.Degraded = append(rep.Degraded, name)
		}
	}
	sort.Strings(rep.Degraded)
	if len(rep.Degraded) > 0 {
		rep.Status = "degraded"
	}
	return backends, rep
}
