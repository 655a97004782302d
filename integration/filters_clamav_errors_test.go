//go:build integration

package integration

// The clamav filter when scanning fails: clamd unreachable, a message over
// max_size, and a private clamd killed in the middle of a scan; on_error
// decides between -ERR [SYS/TEMP] and delivery unscanned, and the message
// always stays on the server.

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestFilterClamAVUnreachable points the filter at a closed port: with
// on_error "reject" RETR is answered -ERR [SYS/TEMP] and the session goes
// on; with "pass" the message is delivered byte-identical. The audit trail
// records the scan as an error.
func TestFilterClamAVUnreachable(t *testing.T) {
	const msg = 6
	wantSum, wantSize := fltDirectSum(t, "alice", msg)
	closed := freePort(t) // nothing listens there
	for _, onError := range []string{"reject", "pass"} {
		t.Run(onError, func(t *testing.T) {
			trail := t.TempDir() + "/audit.jsonl"
			_, addr := fltStart(t, fltAudit(trail, false)+fltClamAV("tcp://"+closed, "replace", onError, `timeout = "5s"`))
			c := fltLogin(t, addr, "alice")
			status, sum, size := fltRETRSum(t, c, msg)
			switch onError {
			case "reject":
				if !strings.HasPrefix(status, "-ERR [SYS/TEMP]") {
					t.Errorf("RETR %d with clamd down = %q, want -ERR [SYS/TEMP]", msg, status)
				}
			case "pass":
				if sum != wantSum || size != wantSize {
					t.Errorf("RETR %d with clamd down: %q, %d octets; want the message byte-identical (%d octets)", msg, status, size, wantSize)
				}
			}
			if _, err := c.Cmd("NOOP"); err != nil {
				t.Errorf("NOOP after the scan failure: %v", err)
			}
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			scan := fltWaitRecord(t, trail, func(r fltRecord) bool { return r.str("event") == "scan" })
			if scan.str("verdict") != "error" || scan.str("error") == "" || scan.num("msg") != msg {
				t.Errorf("scan record %v: want verdict error for msg %d with the error's text", scan, msg)
			}
		})
	}
}

// TestFilterClamAVOversize sets max_size = "1KiB": a larger message is
// answered -ERR [SYS/TEMP] (on_error "reject") or delivered unscanned and
// byte-identical ("pass"), a smaller one is still scanned, and the audit
// trail records "skipped-oversize".
func TestFilterClamAVOversize(t *testing.T) {
	const small, large = 1, 4 // alice: a short message and the 998-octet line
	direct, _ := fltDirect(t, "alice", small, large)
	if len(direct[small]) >= 1024 || len(direct[large]) <= 1024 {
		t.Fatalf("alice's messages %d and %d are %d and %d octets; want one under and one over 1 KiB",
			small, large, len(direct[small]), len(direct[large]))
	}
	for _, onError := range []string{"reject", "pass"} {
		t.Run(onError, func(t *testing.T) {
			trail := t.TempDir() + "/audit.jsonl"
			_, addr := fltStart(t, fltAudit(trail, false)+fltClamAV(fltClamdAddr(t, "tcp"), "replace", onError, `max_size = "1KiB"`))
			c := fltLogin(t, addr, "alice")
			body, err := c.Multi(fmt.Sprintf("RETR %d", large))
			switch onError {
			case "reject":
				if !strings.HasPrefix(c.Last, "-ERR [SYS/TEMP]") {
					t.Errorf("RETR %d over max_size = %q, want -ERR [SYS/TEMP]", large, c.Last)
				}
			case "pass":
				if err != nil || !bytes.Equal(body, direct[large]) {
					t.Errorf("RETR %d over max_size: %q, %v, %d octets; want the message byte-identical", large, c.Last, err, len(body))
				}
			}
			body, err = c.Multi(fmt.Sprintf("RETR %d", small))
			if err != nil || !bytes.Equal(body, direct[small]) {
				t.Errorf("RETR %d under max_size: %v, %d octets; want the message", small, err, len(body))
			}
			if onError == "pass" {
				// The unscanned rest streams straight from the backend.
				bigSum, bigSize := fltBigSum(t)
				b := fltLogin(t, addr, "big")
				status, sum, size := fltRETRSum(t, b, 1)
				if sum != bigSum || size != bigSize {
					t.Errorf("big RETR 1 over max_size: %q, %d octets; want the message byte-identical", status, size)
				}
				b.Cmd("QUIT")
			}
			if _, err := c.Cmd("QUIT"); err != nil {
				t.Fatalf("QUIT: %v", err)
			}
			recs := fltSessionEnd(t, trail, c.Conn.LocalAddr().String())
			verdicts := map[int]string{}
			for _, r := range recs {
				if r.str("event") == "scan" {
					verdicts[int(r.num("msg"))] = r.str("verdict")
				}
			}
			if verdicts[large] != "skipped-oversize" || verdicts[small] != "clean" {
				t.Errorf("scan verdicts %v, want %d: skipped-oversize and %d: clean", verdicts, large, small)
			}
		})
	}
}

// fltPrivateClamd is a clamd of one test's own, started in the foreground
// from a copy of CLAMD_CONF with its own TCP port, pid file, log and
// temporary directory (sharing the signature database).
type fltPrivateClamd struct {
	addr   string // host:port
	tmpDir string // TemporaryDirectory: INSTREAM data lands here
	log    string
	done   chan struct{}
	pid    int
}

// fltStartClamd starts a private clamd and waits until it answers PING.
// It is killed at cleanup if still running.
func fltStartClamd(t *testing.T) *fltPrivateClamd {
	t.Helper()
	src, err := os.ReadFile(envValue(t, "CLAMD_CONF"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cd := &fltPrivateClamd{addr: freePort(t), tmpDir: dir + "/tmp", log: dir + "/clamd.log", done: make(chan struct{})}
	if err := os.Mkdir(cd.tmpDir, 0o700); err != nil {
		t.Fatal(err)
	}
	_, port, _ := strings.Cut(cd.addr, ":")
	own := map[string]string{
		"Foreground": "yes", "PidFile": dir + "/clamd.pid", "LogFile": cd.log,
		"TemporaryDirectory": cd.tmpDir, "TCPSocket": port, "TCPAddr": "127.0.0.1",
		"LocalSocket": "", "LocalSocketMode": "", "FixStaleSocket": "",
	}
	var conf strings.Builder
	for _, line := range strings.Split(string(src), "\n") {
		key, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		if _, replaced := own[key]; replaced {
			continue
		}
		conf.WriteString(line + "\n")
	}
	for k, v := range own {
		if v != "" {
			fmt.Fprintf(&conf, "%s %s\n", k, v)
		}
	}
	file := dir + "/clamd.conf"
	if err := os.WriteFile(file, []byte(conf.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := newLogBuffer()
	cmd := exec.Command("clamd", "-c", file)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start clamd: %v", err)
	}
	cd.pid = cmd.Process.Pid
	go func() { cmd.Wait(); close(cd.done) }()
	t.Cleanup(func() {
		select {
		case <-cd.done:
		default:
			cmd.Process.Kill()
			<-cd.done
		}
		if t.Failed() {
			logText, _ := os.ReadFile(cd.log)
			t.Logf("private clamd output:\n%s\nlog:\n%s", out.String(), logText)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		// Polling PING is the only readiness signal clamd gives.
		if r, err := clamdPing("tcp", cd.addr); err == nil && r == "PONG" {
			return cd
		}
		select {
		case <-cd.done:
			t.Fatalf("private clamd exited before answering PING:\n%s", out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("private clamd did not answer PING within 60 s")
		}
	}
}

// spooled returns the octets in the private clamd's temporary directory:
// clamd writes an INSTREAM there as it arrives.
func (cd *fltPrivateClamd) spooled() int64 {
	var n int64
	entries, _ := os.ReadDir(cd.tmpDir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// TestFilterClamAVKilledMidScan kills a private clamd (SIGKILL, by PID)
// while the 50 MiB message streams to it: the client gets -ERR [SYS/TEMP]
// (on_error "reject"), the session stays usable, and the message stays on
// the server.
func TestFilterClamAVKilledMidScan(t *testing.T) {
	cd := fltStartClamd(t)
	p, addr := fltStart(t, fltClamAV("tcp://"+cd.addr, "replace", "reject", `max_size = "60MiB"`))
	c := fltLogin(t, addr, "big")
	if err := c.Write([]byte("RETR 1\r\n")); err != nil {
		t.Fatal(err)
	}
	// The client sees nothing before the verdict; clamd's temporary file
	// growing is the sign that the body is streaming to it.
	const killAt = 1 << 20
	deadline := time.Now().Add(60 * time.Second)
	var seen int64
	for seen = cd.spooled(); seen < killAt; seen = cd.spooled() {
		if time.Now().After(deadline) {
			t.Fatalf("clamd received only %d octets within 60 s", seen)
		}
		time.Sleep(2 * time.Millisecond)
	}
	proc, err := os.FindProcess(cd.pid)
	if err != nil {
		t.Fatal(err)
	}
	if err := proc.Kill(); err != nil {
		t.Fatalf("kill clamd: %v", err)
	}
	<-cd.done
	t.Logf("killed clamd after it had received %d octets of %d", seen, 50<<20)
	if seen >= 50<<20 {
		t.Fatalf("clamd had the whole message (%d octets) before it was killed", seen)
	}
	status, err := c.ReadLine()
	if err != nil {
		t.Fatalf("RETR 1 answer: %v", err)
	}
	if !strings.HasPrefix(status, "-ERR [SYS/TEMP]") {
		t.Fatalf("RETR 1 with clamd killed mid-scan = %q, want -ERR [SYS/TEMP]", status)
	}
	if _, err := c.Cmd("NOOP"); err != nil {
		t.Errorf("NOOP after the failed scan: %v", err)
	}
	if line, err := c.Cmd("LIST 1"); err != nil || line != "+OK 1 "+strconv.Itoa(50<<20) {
		t.Errorf("LIST 1 after the failed scan = %q, %v", line, err)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Errorf("QUIT: %v", err)
	}
	p.WaitLog(t, "message not scanned", 5*time.Second)
	if n := fltStat(t, "big"); n != 1 {
		t.Errorf("big has %d messages after the session, want 1", n)
	}
}
