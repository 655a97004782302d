package metrics

import (
	"errors"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/popgate/popgate/proxy"
)

// PoolFunc returns the state of every backend pool server, as
// (*proxy.Server).Pools does. It must answer from state it already has.
type PoolFunc func() []proxy.ServerStatus

// poolCollector exports the pool servers' state at each scrape, so that a
// server a reload removed disappears from /metrics with it. Its labels are
// backend names and server addresses from the configuration only.
type poolCollector struct {
	f        atomic.Pointer[PoolFunc]
	up       *prometheus.Desc
	failures *prometheus.Desc
	sessions *prometheus.Desc
}

func newPoolCollector() *poolCollector {
	labels := []string{"backend", "server"}
	return &poolCollector{
		up: prometheus.NewDesc("popgate_backend_server_up",
			"Whether a backend pool server is up (1) or down after failed connections or checks (0).", labels, nil),
		failures: prometheus.NewDesc("popgate_backend_server_failures_total",
			"Failed connections and health checks of a backend pool server since it was configured.", labels, nil),
		sessions: prometheus.NewDesc("popgate_backend_server_sessions",
			"Sessions of this instance connected to a backend pool server.", labels, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.failures
	ch <- c.sessions
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	f := c.f.Load()
	if f == nil || *f == nil {
		return
	}
	for _, st := range (*f)() {
		up := 0.0
		if st.Up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, st.Backend, st.Server)
		ch <- prometheus.MustNewConstMetric(c.failures, prometheus.CounterValue, float64(st.Failures), st.Backend, st.Server)
		ch <- prometheus.MustNewConstMetric(c.sessions, prometheus.GaugeValue, float64(st.Sessions), st.Backend, st.Server)
	}
}

// SetPools makes /metrics export the state f reports of every backend
// pool server: popgate_backend_server_up, _failures_total and _sessions,
// labelled by backend and server. A later call replaces f. The caller
// that wires the proxy (main) owns it.
func (s *Server) SetPools(f PoolFunc) {
	if s == nil {
		return
	}
	c := newPoolCollector()
	if err := s.reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			s.logger.Error("pool metrics not registered", "error", err)
			return
		}
		c = are.ExistingCollector.(*poolCollector)
	}
	c.f.Store(&f)
}
