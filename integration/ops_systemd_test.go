//go:build integration

package integration

// systemd integration: the unit shipped in contrib/ (its settings, and
// systemd-analyze verify when installed) and sd_notify(3) readiness.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

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
