package main

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func parseCommon(t *testing.T, args ...string) *common {
	t.Helper()
	c := newCommon("test", "", 1, 0, false)
	if err := c.parse(args, 1); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return c
}

var fourTargets = []string{
	"-target", "direct=127.0.0.1:1", "-target", "popgate=127.0.0.1:2",
	"-target", "popgate-audit=127.0.0.1:3", "-target", "haproxy=127.0.0.1:4",
}

func TestSubjectsVersusAndAuditFlags(t *testing.T) {
	c := parseCommon(t, append(fourTargets, "-subject", "popgate, popgate-audit", "-versus", "haproxy",
		"-audit", "popgate-audit=popgate")...)
	if !c.isSubject("popgate") || !c.isSubject("popgate-audit") || c.isSubject("haproxy") {
		t.Fatalf("subjects %q", c.subjects)
	}
	if c.unaudited(2) != 1 || c.unaudited(1) != -1 {
		t.Fatalf("unaudited(2) = %d, unaudited(1) = %d", c.unaudited(2), c.unaudited(1))
	}
	for _, bad := range [][]string{
		{"-versus", "nginx"},
		{"-audit", "popgate-audit=nothing"},
		{"-audit", "popgate=popgate"},
		{"-audit-file", "/tmp/x"},
	} {
		c := newCommon("test", "", 1, 0, false)
		if err := c.parse(append(append([]string{}, fourTargets...), bad...), 1); err == nil {
			t.Errorf("parse accepted %q", bad)
		}
	}
}

func TestAddWithRatiosGoals(t *testing.T) {
	c := parseCommon(t, append(fourTargets, "-subject", "popgate,popgate-audit", "-versus", "haproxy",
		"-audit", "popgate-audit=popgate")...)
	res := c.result("throughput", "x/s")
	samples := [][]float64{{100, 100}, {95, 91}, {50, 50}, {80, 80}}
	c.addWithRatios(res, samples, "t", ratioGoals{baseline: 0.9, versus: 1, audit: 0.95})
	want := map[string]bool{
		"t popgate/direct":                     true,  // 0.93
		"t popgate-audit/direct":               false, // 0.5
		"t popgate/haproxy":                    true,  // 1.16
		"t popgate-audit/haproxy":              false, // 0.63
		"t audit on/off popgate-audit/popgate": false, // 0.53
	}
	if len(res.Goals) != len(want) {
		t.Fatalf("goals %+v", res.Goals)
	}
	for _, g := range res.Goals {
		pass, ok := want[g.Name]
		if !ok || g.Pass != pass {
			t.Errorf("goal %q pass=%v (value %v), want present and pass=%v", g.Name, g.Pass, g.Value, pass)
		}
	}
	// Without goals the ratios are still reported.
	res = c.result("throughput", "x/s")
	c.addWithRatios(res, samples, "t", ratioGoals{})
	if len(res.Goals) != 0 || len(res.Derived) != 3+2+1 {
		t.Fatalf("%d goals, %d derived series", len(res.Goals), len(res.Derived))
	}
}

func TestLineCounter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(path, []byte("old\nold\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	lc, err := newLineCounter(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(strings.Repeat("record\n", 5) + "torn")
	if n, err := lc.count(); err != nil || n != 5 {
		t.Fatalf("count = %d, %v; want 5", n, err)
	}
	f.WriteString(" end\n")
	if n, err := lc.count(); err != nil || n != 1 {
		t.Fatalf("count = %d, %v; want 1", n, err)
	}
	var none *lineCounter
	if n, err := none.count(); n != 0 || err != nil {
		t.Fatalf("nil counter: %d, %v", n, err)
	}
}

func TestCPUSecondsOfSelf(t *testing.T) {
	pid := os.Getpid()
	a, err := cpuSeconds(pid)
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i
	}
	_ = x
	b, err := cpuSeconds(pid)
	if err != nil || b < a {
		t.Fatalf("CPU went from %v to %v (%v)", a, b, err)
	}
	if s, err := statSeconds(pid); err != nil || s > b+0.05 {
		t.Fatalf("stat says %v, schedstat %v (%v)", s, b, err)
	}
}

func TestCheckLoopbackURL(t *testing.T) {
	for u, ok := range map[string]bool{
		"http://127.0.0.1:6060/debug/pprof/heap": true,
		"http://[::1]:6060/x":                    true,
		"https://127.0.0.1:6060/x":               false,
		"http://localhost:6060/x":                false,
		"http://10.0.0.1:6060/x":                 false,
	} {
		if err := checkLoopbackURL(u); (err == nil) != ok {
			t.Errorf("checkLoopbackURL(%q) = %v, want ok=%v", u, err, ok)
		}
	}
}

func TestFloorSessionGreetsAndRefuses(t *testing.T) {
	client, server := net.Pipe()
	done := make(chan struct{})
	go func() {
		floorSession(server, nil)
		close(done)
	}()
	c := &conn{nc: client, r: bufio.NewReader(client), w: bufio.NewWriter(client), timeout: 5 * time.Second}
	if g, err := c.status(); err != nil || g != "+OK floor" {
		t.Fatalf("greeting %q, %v", g, err)
	}
	if err := probeCAPA(c); err != nil {
		t.Fatalf("CAPA: %v", err)
	}
	client.Close()
	<-done
}
