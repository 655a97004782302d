package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/clamav"
	"github.com/popgate/popgate/proxy"
)

// metrics serves Prometheus metrics on /metrics and backend health on
// /healthz. A nil *metrics is valid and records nothing.
type metrics struct {
	logger hclog.Logger
	reg    *prometheus.Registry
	srv    *http.Server
	ln     net.Listener

	sessionsOpen  *prometheus.GaugeVec
	sessionsTotal *prometheus.CounterVec
	logins        *prometheus.CounterVec
	commands      *prometheus.CounterVec
	bytes         *prometheus.CounterVec
	dialSeconds   *prometheus.HistogramVec
	dialErrors    *prometheus.CounterVec
	verdicts      *prometheus.CounterVec
	scanSeconds   prometheus.Histogram
	throttled     *prometheus.CounterVec
	reloads       *prometheus.CounterVec

	mu       sync.Mutex
	backends map[string]string // name -> address, of the running config
	health   map[string]backendHealth
	server   *proxy.Server
}

type backendHealth struct {
	when time.Time
	err  string
}

// healthWindow is how long a dial result counts as recent; older ones are
// refreshed by a probe when /healthz is asked.
const healthWindow = 30 * time.Second

func startMetrics(address string, logger hclog.Logger) (*metrics, error) {
	m := newMetrics(logger)
	ln, err := net.Listen("tcp", address)
	if err != nil {
		return nil, fmt.Errorf("metrics listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", m.serveHealth)
	m.ln = ln
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := m.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("metrics server failed", "error", err)
		}
	}()
	logger.Info("serving metrics", "address", ln.Addr().String())
	return m, nil
}

// newMetrics registers popgate's metrics in a registry of their own.
func newMetrics(logger hclog.Logger) *metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &metrics{
		logger:   logger,
		reg:      reg,
		backends: map[string]string{},
		health:   map[string]backendHealth{},
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
	}
	for _, c := range []prometheus.Collector{m.sessionsOpen, m.sessionsTotal, m.logins, m.commands, m.bytes,
		m.dialSeconds, m.dialErrors, m.verdicts, m.scanSeconds, m.throttled, m.reloads,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

func (m *metrics) close() {
	if m == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	m.srv.Shutdown(ctx)
}

func (m *metrics) setHealth(srv *proxy.Server) {
	if m == nil {
		return
	}
	m.mu.Lock()
	m.server = srv
	m.mu.Unlock()
}

// setBackends records the backends of the configuration in force.
func (m *metrics) setBackends(cfg *Config) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.backends = map[string]string{}
	for _, b := range cfg.Backends {
		m.backends[b.Name] = b.Address
	}
}

func (m *metrics) reloaded(ok bool) {
	if m == nil {
		return
	}
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("error").Inc()
	}
}

func (m *metrics) verdict(ev clamav.VerdictEvent) {
	if m == nil {
		return
	}
	v := "clean"
	switch {
	case ev.Err != nil:
		v = "error"
	case !ev.Verdict.Clean:
		v = "infected"
	}
	m.verdicts.WithLabelValues(v, actionLabel(string(ev.Action))).Inc()
	if ev.Err == nil {
		m.scanSeconds.Observe(ev.Verdict.Wait.Seconds())
	}
}

// hooks returns the proxy callbacks that feed the metrics.
func (m *metrics) hooks() proxy.Hooks {
	if m == nil {
		return proxy.Hooks{}
	}
	tlsLabel := func(t bool) string { return strconv.FormatBool(t) }
	return proxy.Hooks{
		SessionStarted: func(listener string, t bool) {
			m.sessionsOpen.WithLabelValues(listener, tlsLabel(t)).Inc()
		},
		SessionEnded: func(listener string, t bool, end filters.SessionEnd) {
			m.sessionsOpen.WithLabelValues(listener, tlsLabel(t)).Dec()
			m.sessionsTotal.WithLabelValues(listener, tlsLabel(t), endReasonLabel(end.Reason)).Inc()
			m.bytes.WithLabelValues(listener, "in").Add(float64(end.BytesIn))
			m.bytes.WithLabelValues(listener, "out").Add(float64(end.BytesOut))
		},
		Login: func(listener, mechanism, result string) {
			m.logins.WithLabelValues(listener, mechanismLabel(mechanism), loginResultLabel(result)).Inc()
		},
		Command: func(verb, status string) {
			m.commands.WithLabelValues(verbLabel(verb), statusLabel(status)).Inc()
		},
		BackendDial: func(backend string, d time.Duration, err error) {
			m.dialSeconds.WithLabelValues(backend).Observe(d.Seconds())
			h := backendHealth{when: time.Now()}
			if err != nil {
				m.dialErrors.WithLabelValues(backend).Inc()
				h.err = err.Error()
			}
			m.mu.Lock()
			m.health[backend] = h
			m.mu.Unlock()
		},
		Throttled: func(listener, reason string) {
			m.throttled.WithLabelValues(listener, throttleReasonLabel(reason)).Inc()
		},
	}
}

// Label values. Every label of a metric is either the name of something
// configured (listener, backend, filter), which the configuration bounds,
// or a value from one of the fixed sets below, documented in
// docs/CONFIG.md under "Metrics". A value outside its set (a mechanism a
// client typed after AUTH, a verb or reason this table does not know yet)
// is counted as "other", so that no client can create series.

// labelOther is the value counted for anything outside a label's set.
const labelOther = "other"

// labelSet is the fixed set of values of one label.
type labelSet map[string]bool

func newLabelSet(values ...string) labelSet {
	s := labelSet{labelOther: true}
	for _, v := range values {
		s[v] = true
	}
	return s
}

// value returns v when it is in the set, else "other".
func (s labelSet) value(v string) string {
	if s[v] {
		return v
	}
	return labelOther
}

var (
	// mechanisms are popgate's own login names (user, apop, passthrough)
	// and the SASL mechanisms (RFC 5034) a backend may offer, lower case.
	mechanisms = newLabelSet("user", "apop", "passthrough", "plain", "login", "cram-md5",
		"digest-md5", "scram-sha-1", "scram-sha-1-plus", "scram-sha-256", "scram-sha-256-plus",
		"oauthbearer", "xoauth2", "external", "gssapi", "ntlm", "anonymous")
	loginResults = newLabelSet("ok", "fail")
	// verbs are the commands popgate relays (RFC 1939, 2449, 2595,
	// 5034); a line popgate answers itself before any filter (an unknown
	// command, bad arguments, the wrong state) is counted as "other".
	verbs = newLabelSet("USER", "PASS", "APOP", "AUTH", "CAPA", "STLS", "STAT", "LIST",
		"RETR", "DELE", "TOP", "UIDL", "NOOP", "RSET", "QUIT")
	statuses = newLabelSet("+OK", "-ERR", "+")
	// endReasons are the reasons proxy records when a session ends.
	endReasons = newLabelSet("quit", "client-closed", "client-error", "client-write", "write-error",
		"timeout", "tls-handshake", "backend-error", "backend-unavailable", "bad-proxy-header",
		"untrusted-proxy", "max-sessions-per-ip", "too-many-auth-failures", "too-many-errors",
		"shutdown", "panic")
	// throttleReasons are the reasons proxy gives its Throttled hook.
	throttleReasons = newLabelSet("max-sessions", "max-sessions-per-ip", "auth-delay")
	// actions are clamav.Action values.
	actions = newLabelSet(string(clamav.ActionDeliver), string(clamav.ActionReplace),
		string(clamav.ActionReject), string(clamav.ActionTempFail), string(clamav.ActionPass))
)

// clientLabels maps each metric's label that is not a configured name to
// its fixed set. The tests compare it with docs/CONFIG.md.
var clientLabels = map[[2]string]labelSet{
	{"popgate_sessions_open", "tls"}:            newLabelSet("true", "false"),
	{"popgate_sessions_total", "tls"}:           newLabelSet("true", "false"),
	{"popgate_sessions_total", "reason"}:        endReasons,
	{"popgate_logins_total", "mechanism"}:       mechanisms,
	{"popgate_logins_total", "result"}:          loginResults,
	{"popgate_commands_total", "verb"}:          verbs,
	{"popgate_commands_total", "status"}:        statuses,
	{"popgate_client_bytes_total", "direction"}: newLabelSet("in", "out"),
	{"popgate_scan_verdicts_total", "verdict"}:  newLabelSet("clean", "infected", "error"),
	{"popgate_scan_verdicts_total", "action"}:   actions,
	{"popgate_throttled_total", "reason"}:       throttleReasons,
	{"popgate_reloads_total", "result"}:         newLabelSet("ok", "error"),
}

// mechanismLabel is the mechanism label of popgate_logins_total: the
// login mechanism, which after AUTH is whatever the client typed.
func mechanismLabel(v string) string { return mechanisms.value(strings.ToLower(v)) }

// loginResultLabel is the result label of popgate_logins_total.
func loginResultLabel(v string) string { return loginResults.value(v) }

// verbLabel is the verb label of popgate_commands_total.
func verbLabel(v string) string { return verbs.value(v) }

// statusLabel is the status label of popgate_commands_total.
func statusLabel(v string) string { return statuses.value(v) }

// endReasonLabel is the reason label of popgate_sessions_total.
func endReasonLabel(v string) string { return endReasons.value(v) }

// throttleReasonLabel is the reason label of popgate_throttled_total.
func throttleReasonLabel(v string) string { return throttleReasons.value(v) }

// actionLabel is the action label of popgate_scan_verdicts_total.
func actionLabel(v string) string { return actions.value(v) }

type healthReport struct {
	Status   string                   `json:"status"`
	Sessions int                      `json:"sessions"`
	Backends map[string]backendStatus `json:"backends"`
}

type backendStatus struct {
	Reachable bool      `json:"reachable"`
	Checked   time.Time `json:"checked"`
	Error     string    `json:"error,omitempty"`
}

// serveHealth reports whether each backend was reachable recently: the
// last real connection within healthWindow, else a fresh TCP probe.
func (m *metrics) serveHealth(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	backends := make(map[string]string, len(m.backends))
	for k, v := range m.backends {
		backends[k] = v
	}
	health := make(map[string]backendHealth, len(m.health))
	for k, v := range m.health {
		health[k] = v
	}
	srv := m.server
	m.mu.Unlock()

	rep := healthReport{Status: "ok", Backends: map[string]backendStatus{}}
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
			rep.Status = "degraded"
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if rep.Status != "ok" {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	json.NewEncoder(w).Encode(rep)
}
