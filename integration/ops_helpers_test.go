//go:build integration

package integration

// Operations: /metrics and /healthz, SIGHUP reload, graceful stop, session
// limits, sd_notify readiness and the systemd unit in contrib/. The fault
// injection tests are in ops_faults_test.go. Tests that change mailboxes
// use load450..load499 only, reseeded first.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// opsBigName is the Maildir name under which opsSeedBig adds the 50 MiB
// message of user big to a load user's mailbox: it sorts after the ten
// messages of the load template, so it is message opsBigMsg.
const (
	opsBigName  = "1700000010.M11P1.popgate:2,"
	opsBigMsg   = 11
	opsLoadMsgs = 10
)

// opsStart starts popgate on configHCL without probing its listeners (a
// probe would open a session, and so a backend connection, of its own) and
// waits for the "popgate started" log line, written once every listener
// is bound.
func opsStart(t *testing.T, configHCL string) *Popgate {
	t.Helper()
	p := startPopgate(t, configHCL)
	p.WaitLog(t, "popgate started", readyTimeout)
	return p
}

// opsSeedBig reseeds load user user and adds the 50 MiB message of user big
// (a hard link to its template) as message opsBigMsg.
func opsSeedBig(t *testing.T, user string) {
	t.Helper()
	seedUser(t, user)
	src := filepath.Join(envValue(t, "TEMPLATE_DIR"), "big", "1700000000.M1P1.popgate:2,")
	dst := filepath.Join(envValue(t, "MAIL_ROOT"), user, "Maildir", "cur", opsBigName)
	if err := os.Link(src, dst); err != nil {
		t.Fatalf("add the 50 MiB message to %s: %v", user, err)
	}
}

// opsMailbox returns the message files of user on instance A by their
// Maildir base names (without the ":2,FLAGS" info Dovecot may change).
func opsMailbox(t *testing.T, user string) []string {
	t.Helper()
	var names []string
	for _, p := range maildirFiles(t, envValue(t, "MAIL_ROOT"), user) {
		name, _, _ := strings.Cut(filepath.Base(p), ":")
		names = append(names, name)
	}
	return names
}

// opsWantMailbox fails unless user still has n messages, the first one
// included (every fault test DELEs message 1 before it strikes).
func opsWantMailbox(t *testing.T, user string, n int) {
	t.Helper()
	got := opsMailbox(t, user)
	if len(got) != n || got[0] != "1700000000.M1P1.popgate" {
		t.Errorf("mailbox of %s holds %d messages %v; want %d, message 1 included (nothing deleted)", user, len(got), got, n)
	}
}

// opsDovecotEnd waits until Dovecot A logs the end of a mail session of
// user after w was started, and returns the reason text ("Connection
// closed top=... del=0/10 ...", "Logged out ..."). Only then is the mailbox
// state final: a session that QUITs expunges before it logs this.
func opsDovecotEnd(t *testing.T, w *logWatch, user string, timeout time.Duration) string {
	t.Helper()
	re := regexp.MustCompile(`pop3\(` + regexp.QuoteMeta(user) + `\)<[^>]*><[^>]*>: Info: Disconnected: ([^\n]*)`)
	deadline := time.Now().Add(timeout)
	for {
		s := w.Since(t)
		if m := re.FindStringSubmatch(s); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("Dovecot logged no end of %s's session within %v; new log:\n%s", user, timeout, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// opsNoQuit fails if Dovecot's end-of-session reason shows a QUIT (the
// UPDATE state) rather than a dropped connection.
func opsNoQuit(t *testing.T, reason string) {
	t.Helper()
	if strings.HasPrefix(reason, "Logged out") || !strings.Contains(reason, "del=0/") {
		t.Errorf("Dovecot session ended %q; want a closed connection without QUIT (del=0/N)", reason)
	}
}

// opsLogin dials addr and logs user of instance A in.
func opsLogin(t *testing.T, addr, user string) *popClient {
	t.Helper()
	c := dialPOP(t, addr)
	if err := c.Login(user, itPassword(t, "a", user)); err != nil {
		t.Fatalf("login %s via %s: %v", user, addr, err)
	}
	return c
}

// opsCmdOK sends a one-line command and fails unless the answer is +OK.
func opsCmdOK(t *testing.T, c *popClient, cmd string) string {
	t.Helper()
	line, err := c.Cmd(cmd)
	if err != nil {
		t.Fatalf("%s: %v", cmd, err)
	}
	return line
}

// opsReadToEOF reads whatever arrives until the peer closes, within
// timeout, and returns it; a timeout is fatal.
func opsReadToEOF(t *testing.T, c *popClient, timeout time.Duration) []byte {
	t.Helper()
	c.Conn.SetReadDeadline(time.Now().Add(timeout))
	var b bytes.Buffer
	_, err := io.Copy(&b, c.R)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("connection not closed within %v: %v (read %d octets)", timeout, err, b.Len())
	}
	return b.Bytes()
}

// opsHashBody reads a multi-line body to its terminator in constant memory
// and returns the SHA-256 and length of the un-stuffed octets.
func opsHashBody(c *popClient) ([32]byte, int64, error) {
	h := sha256.New()
	var n int64
	lineStart := true
	for {
		c.deadline()
		frag, err := c.R.ReadSlice('\n')
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return [32]byte{}, n, bodyErr(err)
		}
		whole := err == nil
		if lineStart {
			if whole && string(frag) == ".\r\n" {
				var sum [32]byte
				copy(sum[:], h.Sum(nil))
				return sum, n, nil
			}
			if frag[0] == '.' {
				frag = frag[1:]
			}
		}
		h.Write(frag)
		n += int64(len(frag))
		lineStart = whole
	}
}

// opsDirectHash fetches message msg of user straight from Dovecot A and
// returns its SHA-256 and length.
func opsDirectHash(t *testing.T, user string, msg int) ([32]byte, int64) {
	t.Helper()
	c := opsLogin(t, envValue(t, "POP3_ADDR"), user)
	opsCmdOK(t, c, fmt.Sprintf("RETR %d", msg))
	sum, n, err := opsHashBody(c)
	if err != nil {
		t.Fatalf("direct RETR %d of %s: %v", msg, user, err)
	}
	opsCmdOK(t, c, "QUIT")
	return sum, n
}

// opsBackendA is the backend block of Dovecot A, named "main".
func opsBackendA(t *testing.T) string {
	return fmt.Sprintf("backend \"main\" {\n  address = %q\n}\n", envValue(t, "POP3_ADDR"))
}

// opsWriteConfig rewrites p's configuration file in place.
func opsWriteConfig(t *testing.T, p *Popgate, configHCL string) {
	t.Helper()
	if err := os.WriteFile(p.ConfigPath, []byte(configHCL), 0o600); err != nil {
		t.Fatalf("rewrite config: %v", err)
	}
}

// opsRefused reports whether addr refuses connections, or accepts and
// closes them without a greeting.
func opsRefused(addr string) bool {
	c, err := tryDialPOP(addr, nil)
	if err != nil {
		var pe *popError
		return !errors.As(err, &pe)
	}
	c.Close()
	return false
}

// opsWaitRefused waits (bounded) until addr stops accepting clients.
func opsWaitRefused(t *testing.T, addr string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for !opsRefused(addr) {
		if time.Since(start) > within {
			t.Fatalf("%s still greets clients %v later", addr, within)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

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

// opsDeadAddr returns a loopback address nothing listens on.
func opsDeadAddr(t *testing.T) string { return freePort(t) }

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

// opsReloadConfig is a configuration with one listener at addr in front of
// backend "main" at backendAddr.
func opsReloadConfig(name, addr, backendAddr string) string {
	return fmt.Sprintf("listener %q {\n  address = %q\n  backend = \"main\"\n}\nbackend \"main\" {\n  address = %q\n}\n",
		name, addr, backendAddr)
}

func TestOpsReload(t *testing.T) {
	oneAddr, twoAddr := freePort(t), freePort(t)
	addrA, addrB := envValue(t, "POP3_ADDR"), envValue(t, "POP3B_ADDR")
	p := opsStart(t, opsReloadConfig("one", oneAddr, addrA))

	// A logged-in session on the old configuration, and what it sees.
	old := opsLogin(t, oneAddr, "load450")
	before, err := old.Multi("RETR 1")
	if err != nil {
		t.Fatalf("RETR 1 before the reload: %v", err)
	}
	if !bytes.Contains(before, []byte("Subject: load message 1\r\n")) {
		t.Fatalf("RETR 1 of load450 is not load message 1:\n%.300s", before)
	}

	// New configuration: listener "one" removed, "two" added, and the
	// backend moved to Dovecot B.
	opsWriteConfig(t, p, opsReloadConfig("two", twoAddr, addrB))
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.WaitLog(t, "configuration reloaded", 10*time.Second)
	p.WaitLog(t, "listener removed", time.Second)
	if !opsRefused(oneAddr) {
		t.Errorf("removed listener %s still greets clients", oneAddr)
	}
	c := dialPOP(t, twoAddr)
	if !strings.Contains(c.Greeting, "popgate-it B ready.") {
		t.Errorf("added listener greets %q, want Dovecot B's greeting", c.Greeting)
	}
	opsCmdOK(t, c, "QUIT")

	// The open session still talks to Dovecot A (B has no user load450).
	after, err := old.Multi("RETR 1")
	if err != nil || !bytes.Equal(after, before) {
		t.Errorf("RETR 1 after the reload: %v; same octets as before: %v", err, bytes.Equal(after, before))
	}
	if line := opsCmdOK(t, old, "STAT"); !strings.HasPrefix(line, fmt.Sprintf("+OK %d ", opsLoadMsgs)) {
		t.Errorf("STAT after the reload = %q, want %d messages (Dovecot A's load450)", line, opsLoadMsgs)
	}
	opsCmdOK(t, old, "QUIT")

	// An invalid configuration is refused; the running one stays.
	opsWriteConfig(t, p, opsReloadConfig("three", freePort(t), addrA)+"listener \"bad\" {\n  address = \"127.0.0.1:1\"\n  tls = \"startls\"\n}\n")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	logs := p.WaitLog(t, "reload refused", 10*time.Second)
	refusal := logs[strings.Index(logs, "reload refused"):]
	if !strings.Contains(refusal, "startls") || !strings.Contains(refusal, `in listener "bad"`) {
		t.Errorf("the refusal does not show the diagnostics (the bad value and its line):\n%s", refusal)
	}
	c = dialPOP(t, twoAddr)
	if !strings.Contains(c.Greeting, "popgate-it B ready.") {
		t.Errorf("after a refused reload listener two greets %q, want Dovecot B's greeting", c.Greeting)
	}
	opsCmdOK(t, c, "QUIT")
	if !opsRefused(oneAddr) {
		t.Errorf("listener one came back after a refused reload")
	}
	select {
	case <-p.Done():
		t.Fatalf("popgate exited after a refused reload: %v", p.ExitErr())
	default:
	}
}

func TestOpsGracefulStop(t *testing.T) {
	t.Run("SessionFinishes", func(t *testing.T) {
		seedUser(t, "load458")
		addr := freePort(t)
		p := opsStart(t, "shutdown_timeout = \"30s\"\n"+opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
		c := opsLogin(t, addr, "load458")
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		p.WaitLog(t, "shutting down", 5*time.Second)
		if d := opsWaitRefused(t, addr, 2*time.Second); d > time.Second {
			t.Errorf("the listener kept accepting for %v after SIGTERM", d)
		}
		if line := opsCmdOK(t, c, "STAT"); !strings.HasPrefix(line, "+OK 10 ") {
			t.Errorf("STAT while draining = %q", line)
		}
		if _, err := c.Multi("RETR 2"); err != nil {
			t.Errorf("RETR 2 while draining: %v", err)
		}
		select {
		case <-p.Done():
			t.Fatalf("popgate exited (%v) while a session was open", p.ExitErr())
		default:
		}
		opsCmdOK(t, c, "QUIT")
		if err := p.WaitExit(t, 10*time.Second); err != nil {
			t.Errorf("popgate exit after the last session quit: %v, want status 0", err)
		}
		p.WaitLog(t, "stopped", time.Second)
	})
	t.Run("DeadlineClosesWithoutQUIT", func(t *testing.T) {
		const user = "load451"
		seedUser(t, user)
		addr := freePort(t)
		p := opsStart(t, "shutdown_timeout = \"2s\"\n"+opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR")))
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := opsLogin(t, addr, user)
		opsCmdOK(t, c, "DELE 1")
		start := time.Now()
		if err := p.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		got := opsReadToEOF(t, c, 10*time.Second)
		closed := time.Since(start)
		if closed < 1500*time.Millisecond || closed > 5*time.Second {
			t.Errorf("idle session closed %v after SIGTERM, want about shutdown_timeout (2s)", closed)
		}
		t.Logf("client saw %q, then EOF %v after SIGTERM", got, closed.Round(time.Millisecond))
		if err := p.WaitExit(t, 10*time.Second); err != nil {
			t.Errorf("popgate exit: %v, want status 0", err)
		}
		p.WaitLog(t, "shutdown deadline reached", time.Second)
		opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
		opsWantMailbox(t, user, opsLoadMsgs)
	})
}

// opsLimitsConfig is one on-accept listener at addr in front of Dovecot A
// with the given limits block body.
func opsLimitsConfig(t *testing.T, addr, limits string) string {
	return fmt.Sprintf("listener \"pop3\" {\n  address = %q\n  limits {\n%s\n  }\n}\n%s", addr, limits, opsBackendA(t))
}

// opsDialFrom connects to addr from the loopback address src and reads
// the first line (the greeting, or a refusal).
func opsDialFrom(t *testing.T, addr, src string) (*popClient, string) {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, src, err)
	}
	c := newPopClient(conn)
	t.Cleanup(func() { c.Close() })
	line, err := c.ReadLine()
	if err != nil {
		t.Fatalf("first line from %s (client %s): %v", addr, src, err)
	}
	return c, line
}

// opsWantRefused fails unless line is a [SYS/TEMP] refusal and the
// connection is closed right after it.
func opsWantRefused(t *testing.T, c *popClient, line string) {
	t.Helper()
	if !strings.HasPrefix(line, "-ERR [SYS/TEMP] ") {
		t.Errorf("connection over the limit got %q, want -ERR [SYS/TEMP]", line)
	}
	if rest := opsReadToEOF(t, c, 5*time.Second); len(rest) != 0 {
		t.Errorf("after the refusal: %q, want EOF", rest)
	}
}

func TestOpsLimits(t *testing.T) {
	t.Run("MaxSessionsPerIP", func(t *testing.T) {
		addr := freePort(t)
		opsStart(t, opsLimitsConfig(t, addr, "    max_sessions_per_ip = 2"))
		for i := 0; i < 2; i++ {
			if _, line := opsDialFrom(t, addr, "127.0.0.1"); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("connection %d: %q", i+1, line)
			}
		}
		c, line := opsDialFrom(t, addr, "127.0.0.1")
		opsWantRefused(t, c, line)
		// Another address still gets in.
		if _, line := opsDialFrom(t, addr, "127.0.0.2"); !strings.HasPrefix(line, "+OK") {
			t.Errorf("a connection from 127.0.0.2 got %q, want the greeting", line)
		}
	})
	t.Run("MaxSessions", func(t *testing.T) {
		addr := freePort(t)
		opsStart(t, opsLimitsConfig(t, addr, "    max_sessions = 2\n    max_sessions_per_ip = 0"))
		for _, src := range []string{"127.0.0.2", "127.0.0.3"} {
			if _, line := opsDialFrom(t, addr, src); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("connection from %s: %q", src, line)
			}
		}
		c, line := opsDialFrom(t, addr, "127.0.0.4")
		opsWantRefused(t, c, line)
	})
	t.Run("PerListener", func(t *testing.T) {
		// docs/CONFIG.md: max_sessions and max_sessions_per_ip count the
		// sessions "on one listener".
		busy, total, perIP := freePort(t), freePort(t), freePort(t)
		opsStart(t, fmt.Sprintf(`
listener "busy" {
  address = %q
}
listener "total" {
  address = %q
  limits {
    max_sessions        = 2
    max_sessions_per_ip = 0
  }
}
listener "per-ip" {
  address = %q
  limits {
    max_sessions_per_ip = 2
  }
}
%s`, busy, total, perIP, opsBackendA(t)))
		for i := 0; i < 3; i++ {
			if _, line := opsDialFrom(t, busy, "127.0.0.1"); !strings.HasPrefix(line, "+OK") {
				t.Fatalf("connection %d to listener busy: %q", i+1, line)
			}
		}
		var bugs []string
		if _, line := opsDialFrom(t, total, "127.0.0.2"); !strings.HasPrefix(line, "+OK") {
			bugs = append(bugs, fmt.Sprintf("the first connection to a listener with max_sessions = 2 got %q", line))
		}
		if _, line := opsDialFrom(t, perIP, "127.0.0.1"); !strings.HasPrefix(line, "+OK") {
			bugs = append(bugs, fmt.Sprintf("the first connection to a listener with max_sessions_per_ip = 2 got %q", line))
		}
		if len(bugs) > 0 {
			t.Errorf("with 3 sessions open on another listener, %s: the limits count the sessions of every listener", strings.Join(bugs, "; "))
		}
	})
	t.Run("PreloginTimeout", func(t *testing.T) {
		addr := freePort(t)
		opsStart(t, opsLimitsConfig(t, addr, "    prelogin_timeout = \"1s\""))
		start := time.Now() // the timeout runs from the connection on
		c := dialPOP(t, addr)
		got := opsReadToEOF(t, c, 10*time.Second)
		d := time.Since(start)
		if d < 900*time.Millisecond || d > 3*time.Second {
			t.Errorf("idle pre-login connection closed %v after connecting, want 1-3 s", d)
		}
		if !bytes.HasPrefix(got, []byte("-ERR ")) || !bytes.HasSuffix(got, []byte("\r\n")) || bytes.Count(got, []byte("\n")) != 1 {
			t.Errorf("before closing popgate sent %q, want one -ERR line", got)
		}
	})
	t.Run("IdleTimeout", func(t *testing.T) {
		const user = "load452"
		seedUser(t, user)
		addr := freePort(t)
		p := opsStart(t, opsLimitsConfig(t, addr, "    idle_timeout = \"2s\""))
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := opsLogin(t, addr, user)
		// popgate's idle timer runs from when it read the last command,
		// not from when it sent the answer.
		start := time.Now()
		opsCmdOK(t, c, "DELE 1")
		got := opsReadToEOF(t, c, 15*time.Second)
		if d := time.Since(start); d < 1900*time.Millisecond || d > 5*time.Second {
			t.Errorf("idle session closed %v after its last command, want about 2 s", d)
		}
		if !bytes.HasPrefix(got, []byte("-ERR ")) || bytes.Count(got, []byte("\n")) != 1 {
			t.Errorf("before closing popgate sent %q, want one -ERR line", got)
		}
		p.WaitLog(t, "reason=timeout", 5*time.Second)
		opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
		opsWantMailbox(t, user, opsLoadMsgs)
	})
	t.Run("SlowClient", func(t *testing.T) {
		const user = "load453"
		opsSeedBig(t, user)
		addr := freePort(t)
		p := opsStart(t, opsLimitsConfig(t, addr, "    write_timeout = \"2s\""))
		w := watchLog(t, envValue(t, "DOVECOT_LOG"))
		c := opsLogin(t, addr, user)
		opsCmdOK(t, c, "DELE 1")
		start := time.Now()
		if err := c.Write([]byte(fmt.Sprintf("RETR %d\r\n", opsBigMsg))); err != nil {
			t.Fatal(err)
		}
		// The client reads nothing from here on, until popgate drops it.
		// (With a tiny receive buffer the kernel would take minutes to
		// deliver what popgate's closed socket still holds.)
		p.WaitLog(t, "reason=write-error", 30*time.Second)
		dropped := time.Since(start)
		got := opsReadToEOF(t, c, 30*time.Second)
		t.Logf("slow client dropped %v after its RETR; what it could still read: %d octets, then EOF", dropped.Round(time.Millisecond), len(got))
		if !bytes.HasPrefix(got, []byte("+OK")) || bytes.HasSuffix(got, []byte("\r\n.\r\n")) || len(got) >= 50<<20 {
			t.Errorf("the dropped client read %d octets starting %.20q, ending %q; want +OK and a body cut short, without the terminating dot",
				len(got), got, got[max(0, len(got)-8):])
		}
		opsNoQuit(t, opsDovecotEnd(t, w, user, 10*time.Second))
		opsWantMailbox(t, user, opsBigMsg)
	})
}

// opsUnitPath is the systemd unit shipped in contrib/.
const opsUnitPath = "../contrib/popgate.service"

// TestOpsSystemdUnitContents checks the unit's operational and hardening
// settings; it needs no systemd.
func TestOpsSystemdUnitContents(t *testing.T) {
	data, err := os.ReadFile(opsUnitPath)
	if err != nil {
		t.Fatal(err)
	}
	settings := map[string][]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "[") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("unit line %q is not KEY=VALUE", line)
			continue
		}
		settings[k] = append(settings[k], v)
	}
	want := map[string]string{
		"Type":                    "notify",
		"ExecStartPre":            "/usr/local/bin/popgate validate -config /etc/popgate/config.hcl",
		"ExecStart":               "/usr/local/bin/popgate run -config /etc/popgate/config.hcl",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"User":                    "popgate",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"StateDirectory":          "popgate",
		"LogsDirectory":           "popgate",
		"CapabilityBoundingSet":   "CAP_NET_BIND_SERVICE",
		"AmbientCapabilities":     "CAP_NET_BIND_SERVICE",
		"RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
		"LimitNOFILE":             "65536",
	}
	for k, v := range want {
		if got := settings[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want exactly %q", k, got, v)
		}
	}
	if sc := settings["SystemCallFilter"]; len(sc) == 0 || sc[0] != "@system-service" {
		t.Errorf("SystemCallFilter = %q, want @system-service first", sc)
	}
	// systemctl stop must wait longer than the default shutdown_timeout.
	stop, err := time.ParseDuration(strings.Join(settings["TimeoutStopSec"], "") + "s")
	if err != nil || stop <= 30*time.Second {
		t.Errorf("TimeoutStopSec = %q, want more than the default shutdown_timeout (30s)", settings["TimeoutStopSec"])
	}
}

// TestOpsSystemdUnitVerify runs systemd-analyze verify on the unit, with
// the popgate path pointing at the binary under test (verify insists that
// commands exist). systemd is not a test dependency: without
// systemd-analyze the test is skipped, in CI too.
func TestOpsSystemdUnitVerify(t *testing.T) {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed")
	}
	data, err := os.ReadFile(opsUnitPath)
	if err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(t.TempDir(), "popgate.service")
	if err := os.WriteFile(unit, bytes.ReplaceAll(data, []byte("/usr/local/bin/popgate"), []byte(buildPopgate(t))), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, analyze, "verify", unit).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) != 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestOpsSystemdNotify checks sd_notify(3) readiness: READY=1 once
// listening, RELOADING=1 then READY=1 around SIGHUP, STOPPING=1 on SIGTERM.
func TestOpsSystemdNotify(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "notify.sock")
	ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	next := func(want string) {
		t.Helper()
		buf := make([]byte, 4096)
		ln.SetReadDeadline(time.Now().Add(readyTimeout))
		n, err := ln.Read(buf)
		if err != nil {
			t.Fatalf("waiting for %q on NOTIFY_SOCKET: %v", want, err)
		}
		states := map[string]bool{}
		for _, l := range strings.Split(string(buf[:n]), "\n") {
			states[l] = true
		}
		if !states[want] {
			t.Fatalf("notify datagram %q, want %q", buf[:n], want)
		}
	}
	addr := freePort(t)
	cfg := filepath.Join(dir, "popgate.hcl")
	if err := os.WriteFile(cfg, []byte(opsReloadConfig("pop3", addr, envValue(t, "POP3_ADDR"))), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startProcess(t, dir, buildPopgate(t), []string{"run", "-config", cfg}, []string{"NOTIFY_SOCKET=" + sock}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.ConfigPath = cfg
	next("READY=1")
	// Ready means ready: the listener accepts at once.
	c := dialPOP(t, addr)
	opsCmdOK(t, c, "QUIT")
	if err := p.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	next("RELOADING=1")
	next("READY=1")
	p.WaitLog(t, "configuration reloaded", 5*time.Second)
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	next("STOPPING=1")
	if err := p.WaitExit(t, 10*time.Second); err != nil {
		t.Errorf("popgate exit after SIGTERM: %v, want status 0", err)
	}
}
