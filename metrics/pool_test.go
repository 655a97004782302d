package metrics

import (
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/proxy"
)

// poolSeries gathers s's registry and returns the value of every sample
// of the metric name, keyed "backend server".
func poolSeries(t *testing.T, s *Server, name string) map[string]float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[labels["backend"]+" "+labels["server"]] = v
		}
	}
	return out
}

// TestPoolMetrics: each server's state is exported with backend and server
// labels at each scrape, a later SetPools replaces the source, and a
// server that left the configuration leaves /metrics with it.
func TestPoolMetrics(t *testing.T) {
	s := New(hclog.NewNullLogger())
	states := []proxy.ServerStatus{
		{Backend: "mail", Server: "10.0.0.5:110", Up: true, Failures: 1, Sessions: 4},
		{Backend: "mail", Server: "10.0.0.6:110", Up: false, Failures: 7},
	}
	s.SetPools(func() []proxy.ServerStatus { return states })
	up := poolSeries(t, s, "popgate_backend_server_up")
	if len(up) != 2 || up["mail 10.0.0.5:110"] != 1 || up["mail 10.0.0.6:110"] != 0 {
		t.Errorf("popgate_backend_server_up: %v", up)
	}
	fails := poolSeries(t, s, "popgate_backend_server_failures_total")
	if fails["mail 10.0.0.5:110"] != 1 || fails["mail 10.0.0.6:110"] != 7 {
		t.Errorf("popgate_backend_server_failures_total: %v", fails)
	}
	if n := poolSeries(t, s, "popgate_backend_server_sessions"); n["mail 10.0.0.5:110"] != 4 {
		t.Errorf("popgate_backend_server_sessions: %v", n)
	}
	states = states[:1]
	s.SetPools(func() []proxy.ServerStatus { return states }) // registered once, source replaced
	if up := poolSeries(t, s, "popgate_backend_server_up"); len(up) != 1 {
		t.Errorf("after a server left: %v", up)
	}
}
