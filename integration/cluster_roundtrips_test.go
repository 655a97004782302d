//go:build integration

package integration

// The Redis round trips of one successful login, counted by Redis itself
// (INFO commandstats), and the latency they add, from popgate's own
// histogram.

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// redisMonitor records what Redis receives (MONITOR) until stop, which
// returns the commands clients sent themselves: the round trips. Commands
// a script runs (MONITOR marks them "lua") and the instance's
// once-a-second PING are left out.
func redisMonitor(t *testing.T, r *RedisServer) (stop func() []string) {
	t.Helper()
	cmd := exec.Command("redis-cli", "-s", r.Sock, "MONITOR")
	out := newLogBuffer() // read while redis-cli writes
	cmd.Stdout = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// MONITOR answers OK once it is in place.
	deadline := time.Now().Add(5 * time.Second)
	for !strings.HasPrefix(out.String(), "OK") {
		if time.Now().After(deadline) {
			t.Fatal("redis-cli MONITOR did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return func() []string {
		time.Sleep(100 * time.Millisecond) // MONITOR's output trails the commands
		cmd.Process.Kill()
		cmd.Wait()
		var calls []string
		for _, line := range strings.Split(out.String(), "\n") {
			if !strings.Contains(line, "]") || strings.Contains(line, " lua]") || strings.Contains(strings.ToLower(line), `"ping"`) {
				continue
			}
			calls = append(calls, line)
		}
		return calls
	}
}

func TestClusterRedisRoundTripsPerLogin(t *testing.T) {
	r := startRedis(t)
	fake := fakePOP3(t)
	a := clusterStart(t, "pg-a", r, fake, "limits {\n  max_sessions_per_user = 3\n}\n")
	okLogin(t, a.Addr, "warmup", fakePassword) // connections and scripts in place
	stop := redisMonitor(t, r)
	c := dialPOP(t, a.Addr)
	if err := c.Login("dana@example.org", fakePassword); err != nil {
		t.Fatal(err)
	}
	calls := stop()
	if len(calls) != 2 || !strings.Contains(strings.ToLower(calls[0]), `"evalsha"`) || !strings.Contains(strings.ToLower(calls[1]), `"evalsha"`) {
		t.Fatalf("one successful login made %d Redis round trips, want 2 (EVALSHA: charge, then refund + lease):\n%s", len(calls), strings.Join(calls, "\n"))
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatal(err)
	}
	m := scrape(t, a.Metrics)
	for _, op := range []string{"throttle_fail", "login_succeed"} {
		sum := metricValue(m, `popgate_cluster_redis_seconds_sum{op="`+op+`"}`)
		count := metricValue(m, `popgate_cluster_redis_seconds_count{op="`+op+`"}`)
		if count < 1 {
			t.Fatalf("no %s calls in popgate_cluster_redis_seconds", op)
		}
		t.Logf("Redis %s: %.0f calls, mean %.3f ms", op, count, 1000*sum/count)
	}
}

// metricValue returns the value of the sample line that starts with
// series in the text of /metrics, or -1.
func metricValue(text, series string) float64 {
	for _, line := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}
