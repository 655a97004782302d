//go:build integration

package integration

// Redis killed under a running instance: logins go on under the local
// throttle, /healthz says degraded, one line is logged per change, and the
// shared state resumes when Redis is back.

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClusterRedisKilledAndRestarted(t *testing.T) {
	r := startRedis(t)
	a := clusterStart(t, "pg-a", r, fakePOP3(t), "limits {\n  max_sessions_per_user = 5\n}\n")
	a.waitRedis(t, "up")
	if code, h := a.health(t); code != http.StatusOK || h.Status != "ok" {
		t.Fatalf("/healthz with Redis up: %d %+v", code, h)
	}

	r.Kill()
	h := a.waitRedis(t, "down")
	if code, _ := a.health(t); code != http.StatusServiceUnavailable || !slices.Contains(h.Degraded, "cluster") {
		t.Fatalf("/healthz with Redis down: %d, degraded %v; want 503 naming cluster", code, h.Degraded)
	}
	start := time.Now()
	okLogin(t, a.Addr, "bob", fakePassword)
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("a login with Redis down took %v", d)
	}
	const user = "cluster-down-guess"
	first := failLogin(t, a.Addr, user)
	second := failLogin(t, a.Addr, user)
	if first < 400*time.Millisecond || second < 900*time.Millisecond {
		t.Fatalf("failures with Redis down answered after %v then %v: the local throttle is not counting", first, second)
	}
	m := scrape(t, a.Metrics)
	if !strings.Contains(m, "popgate_cluster_redis_up 0") {
		t.Fatal("popgate_cluster_redis_up is not 0 with Redis down")
	}
	if !strings.Contains(m, `popgate_cluster_fallbacks_total{op="throttle_fail"}`) ||
		strings.Contains(m, `popgate_cluster_fallbacks_total{op="throttle_fail"} 0`) {
		t.Fatal("popgate_cluster_fallbacks_total does not count the throttle's fallbacks")
	}

	r.Start()
	a.waitRedis(t, "up")
	if code, _ := a.health(t); code != http.StatusOK {
		t.Fatalf("/healthz after Redis came back: %d", code)
	}
	failLogin(t, a.Addr, "cluster-back-guess")
	if n := r.Cli("GET", "popgate:fail:user:cluster-back-guess"); n != "1" {
		t.Fatalf("after the restart Redis counts %q failures, want 1: the shared state did not resume", n)
	}
	logs := a.Logs()
	if n := strings.Count(logs, "Redis unreachable"); n != 1 {
		t.Fatalf("%d log lines say Redis is unreachable, want one per change:\n%s", n, logs)
	}
	if n := strings.Count(logs, "Redis reachable"); n != 2 {
		t.Fatalf("%d log lines say Redis is reachable, want 2 (start, recovery):\n%s", n, logs)
	}
}

// scrape returns the text of /metrics.
func scrape(t *testing.T, addr string) string {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
