//go:build integration

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds of the popgate process life cycle.
const (
	readyTimeout = 15 * time.Second // listeners must accept within this
	stopTimeout  = 10 * time.Second // SIGTERM grace before SIGKILL
)

// build is the once-per-test-binary build of popgate.
var build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

// buildPopgate builds the popgate binary (package main at the repository
// root) once per test binary and returns its path. $POPGATE_IT_BIN names a
// prebuilt binary instead; POPGATE_IT_RACE=1 builds with -race.
func buildPopgate(t testing.TB) string {
	t.Helper()
	if bin := os.Getenv("POPGATE_IT_BIN"); bin != "" {
		return bin
	}
	build.once.Do(func() {
		build.dir, build.err = os.MkdirTemp("", "popgate-it-bin")
		if build.err != nil {
			return
		}
		build.path = filepath.Join(build.dir, "popgate")
		args := []string{"build", "-o", build.path}
		if os.Getenv("POPGATE_IT_RACE") == "1" {
			args = append(args, "-race")
		}
		cmd := exec.Command("go", append(args, ".")...)
		cmd.Dir = ".." // the repository root: tests run in ./integration
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build popgate: %w\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatalf("buildPopgate: %v", build.err)
	}
	return build.path
}

// cleanupBuild removes the built binary; TestMain calls it after the run.
func cleanupBuild() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// Popgate is a running popgate process, stopped at test cleanup.
type Popgate struct {
	// Cmd is the process; do not Wait on it (Done and ExitErr do).
	Cmd *exec.Cmd
	// ConfigPath is the configuration file the process was started with.
	ConfigPath string
	// Dir is the process's working directory, a per-test temporary directory.
	Dir string

	logs    *logBuffer
	done    chan struct{}
	exitErr error
}

// startPopgate writes configHCL to a temporary file and starts
// `popgate run -config FILE` in that file's directory, then waits until
// every address in waitAddrs accepts TCP connections; failure is fatal.
// The process gets SIGTERM (then SIGKILL after 10 s) at cleanup; its
// output is logged when the test failed.
func startPopgate(t testing.TB, configHCL string, waitAddrs ...string) *Popgate {
	t.Helper()
	p, err := tryStartPopgate(t, configHCL, waitAddrs...)
	if err != nil {
		t.Fatalf("popgate not ready: %v\noutput:\n%s", err, p.Logs())
	}
	return p
}

// tryStartPopgate is startPopgate that returns an error instead of failing
// when the process exits or the addresses do not accept connections in
// time, for tests of start-up failures (then see Logs and ExitErr). Only a
// failure to write the config or to execute the binary is fatal.
func tryStartPopgate(t testing.TB, configHCL string, waitAddrs ...string) (*Popgate, error) {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "popgate.hcl")
	if err := os.WriteFile(cfg, []byte(configHCL), 0o600); err != nil {
		t.Fatalf("startPopgate: %v", err)
	}
	p, err := startProcess(t, dir, buildPopgate(t), []string{"run", "-config", cfg}, nil, waitAddrs)
	p.ConfigPath = cfg
	return p, err
}

// startProcess starts bin with args in dir (with env added to the test's
// environment), captures its output, registers the stop at cleanup and
// waits for waitAddrs. Failing to execute bin is fatal; not becoming ready
// is returned as an error.
func startProcess(t testing.TB, dir, bin string, args, env, waitAddrs []string) (*Popgate, error) {
	t.Helper()
	p := &Popgate{Dir: dir, logs: newLogBuffer(), done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Dir = dir
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout = p.logs
	p.Cmd.Stderr = p.logs
	if err := p.Cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		p.exitErr = p.Cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("stopping popgate: %v", err)
		}
		if t.Failed() {
			t.Logf("popgate output:\n%s", p.Logs())
		}
	})
	for _, addr := range waitAddrs {
		if err := p.waitListening(addr); err != nil {
			return p, err
		}
	}
	return p, nil
}

// waitListening polls addr until it accepts a connection, the process
// exits, or readyTimeout passes.
func (p *Popgate) waitListening(addr string) error {
	deadline := time.Now().Add(readyTimeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		select {
		case <-p.done:
			return fmt.Errorf("process exited (%v) before %s accepted connections", p.exitErr, addr)
		case <-time.After(25 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not accept connections within %v: %w", addr, readyTimeout, err)
		}
	}
}

// Logs returns everything the process wrote to stdout and stderr so far.
func (p *Popgate) Logs() string { return p.logs.String() }

// Signal sends sig to the process.
func (p *Popgate) Signal(sig os.Signal) error {
	if err := p.Cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("signal popgate: %w", err)
	}
	return nil
}

// Done is closed when the process has exited.
func (p *Popgate) Done() <-chan struct{} { return p.done }

// ExitErr is the process's exit status (nil for exit code 0); valid after
// Done is closed.
func (p *Popgate) ExitErr() error {
	<-p.done
	return p.exitErr
}

// WaitExit waits up to timeout for the process to exit on its own and
// returns its exit error; it fails the test on timeout.
func (p *Popgate) WaitExit(t testing.TB, timeout time.Duration) error {
	t.Helper()
	select {
	case <-p.done:
		return p.exitErr
	case <-time.After(timeout):
		t.Fatalf("popgate still running after %v", timeout)
		return nil
	}
}

// WaitLog waits up to timeout until the process output contains substr and
// returns the output; it fails the test on timeout.
func (p *Popgate) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		s, changed := p.logs.snapshot()
		if strings.Contains(s, substr) {
			return s
		}
		select {
		case <-changed:
		case <-p.done:
			if s := p.Logs(); strings.Contains(s, substr) {
				return s
			}
			t.Fatalf("popgate exited (%v) without logging %q; output:\n%s", p.exitErr, substr, p.Logs())
		case <-timer.C:
			t.Fatalf("popgate did not log %q within %v; output:\n%s", substr, timeout, p.Logs())
		}
	}
}

// stop sends SIGTERM, waits stopTimeout, then SIGKILLs. An exit caused by
// our SIGTERM is not an error; a process that needed SIGKILL is.
func (p *Popgate) stop() error {
	select {
	case <-p.done:
		return nil
	default:
	}
	if err := p.Cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGTERM: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := p.Cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("SIGKILL: %w", err)
	}
	<-p.done
	return fmt.Errorf("popgate ignored SIGTERM for %v and was killed", stopTimeout)
}

// logBuffer is a goroutine-safe output buffer that announces writes.
type logBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func newLogBuffer() *logBuffer { return &logBuffer{changed: make(chan struct{})} }

// Write appends to the buffer and wakes waiters.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := b.buf.Write(p)
	close(b.changed)
	b.changed = make(chan struct{})
	return n, err
}

// String returns the buffer's contents.
func (b *logBuffer) String() string {
	s, _ := b.snapshot()
	return s
}

// snapshot returns the contents and a channel closed at the next write.
func (b *logBuffer) snapshot() (string, <-chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String(), b.changed
}

// runHelper runs the test binary as a stand-in server for the harness's
// own tests, when POPGATE_IT_HELPER=listen:ADDR is set: it listens on ADDR,
// prints "listening on ADDR", and exits 0 on SIGTERM. It returns the exit
// code.
func runHelper(mode string) int {
	addr, found := strings.CutPrefix(mode, "listen:")
	if !found {
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		return 2
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		return 1
	}
	fmt.Println("listening on", ln.Addr())
	<-sig
	fmt.Println("terminating")
	ln.Close()
	return 0
}
