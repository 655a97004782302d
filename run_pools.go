package main

import (
	"github.com/popgate/popgate/metrics"
	"github.com/popgate/popgate/proxy"
)

// watchPools wires the proxy's backend pools to the metrics listener:
// every server's state on /metrics, and the "pools" part of /healthz.
func (a *app) watchPools() {
	a.metrics.SetPools(a.srv.Pools)
	a.metrics.SetHealthPart("pools", func() metrics.HealthPart { return poolHealth(a.srv.Pools()) })
}

// poolReport is one pool's entry in the "pools" part of /healthz.
type poolReport struct {
	// Status is "ok" (every server up), "degraded" (some down: sessions
	// still get a server, with less headroom) or "down" (none up:
	// sessions still try them, but expect errors).
	Status  string               `json:"status"`
	Up      int                  `json:"up"`
	Servers []proxy.ServerStatus `json:"servers"`
}

// poolHealth is the "pools" part of /healthz: every backend configured
// with servers, and its servers' state. It is not OK when any server is
// down, even if the others carry the load: an operator should know the
// pool runs without its spare capacity. (Backends with one address stay
// in the "backends" report of /healthz.)
func poolHealth(states []proxy.ServerStatus) metrics.HealthPart {
	pools := map[string]*poolReport{}
	ok := true
	for _, st := range states {
		if !st.Pool {
			continue
		}
		p := pools[st.Backend]
		if p == nil {
			p = &poolReport{Servers: []proxy.ServerStatus{}}
			pools[st.Backend] = p
		}
		p.Servers = append(p.Servers, st)
		if st.Up {
			p.Up++
		} else {
			ok = false
		}
	}
	for _, p := range pools {
		switch p.Up {
		case len(p.Servers):
			p.Status = "ok"
		case 0:
			p.Status = "down"
		default:
			p.Status = "degraded"
		}
	}
	return metrics.HealthPart{OK: ok, Detail: pools}
}
