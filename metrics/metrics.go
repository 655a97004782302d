package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/proxy"
)

// Server records popgate's metrics and serves them on /metrics, with
// backend health on /healthz and readiness for load balancers on /readyz.
// It is safe for concurrent use. A nil *Server is valid and records
// nothing.
type Server struct {
	logger hclog.Logger
	reg    *prometheus.Registry
	srv    *http.Server // nil until Serve

	sessionsOpen  *prometheus.GaugeVec
	sessionsTotal *prometheus.CounterVec
	logins        *prometheus.CounterVec
	commands      *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	dialSeconds   *prometheus.HistogramVec
	authRequests  *prometheus.CounterVec
	authSeconds   *prometheus.HistogramVec
	dialErrors    *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	scanSeconds   prometheus.Histogram
	throttled     *prometheus.CounterVec
	reloads       *prometheus.CounterVec
	auditErrors   *prometheus.CounterVec

	// ready is the Readiness of /readyz, written by SetReadiness only.
	ready atomic.Int32

	mu       sync.Mutex
	backends map[string]string // name -> address, of the running configuration
	health   map[string]backendHealth
	parts    map[string]HealthFunc // SetHealthPart
	proxy    *proxy.Server

	status statusState // the /status page (status.go)
}

// Start returns a Server serving on address (host:port).
func Start(address string, logger hclog.Logger) (*Server, error) {
	s := New(logger)
	if err := s.Serve(address); err != nil {
		return nil, err
	}
	return s, nil
}

// New registers popgate's metrics in a registry of their own and returns
// the Server, not serving yet.
func New(logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{
		logger:   logger,
		reg:      prometheus.NewRegistry(),
		backends: map[string]string{},
		health:   map[string]backendHealth{},
		parts:    map[string]HealthFunc{},
		status:   statusState{window: newActivityWindow(nil)},
		sessionsOpen: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "popgate_sessions_open",
			Help: "Client sessions open now."}, []string{"listener", "tls"}),
		sessionsTotal: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_sessions_total",
			Help: "Client sessions ended, by end reason."}, []string{"listener", "tls", "reason"}),
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_logins_total",
			Help: "Login attempts by mechanism and result."}, []string{"listener", "mechanism", "result"}),
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_commands_total",
			Help: "Client commands answered, by verb and status."}, []string{"verb", "status"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_client_bytes_total",
			Help: "Octets exchanged with clients (in: from clients, out: to clients)."}, []string{"listener", "direction"}),
		dialSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "popgate_backend_dial_seconds",
			Help: "Time to connect to a backend, up to its greeting (and STLS).", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"backend"}),
		authRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_auth_http_requests_total",
			Help: "Logins asked of auth_http services, by result."}, []string{"auth", "result"}),
		authSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "popgate_auth_http_seconds",
			Help: "Time to an auth_http service's answer (or the cache's).", Buckets: prometheus.DefBuckets}, []string{"auth"}),
		dialErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_backend_dial_errors_total",
			Help: "Failed backend connections."}, []string{"backend"}),
		verdicts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_scan_verdicts_total",
			Help: "Virus scanner outcomes by verdict and action."}, []string{"verdict", "action"}),
		scanSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "popgate_scan_wait_seconds",
			Help: "Time from a body's last octet to the scanner's verdict.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_throttled_total",
			Help: "Connections refused or answers delayed by limits, by reason."}, []string{"listener", "reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_reloads_total",
			Help: "Configuration reloads by result."}, []string{"result"}),
		auditErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "popgate_audit_write_errors_total",
			Help: "Audit records that could not be written and are lost, by audit filter."}, []string{"filter"}),
	}
	for _, c := range []prometheus.Collector{s.sessionsOpen, s.sessionsTotal, s.logins, s.commands, s.bytes,
		s.dialSeconds, s.authRequests, s.authSeconds, s.dialErrors, s.verdicts, s.scanSeconds, s.throttled, s.reloads, s.auditErrors,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		s.reg.MustRegister(c)
	}
	return s
}

// Serve listens on address (host:port) and serves /metrics, /healthz,
// /readyz and /status on a goroutine of its own until Close.
func (s *Server) Serve(address string) error {
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.HandleFunc("/readyz", s.serveReady)
	s.status.loopback = isLoopback(ln.Addr())
	mux.HandleFunc("/status", s.serveStatus)
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("metrics server failed", "error", err)
		}
	}()
	s.logger.Info("serving metrics", "address", ln.Addr().String())
	return nil
}

// Close stops serving, waiting up to 2 seconds for requests in progress.
func (s *Server) Close() {
	if s == nil || s.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s.srv.Shutdown(ctx)
}

// SetProxy names the proxy server whose open sessions /healthz counts
// and /status lists.
func (s *Server) SetProxy(srv *proxy.Server) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.proxy = srv
	s.mu.Unlock()
	s.status.mu.Lock()
	s.status.sessions = srv
	s.status.mu.Unlock()
}

// SetBackends records the backends of the configuration in force, by name
// with their host:port addresses, for /healthz.
func (s *Server) SetBackends(backends map[string]string) {
	if s == nil {
		return
	}
	m := make(map[string]string, len(backends))
	for k, v := range backends {
		m[k] = v
	}
	s.mu.Lock()
	s.backends = m
	s.mu.Unlock()
}

// Reloaded counts a configuration reload: ok when it took effect whole.
func (s *Server) Reloaded(ok bool) {
	if s == nil {
		return
	}
	if ok {
		s.reloads.WithLabelValues("ok").Inc()
	} else {
		s.reloads.WithLabelValues("error").Inc()
	}
}

// AuditWriteErrors returns the counter of audit records filter could not
// write (popgate_audit_write_errors_total), for its audit.Config's
// OnWriteError. On a nil Server it is a counter nothing serves.
func (s *Server) AuditWriteErrors(filter string) prometheus.Counter {
	if s == nil {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: "popgate_audit_write_errors_total"})
	}
	return s.auditErrors.WithLabelValues(filter)
}

// Hooks returns the proxy callbacks that feed the metrics; none on a nil
// Server.
func (s *Server) Hooks() proxy.Hooks {
	if s == nil {
		return proxy.Hooks{}
	}
	tlsLabel := func(t bool) string { return strconv.FormatBool(t) }
	return proxy.Hooks{
		SessionStarted: func(listener string, t bool) {
			s.sessionsOpen.WithLabelValues(listener, tlsLabel(t)).Inc()
			s.status.window.count(listener, actSessions)
		},
		SessionEnded: func(listener string, t bool, end filters.SessionEnd) {
			s.sessionsOpen.WithLabelValues(listener, tlsLabel(t)).Dec()
			s.sessionsTotal.WithLabelValues(listener, tlsLabel(t), endReasonLabel(end.Reason)).Inc()
			s.bytes.WithLabelValues(listener, "in").Add(float64(end.BytesIn))
			s.bytes.WithLabelValues(listener, "out").Add(float64(end.BytesOut))
		},
		Login: func(listener, mechanism, result string) {
			s.logins.WithLabelValues(listener, mechanismLabel(mechanism), loginResultLabel(result)).Inc()
			if result == "ok" {
				s.status.window.count(listener, actLoginsOK)
			} else {
				s.status.window.count(listener, actLoginsBad)
			}
		},
		Command: func(verb, status string) {
			s.commands.WithLabelValues(verbLabel(verb), statusLabel(status)).Inc()
		},
		Verdict: s.verdict,
		BackendDial: func(backend string, d time.Duration, err error) {
			s.dialSeconds.WithLabelValues(backend).Observe(d.Seconds())
			h := backendHealth{when: time.Now()}
			if err != nil {
				s.dialErrors.WithLabelValues(backend).Inc()
				h.err = err.Error()
			}
			s.mu.Lock()
			s.health[backend] = h
			s.mu.Unlock()
		},
		AuthService: func(service, result string, d time.Duration) {
			s.authRequests.WithLabelValues(service, authResultLabel(result)).Inc()
			s.authSeconds.WithLabelValues(service).Observe(d.Seconds())
		},
		Throttled: func(listener, reason string) {
			s.throttled.WithLabelValues(listener, throttleReasonLabel(reason)).Inc()
			s.status.window.count(listener, actThrottled)
		},
	}
}

// verdict counts a scanner's verdict (popgate_scan_verdicts_total) and,
// when there is one, how long it took (popgate_scan_wait_seconds).
func (s *Server) verdict(listener string, v *filters.Verdict) {
	if v == nil {
		return
	}
	label := "clean"
	switch {
	case v.Err != nil || !v.Scanned:
		label = "error"
	case !v.Clean:
		label = "infected"
	}
	s.verdicts.WithLabelValues(label, actionLabel(v.Action)).Inc()
	s.status.window.count(listener, verdictActivity[label])
	if label != "error" {
		s.scanSeconds.Observe(v.Wait.Seconds())
	}
}
