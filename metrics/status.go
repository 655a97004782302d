package metrics

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// The read-only status page, /status on the metrics listener: sessions by
// listener and backend, the backends' health, logins, failures and
// throttling over the last minutes, scanner verdicts and the
// certificates' expiry, as plain HTML that refreshes itself.
//
// Access: on a loopback metrics address the page is open, like /metrics.
// On any other address it is served only when the configuration has an
// admin token, and every request must carry it, as "Authorization: Bearer
// TOKEN" or, for a browser, a "token" query parameter (kept by the page's
// refresh). /metrics and /healthz stay open either way.

// statusRefresh is how often the page reloads itself, in seconds.
const statusRefresh = 10

// SessionLister lists the open sessions; *proxy.Server is one.
type SessionLister interface {
	Snapshot() []proxy.SessionInfo
}

// CertificateLister lists the certificates served now; *tlsconf.Manager
// is one (a nil *Manager lists none).
type CertificateLister interface {
	Certificates() []tlsconf.CertificateInfo
}

// StatusListener is a configured listener, as the status page lists it.
type StatusListener struct {
	Name    string
	Address string
	TLS     proxy.TLSMode
	Backend string // the listener's default backend
}

// StatusConfig is what the status page takes from the configuration in
// force; SetStatus replaces it whole at start and at every reload.
type StatusConfig struct {
	// Token is the admin token (admin.token): required on /status when
	// the metrics listener is not on loopback; "" for none, and then the
	// page is off there. It is never logged.
	Token        string
	Listeners    []StatusListener
	Certificates CertificateLister // nil without TLS
}

// statusState is the status page's part of a Server.
type statusState struct {
	window *activityWindow // written by the hooks only
	// loopback is whether the metrics listener is bound to a loopback
	// address; written once by Serve, before it serves.
	loopback bool

	mu       sync.Mutex
	config   StatusConfig
	sessions SessionLister
}

// SetStatus records what the status page shows of the configuration in
// force and the token that guards it.
func (s *Server) SetStatus(c StatusConfig) {
	if s == nil {
		return
	}
	c.Listeners = append([]StatusListener(nil), c.Listeners...)
	s.status.mu.Lock()
	s.status.config = c
	s.status.mu.Unlock()
	if s.srv != nil && !s.status.loopback && c.Token == "" {
		s.logger.Warn("the status page /status is off: the metrics listener is not on loopback and admin.token is not set")
	}
}

// isLoopback reports whether a listener bound to addr serves only this
// machine. The unspecified address (every interface) is not loopback.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// tokenMatches reports whether r carries token, as a bearer token or a
// "token" query parameter. The comparison takes the same time whatever
// the guess (both sides are hashed first, so not even the length shows).
func tokenMatches(r *http.Request, token string) bool {
	if token == "" {
		return false
	}
	given := r.URL.Query().Get("token")
	if scheme, cred, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		given = strings.TrimSpace(cred)
	}
	want, got := sha256.Sum256([]byte(token)), sha256.Sum256([]byte(given))
	return subtle.ConstantTimeCompare(want[:], got[:]) == 1
}

// serveStatus serves the status page, after the access check.
func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "no-referrer") // the URL may carry the token
	h.Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	s.status.mu.Lock()
	cfg, lister := s.status.config, s.status.sessions
	s.status.mu.Unlock()
	if !s.status.loopback {
		if cfg.Token == "" {
			http.Error(w, "the status page is off: the metrics listener is not on loopback and admin.token is not set", http.StatusForbidden)
			return
		}
		if !tokenMatches(r, cfg.Token) {
			h.Set("WWW-Authenticate", `Bearer realm="popgate status"`)
			http.Error(w, "a valid admin token is required", http.StatusUnauthorized)
			return
		}
	}
	page := s.statusPage(cfg, lister, time.Now())
	var buf bytes.Buffer
	if err := statusTemplate.Execute(&buf, page); err != nil {
		s.logger.Error("rendering the status page", "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Write(buf.Bytes())
}

// statusPage is the data the page's template renders.
type statusPage struct {
	Now           time.Time
	Refresh       int
	WindowMinutes int
	Listeners     []listenerRow
	Sessions      []sessionGroup
	TotalSessions int
	Backends      []backendRow
	Healthy       bool
	Activity      []listenerActivity
	Total         listenerActivity
	TLS           bool
	Certificates  []certificateRow
}

// listenerRow is a configured listener and how many sessions it has open.
type listenerRow struct {
	StatusListener
	Open int
}

// sessionGroup counts the open sessions of one listener on one backend.
type sessionGroup struct {
	Listener, Backend string // Backend "" before the session has one
	Count             int
}

// backendRow is a backend with its health.
type backendRow struct {
	Name, Address string
	backendStatus
	Sessions int
}

// certificateRow is a certificate and how long it has left.
type certificateRow struct {
	tlsconf.CertificateInfo
	Left    time.Duration
	Expired bool
	Soon    bool // expires within certificateWarning
}

// certificateWarning is how close an expiry is marked on the page.
const certificateWarning = 14 * 24 * time.Hour

// statusPage gathers what the page shows at now.
func (s *Server) statusPage(cfg StatusConfig, lister SessionLister, now time.Time) statusPage {
	p := statusPage{Now: now.UTC(), Refresh: statusRefresh, WindowMinutes: windowMinutes}

	// Sessions by listener and backend.
	var snap []proxy.SessionInfo
	if lister != nil {
		snap = lister.Snapshot()
	}
	groups := map[[2]string]int{}
	perListener := map[string]int{}
	perBackend := map[string]int{}
	for _, si := range snap {
		groups[[2]string{si.Listener, si.Backend}]++
		perListener[si.Listener]++
		perBackend[si.Backend]++
	}
	p.TotalSessions = len(snap)
	for k, n := range groups {
		p.Sessions = append(p.Sessions, sessionGroup{Listener: k[0], Backend: k[1], Count: n})
	}
	sort.Slice(p.Sessions, func(i, j int) bool {
		a, b := p.Sessions[i], p.Sessions[j]
		if a.Listener != b.Listener {
			return a.Listener < b.Listener
		}
		return a.Backend < b.Backend
	})
	for _, l := range cfg.Listeners {
		p.Listeners = append(p.Listeners, listenerRow{StatusListener: l, Open: perListener[l.Name]})
	}

	// Backends with their health.
	addrs, rep := s.checkHealth()
	p.Healthy = rep.Status == "ok"
	for name, st := range rep.Backends {
		p.Backends = append(p.Backends, backendRow{Name: name, Address: addrs[name], backendStatus: st, Sessions: perBackend[name]})
	}
	sort.Slice(p.Backends, func(i, j int) bool { return p.Backends[i].Name < p.Backends[j].Name })

	// Activity over the last minutes, and the scanners' verdicts.
	p.Activity = s.status.window.sums()
	for i := range p.Activity {
		a := &p.Activity[i]
		p.Total.Last1.add(&a.Last1)
		p.Total.Last5.add(&a.Last5)
		p.Total.LastWindow.add(&a.LastWindow)
	}

	// Certificates.
	if cfg.Certificates != nil {
		for _, c := range cfg.Certificates.Certificates() {
			left := c.NotAfter.Sub(now)
			p.Certificates = append(p.Certificates, certificateRow{CertificateInfo: c, Left: left,
				Expired: left <= 0, Soon: left > 0 && left < certificateWarning})
		}
		sort.SliceStable(p.Certificates, func(i, j int) bool { return p.Certificates[i].Left < p.Certificates[j].Left })
	}
	for _, l := range cfg.Listeners {
		p.TLS = p.TLS || l.TLS != proxy.TLSNone
	}
	return p
}
