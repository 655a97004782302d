package metrics

import (
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// fakeSessions is a SessionLister with fixed sessions.
type fakeSessions []proxy.SessionInfo

func (f fakeSessions) Snapshot() []proxy.SessionInfo { return f }

// fakeCerts is a CertificateLister with fixed certificates.
type fakeCerts []tlsconf.CertificateInfo

func (f fakeCerts) Certificates() []tlsconf.CertificateInfo { return f }

// getStatus requests target from s's /status handler and returns the
// status code and body.
func getStatus(s *Server, target string, header map[string]string) (int, string) {
	r := httptest.NewRequest(http.MethodGet, target, nil)
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	s.serveStatus(w, r)
	body, _ := io.ReadAll(w.Result().Body)
	return w.Code, string(body)
}

func TestStatusIsLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9100", true},
		{"127.3.2.1:9100", true},
		{"[::1]:9100", true},
		{"0.0.0.0:9100", false},
		{"[::]:9100", false},
		{"192.0.2.7:9100", false},
	} {
		a, err := net.ResolveTCPAddr("tcp", tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := isLoopback(a); got != tc.want {
			t.Errorf("isLoopback(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if isLoopback(&net.UnixAddr{Name: "/x", Net: "unix"}) {
		t.Error("a unix socket address counted as loopback")
	}
}

// TestStatusAccessRule checks who may read /status: anyone on loopback;
// elsewhere nobody without an admin token configured, and with one only
// requests that carry it, as a bearer token or a query parameter.
func TestStatusAccessRule(t *testing.T) {
	const token = "s3cret-Token"
	for _, tc := range []struct {
		name     string
		loopback bool
		token    string // configured
		target   string
		auth     string
		want     int
	}{
		{"loopback, no token configured", true, "", "/status", "", 200},
		{"loopback, token configured, none sent", true, token, "/status", "", 200},
		{"public, no token configured", false, "", "/status", "", 403},
		{"public, no token configured, one sent", false, "", "/status?token=", "Bearer ", 403},
		{"public, none sent", false, token, "/status", "", 401},
		{"public, right bearer", false, token, "/status", "Bearer " + token, 200},
		{"public, bearer scheme in lower case", false, token, "/status", "bearer " + token, 200},
		{"public, wrong bearer", false, token, "/status", "Bearer " + token + "x", 401},
		{"public, prefix of the token", false, token, "/status", "Bearer s3cret", 401},
		{"public, basic scheme", false, token, "/status", "Basic " + token, 401},
		{"public, right query", false, token, "/status?token=" + token, "", 200},
		{"public, wrong query", false, token, "/status?token=nope", "", 401},
		{"public, wrong bearer beats right query", false, token, "/status?token=" + token, "Bearer nope", 401},
		{"public, empty query", false, token, "/status?token=", "", 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := New(hclog.NewNullLogger())
			s.status.loopback = tc.loopback
			s.SetStatus(StatusConfig{Token: tc.token})
			code, body := getStatus(s, tc.target, map[string]string{"Authorization": tc.auth})
			if code != tc.want {
				t.Errorf("HTTP %d, want %d; body %q", code, tc.want, body)
			}
			if tc.token != "" && strings.Contains(body, tc.token) {
				t.Errorf("the answer contains the token: %q", body)
			}
			if code == 200 && !strings.Contains(body, "<title>popgate status</title>") {
				t.Errorf("200 without the page: %q", body)
			}
		})
	}
}

// TestStatusOtherEndpointsStayOpen serves the whole mux on loopback but
// marks it public, with a token configured: /metrics and /healthz answer
// without the token, /status does not.
func TestStatusOtherEndpointsStayOpen(t *testing.T) {
	s := New(hclog.NewNullLogger())
	if err := s.Serve("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !s.status.loopback {
		t.Fatal("127.0.0.1 not seen as loopback")
	}
	s.status.loopback = false // as if bound to every interface
	s.SetStatus(StatusConfig{Token: "tok"})
	ts := httptest.NewServer(s.srv.Handler)
	defer ts.Close()
	for path, want := range map[string]int{"/metrics": 200, "/healthz": 200, "/status": 401, "/status?token=tok": 200} {
		resp, err := http.Get(ts.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s: HTTP %d, want %d", path, resp.StatusCode, want)
		}
	}
	resp, err := http.Post(ts.URL+"/status?token=tok", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /status: HTTP %d, want 405", resp.StatusCode)
	}
}

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// TestActivityWindowRolls counts events over simulated minutes and checks
// the 1, 5 and 15 minute sums, and that a bucket is reused, not added to,
// once its minute has passed.
func TestActivityWindowRolls(t *testing.T) {
	clock := &testClock{t: time.Date(2025, 1, 1, 12, 0, 30, 0, time.UTC)}
	w := newActivityWindow(clock.now)
	// Minute 0..19: one login on "a" per minute, plus a failure at
	// minutes 17 and 19.
	for m := 0; m < 20; m++ {
		w.count("a", actLoginsOK)
		if m == 17 || m == 19 {
			w.count("a", actLoginsBad)
		}
		if m < 19 {
			clock.add(time.Minute)
		}
	}
	w.count("b", actThrottled)
	sums := w.sums()
	if len(sums) != 2 || sums[0].Listener != "a" || sums[1].Listener != "b" {
		t.Fatalf("sums = %+v, want listeners a and b", sums)
	}
	a := sums[0]
	if a.Last1.LoginsOK() != 1 || a.Last5.LoginsOK() != 5 || a.LastWindow.LoginsOK() != windowMinutes {
		t.Errorf("logins 1/5/15 min = %d/%d/%d, want 1/5/%d", a.Last1.LoginsOK(), a.Last5.LoginsOK(), a.LastWindow.LoginsOK(), windowMinutes)
	}
	if a.Last1.LoginsBad() != 1 || a.Last5.LoginsBad() != 2 || a.LastWindow.LoginsBad() != 2 {
		t.Errorf("failures 1/5/15 min = %d/%d/%d, want 1/2/2", a.Last1.LoginsBad(), a.Last5.LoginsBad(), a.LastWindow.LoginsBad())
	}
	if sums[1].Last1.Throttled() != 1 {
		t.Errorf("throttled on b = %d, want 1", sums[1].Last1.Throttled())
	}
	// After a quiet quarter of an hour nothing is left.
	clock.add(windowMinutes * time.Minute)
	for _, la := range w.sums() {
		if la.LastWindow != (activity{}) {
			t.Errorf("%s after %d quiet minutes: %+v, want zeros", la.Listener, windowMinutes, la.LastWindow)
		}
	}
	// A bucket whose minute has passed restarts from zero.
	w.count("a", actLoginsOK)
	if got := w.sums()[0].LastWindow.LoginsOK(); got != 1 {
		t.Errorf("logins after the window rolled = %d, want 1", got)
	}
}

// cell returns the text of the element with id in page, or fails.
func cell(t *testing.T, page, id string) string {
	t.Helper()
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(page)
	if m == nil {
		t.Errorf("no element with id %q", id)
		return ""
	}
	return m[1]
}

// TestStatusPageContent feeds the hooks, sessions, backends and
// certificates and checks every section of the rendered page, and that
// names are HTML-escaped.
func TestStatusPageContent(t *testing.T) {
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()

	s := New(hclog.NewNullLogger())
	s.status.loopback = true
	s.SetBackends(map[string]string{"main": live.Addr().String(), "gone": deadAddr})
	now := time.Now()
	s.status.sessions = fakeSessions{
		{ID: "1", Listener: "plain", Backend: "main", Client: netip.MustParseAddrPort("192.0.2.1:1000")},
		{ID: "2", Listener: "plain", Backend: "main"},
		{ID: "3", Listener: "plain", Backend: ""},
		{ID: "4", Listener: "<b>evil</b>", Backend: "main"},
	}
	s.SetStatus(StatusConfig{
		Listeners: []StatusListener{
			{Name: "plain", Address: "127.0.0.1:1110", Backend: "main"},
			{Name: "tls", Address: "127.0.0.1:1995", TLS: proxy.TLSImplicit, Backend: "main"},
		},
		Certificates: fakeCerts{
			{Names: []string{"pop.example.com"}, Source: tlsconf.SourceACME, NotAfter: now.Add(5*24*time.Hour + time.Hour)},
			{Names: []string{"old.example.com"}, Source: tlsconf.SourceStatic, NotAfter: now.Add(-time.Hour)},
			{Names: []string{"localhost"}, Source: tlsconf.SourceSelfSigned, NotAfter: now.Add(365*24*time.Hour + time.Hour)},
		},
	})
	h := s.Hooks()
	for i := 0; i < 3; i++ {
		h.SessionStarted("plain", false)
		h.Login("plain", "user", "ok")
	}
	h.Login("plain", "user", "fail")
	h.Login("plain", "apop", "fail")
	h.Throttled("plain", "auth-delay")
	h.Verdict("plain", &filters.Verdict{Scanned: true, Clean: true, Action: "deliver"})
	h.Verdict("plain", &filters.Verdict{Scanned: true, Virus: "X", Action: "replace"})
	h.Verdict("plain", &filters.Verdict{Err: errors.New("timeout"), Action: "tempfail"})
	h.Login("<b>evil</b>", "user", "ok")

	code, page := getStatus(s, "/status", nil)
	if code != 200 {
		t.Fatalf("HTTP %d: %s", code, page)
	}
	for id, want := range map[string]string{
		"sessions-total":                    "4",
		"open:plain":                        "3",
		"open:tls":                          "0",
		"sess:plain:main":                   "2",
		"sess:plain:":                       "1",
		"act:plain:sessions:1":              "3",
		"act:plain:logins:5":                "3",
		"act:plain:logins:15":               "3",
		"act:plain:failures:1":              "2",
		"act:plain:throttled:15":            "1",
		"scan:plain:clean":                  "1",
		"scan:plain:infected":               "1",
		"scan:plain:error":                  "1",
		"health":                            "degraded",
		"sess:&lt;b&gt;evil&lt;/b&gt;:main": "1",
	} {
		if got := cell(t, page, id); got != want {
			t.Errorf("#%s = %q, want %q", id, got, want)
		}
	}
	if strings.Contains(page, "<b>evil</b>") {
		t.Error("a listener name was not escaped")
	}
	if m := regexp.MustCompile(`id="health:main"><span class="ok">reachable<`).FindString(page); m == "" {
		t.Error("backend main not shown reachable")
	}
	if m := regexp.MustCompile(`id="health:gone"><span class="bad">unreachable<`).FindString(page); m == "" {
		t.Error("backend gone not shown unreachable")
	}
	for _, want := range []string{
		`<meta http-equiv="refresh" content="10">`,
		"(none yet)",
		"pop.example.com</td><td>acme</td>",
		`<td class="warn">5 days</td>`,
		`<td class="bad">expired</td>`,
		`<td class="ok">365 days</td>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	for _, banned := range []string{"<script", "src=", "href=", "@import", "url("} {
		if strings.Contains(page, banned) {
			t.Errorf("page has %q: no scripts or external assets allowed", banned)
		}
	}
	// The soonest expiry comes first.
	if strings.Index(page, "old.example.com") > strings.Index(page, "pop.example.com") {
		t.Error("certificates not sorted by expiry")
	}
}

// TestStatusPageEmpty renders a page with nothing configured or counted.
func TestStatusPageEmpty(t *testing.T) {
	s := New(hclog.NewNullLogger())
	s.status.loopback = true
	code, page := getStatus(s, "/status", nil)
	if code != 200 {
		t.Fatalf("HTTP %d: %s", code, page)
	}
	for _, want := range []string{"No session is open.", "No backend is configured.",
		"Nothing happened in the last 15 minutes.", "No message was scanned", "No listener uses TLS."} {
		if !strings.Contains(page, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
	if got := cell(t, page, "sessions-total"); got != "0" {
		t.Errorf("sessions-total = %q, want 0", got)
	}
}
