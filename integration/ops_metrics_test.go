//go:build integration

package integration

// /metrics and /healthz: a strict parser of the Prometheus text format,
// the health report of live and dead backends, and the session, throttle
// and reload metrics.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// opsSample is one sample line of the Prometheus text format.
type opsSample struct {
	Name   string
	Labels map[string]string
	Value  float64
}

var (
	opsMetricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*`)
	opsLabelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*`)
	opsMetaLine   = regexp.MustCompile(`^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*)(?: (.*))?$`)
)

// opsParseMetrics parses the Prometheus text exposition format (0.0.4)
// line by line; any line that is not a comment, a HELP or TYPE line or a
// well-formed sample is an error, and so is a sample whose family has no
// TYPE.
func opsParseMetrics(text string) ([]opsSample, map[string]string, error) {
	types := map[string]string{}
	var out []opsSample
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			m := opsMetaLine.FindStringSubmatch(line)
			if m == nil {
				if strings.HasPrefix(line, "# HELP") || strings.HasPrefix(line, "# TYPE") {
					return nil, nil, fmt.Errorf("line %d: malformed %q", i+1, line)
				}
				continue
			}
			if m[1] == "TYPE" {
				switch m[3] {
				case "counter", "gauge", "histogram", "summary", "untyped":
				default:
					return nil, nil, fmt.Errorf("line %d: unknown type in %q", i+1, line)
				}
				types[m[2]] = m[3]
			}
			continue
		}
		s, err := opsParseSample(line)
		if err != nil {
			return nil, nil, fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
		family := s.Name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.Name, suf); ok && (types[base] == "histogram" || types[base] == "summary") {
				family = base
			}
		}
		if types[family] == "" {
			return nil, nil, fmt.Errorf("line %d: sample %s before a TYPE line", i+1, s.Name)
		}
		out = append(out, s)
	}
	return out, types, nil
}

// opsParseSample parses `name{l="v",...} value [timestamp]`.
func opsParseSample(line string) (opsSample, error) {
	s := opsSample{Labels: map[string]string{}}
	s.Name = opsMetricName.FindString(line)
	if s.Name == "" {
		return s, errors.New("no metric name")
	}
	rest := line[len(s.Name):]
	if strings.HasPrefix(rest, "{") {
		rest = rest[1:]
		for !strings.HasPrefix(rest, "}") {
			name := opsLabelName.FindString(rest)
			if name == "" || !strings.HasPrefix(rest[len(name):], `="`) {
				return s, errors.New("malformed label")
			}
			rest = rest[len(name)+2:]
			var v strings.Builder
			for {
				if rest == "" {
					return s, errors.New("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\\' {
					if rest == "" {
						return s, errors.New("bad escape")
					}
					switch rest[0] {
					case '\\', '"':
						v.WriteByte(rest[0])
					case 'n':
						v.WriteByte('\n')
					default:
						return s, fmt.Errorf("bad escape \\%c", rest[0])
					}
					rest = rest[1:]
					continue
				}
				v.WriteByte(c)
			}
			s.Labels[name] = v.String()
			rest = strings.TrimPrefix(rest, ",")
		}
		rest = rest[1:]
	}
	fields := strings.Fields(rest)
	if !strings.HasPrefix(rest, " ") || len(fields) < 1 || len(fields) > 2 {
		return s, errors.New("want one value and an optional timestamp")
	}
	v, err := strconv.ParseFloat(fields[0], 64)
	if err != nil {
		return s, fmt.Errorf("value: %w", err)
	}
	s.Value = v
	if len(fields) == 2 {
		if _, err := strconv.ParseInt(fields[1], 10, 64); err != nil {
			return s, fmt.Errorf("timestamp: %w", err)
		}
	}
	return s, nil
}

// opsScrape fetches and parses /metrics.
func opsScrape(t *testing.T, addr string) []opsSample {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s, %v", resp.Status, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") || !strings.Contains(ct, "version=0.0.4") {
		t.Errorf("/metrics Content-Type %q, want the text format 0.0.4", ct)
	}
	samples, _, err := opsParseMetrics(string(body))
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	return samples
}

// opsValue returns the sum of the samples named name whose labels include
// want, and whether there was any.
func opsValue(samples []opsSample, name string, want map[string]string) (float64, bool) {
	var sum float64
	found := false
next:
	for _, s := range samples {
		if s.Name != name {
			continue
		}
		for k, v := range want {
			if s.Labels[k] != v {
				continue next
			}
		}
		sum += s.Value
		found = true
	}
	return sum, found
}

// opsHealth is the JSON of /healthz.
type opsHealth struct {
	Status   string `json:"status"`
	Sessions int    `json:"sessions"`
	Backends map[string]struct {
		Reachable bool   `json:"reachable"`
		Error     string `json:"error"`
	} `json:"backends"`
}

// opsGetHealth fetches /healthz and returns its HTTP status and report.
func opsGetHealth(t *testing.T, addr string) (int, opsHealth) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var h opsHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("/healthz is not JSON: %v", err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("/healthz Content-Type %q, want application/json", ct)
	}
	return resp.StatusCode, h
}

func TestOpsMetricsAndHealth(t *testing.T) {
	live, dead, tiny, metricsAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	cfg := fmt.Sprintf(`
listener "live" {
  address = %q
  backend = "main"
  filters = ["clamav"]
}
listener "dead" {
  address = %q
  backend = "dead"
  filters = []
}
listener "tiny" {
  address = %q
  backend = "main"
  filters = []
  limits {
    max_sessions_per_ip = 1
  }
}
%s
backend "dead" {
  address = %q
  connect_timeout = "2s"
}
filter "clamav" {
  address = "unix://%s"
}
metrics {
  address = %q
}
`, live, dead, tiny, opsBackendA(t), opsDeadAddr(t), envValue(t, "CLAMD_UNIX"), metricsAddr)
	p := opsStart(t, cfg)

	// A connection over the per-address limit (first: the limit counts
	// the sessions of every listener, see TestOpsLimits/PerListener).
	first := dialPOP(t, tiny)
	refused, err := tryDialPOP(tiny, nil)
	if err == nil {
		refused.Close()
		t.Errorf("second connection to the max_sessions_per_ip = 1 listener was greeted")
	}
	opsCmdOK(t, first, "QUIT")
	opsReadToEOF(t, first, 10*time.Second)
	// A login, commands, a scanned retrieval.
	c := opsLogin(t, live, "alice")
	if _, err := c.Multi("RETR 1"); err != nil {
		t.Fatalf("RETR 1: %v", err)
	}
	opsCmdOK(t, c, "QUIT")
	opsReadToEOF(t, c, 10*time.Second)
	// A dial to the dead backend.
	if _, err := tryDialPOP(dead, nil); err == nil || !strings.Contains(err.Error(), "[SYS/TEMP]") {
		t.Errorf("greeting through the dead backend: %v, want -ERR [SYS/TEMP]", err)
	}
	// A reload.
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded", 10*time.Second)
	opsWaitMetric(t, metricsAddr, "popgate_reloads_total", map[string]string{"result": "ok"}, 1)

	code, h := opsGetHealth(t, metricsAddr)
	if code != http.StatusServiceUnavailable || h.Status != "degraded" {
		t.Errorf("/healthz with a dead backend: HTTP %d status %q, want 503 \"degraded\"", code, h.Status)
	}
	if b, ok := h.Backends["dead"]; !ok || b.Reachable || b.Error == "" {
		t.Errorf("/healthz backend dead = %+v (present %v), want reachable=false with an error", b, ok)
	}
	if b, ok := h.Backends["main"]; !ok || !b.Reachable {
		t.Errorf("/healthz backend main = %+v (present %v), want reachable=true", b, ok)
	}

	// Sessions end asynchronously after the client saw EOF: wait (bounded)
	// until the gauge is back to zero, then check everything at once.
	var samples []opsSample
	deadline := time.Now().Add(10 * time.Second)
	for {
		samples = opsScrape(t, metricsAddr)
		openLive, _ := opsValue(samples, "popgate_sessions_open", map[string]string{"listener": "live"})
		openDead, _ := opsValue(samples, "popgate_sessions_open", map[string]string{"listener": "dead"})
		ended, _ := opsValue(samples, "popgate_sessions_total", map[string]string{"listener": "tiny"})
		if openLive == 0 && openDead == 0 && ended >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions still open after 10 s: live=%v dead=%v, tiny ended=%v", openLive, openDead, ended)
		}
		time.Sleep(50 * time.Millisecond)
	}
	checks := []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"popgate_sessions_total", map[string]string{"listener": "live", "reason": "quit"}, 1},
		{"popgate_sessions_total", map[string]string{"listener": "tiny", "reason": "quit"}, 1},
		{"popgate_sessions_total", map[string]string{"listener": "dead", "reason": "backend-unavailable"}, 1},
		{"popgate_logins_total", map[string]string{"listener": "live", "mechanism": "user", "result": "ok"}, 1},
		{"popgate_commands_total", map[string]string{"verb": "RETR", "status": "+OK"}, 1},
		{"popgate_commands_total", map[string]string{"verb": "QUIT"}, 1},
		{"popgate_client_bytes_total", map[string]string{"listener": "live", "direction": "out"}, 100},
		{"popgate_client_bytes_total", map[string]string{"listener": "live", "direction": "in"}, 20},
		{"popgate_backend_dial_seconds_count", map[string]string{"backend": "main"}, 1},
		{"popgate_backend_dial_seconds_bucket", map[string]string{"backend": "main", "le": "+Inf"}, 1},
		{"popgate_backend_dial_errors_total", map[string]string{"backend": "dead"}, 1},
		{"popgate_scan_verdicts_total", map[string]string{"verdict": "clean", "action": "deliver"}, 1},
		{"popgate_throttled_total", map[string]string{"listener": "tiny", "reason": "max-sessions-per-ip"}, 1},
		{"popgate_reloads_total", map[string]string{"result": "ok"}, 1},
	}
	for _, ck := range checks {
		v, ok := opsValue(samples, ck.name, ck.labels)
		if !ok || v < ck.min {
			t.Errorf("%s%v = %v (present %v), want >= %v", ck.name, ck.labels, v, ok, ck.min)
		}
	}
	if v, _ := opsValue(samples, "popgate_backend_dial_errors_total", map[string]string{"backend": "main"}); v != 0 {
		t.Errorf("dial errors of the live backend = %v, want 0", v)
	}
	if t.Failed() {
		var names []string
		for _, s := range samples {
			if strings.HasPrefix(s.Name, "popgate_") {
				names = append(names, fmt.Sprintf("%s%v %v", s.Name, s.Labels, s.Value))
			}
		}
		t.Logf("popgate samples:\n%s", strings.Join(names, "\n"))
	}

	// Without the dead backend, health is back to ok (and 200).
	opsWriteConfig(t, p, fmt.Sprintf("listener \"live\" {\n  address = %q\n}\n%smetrics {\n  address = %q\n}\n",
		live, opsBackendA(t), metricsAddr))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	opsWaitLogCount(t, p, "configuration reloaded", 2, 10*time.Second)
	if code, h := opsGetHealth(t, metricsAddr); code != http.StatusOK || h.Status != "ok" || len(h.Backends) != 1 || !h.Backends["main"].Reachable {
		t.Errorf("/healthz after removing the dead backend: HTTP %d %+v, want 200 ok with main reachable", code, h)
	}
	// popgate logs "configuration reloaded" just before it counts the
	// reload: poll (bounded) for the count.
	if v := opsWaitMetric(t, metricsAddr, "popgate_reloads_total", map[string]string{"result": "ok"}, 2); v != 2 {
		t.Errorf("popgate_reloads_total{result=ok} = %v after two reloads, want 2", v)
	}
}

// opsWaitMetric polls /metrics (up to 10 s) until the sum of the samples
// of name with labels reaches min, and returns the last value seen.
func opsWaitMetric(t *testing.T, addr, name string, labels map[string]string, min float64) float64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, _ := opsValue(opsScrape(t, addr), name, labels)
		if v >= min || time.Now().After(deadline) {
			return v
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opsWaitLogCount waits until popgate's output holds substr at least n
// times.
func opsWaitLogCount(t *testing.T, p *Popgate, substr string, n int, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s, changed := p.logs.snapshot()
		if strings.Count(s, substr) >= n {
			return s
		}
		select {
		case <-changed:
		case <-p.Done():
			t.Fatalf("popgate exited without logging %q %d times", substr, n)
		case <-timer.C:
			t.Fatalf("popgate did not log %q %d times within %v; output:\n%s", substr, n, timeout, s)
		}
	}
}

// TestOpsSessionsOpenGauge checks that a connection refused by
// max_sessions_per_ip is counted as throttled and leaves the session
// gauge and counter alone (it once drove popgate_sessions_open negative).
func TestOpsSessionsOpenGauge(t *testing.T) {
	tiny, metricsAddr := freePort(t), freePort(t)
	opsStart(t, fmt.Sprintf(`
listener "tiny" {
  address = %q
  limits {
    max_sessions_per_ip = 1
  }
}
%s
metrics {
  address = %q
}
`, tiny, opsBackendA(t), metricsAddr))
	first := dialPOP(t, tiny)
	for i := 0; i < 3; i++ {
		if c, err := tryDialPOP(tiny, nil); err == nil {
			c.Close()
			t.Fatal("connection over max_sessions_per_ip = 1 was greeted")
		}
	}
	opsCmdOK(t, first, "QUIT")
	opsReadToEOF(t, first, 10*time.Second)
	var samples []opsSample
	for deadline := time.Now().Add(10 * time.Second); ; {
		samples = opsScrape(t, metricsAddr)
		if ended, _ := opsValue(samples, "popgate_sessions_total", map[string]string{"listener": "tiny", "reason": "quit"}); ended >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the session that quit is not counted after 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	open, _ := opsValue(samples, "popgate_sessions_open", map[string]string{"listener": "tiny"})
	ended, _ := opsValue(samples, "popgate_sessions_total", map[string]string{"listener": "tiny"})
	throttled, _ := opsValue(samples, "popgate_throttled_total", map[string]string{"listener": "tiny", "reason": "max-sessions-per-ip"})
	if open != 0 || ended != 1 || throttled != 3 {
		t.Errorf("after one session and three refused connections: sessions_open = %v (want 0), sessions_total = %v (want 1), throttled = %v (want 3)", open, ended, throttled)
	}
}
