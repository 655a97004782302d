//go:build integration

package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv("POPGATE_IT_HELPER"); ok {
		os.Exit(runHelper(mode))
	}
	code := m.Run()
	cleanupBuild()
	os.Exit(code)
}

// envCache holds the parsed env file; start.sh rewrites it only between runs.
var envCache struct {
	sync.Mutex
	m map[string]string
}

// itDir is the run directory of the integration environment.
func itDir() string {
	if d := os.Getenv("POPGATE_IT_DIR"); d != "" {
		return d
	}
	return "/tmp/popgate-it"
}

// itEnv returns the KEY=value pairs start.sh wrote to $POPGATE_IT_DIR/env.
// A missing or incomplete env file is fatal, in CI and elsewhere: these
// tests only run with the integration build tag, on purpose.
func itEnv(t testing.TB) map[string]string {
	t.Helper()
	envCache.Lock()
	defer envCache.Unlock()
	if envCache.m != nil {
		return envCache.m
	}
	path := filepath.Join(itDir(), "env")
	m, err := readEnvFile(path)
	if err == nil && m["POP3_PORT"] == "" {
		err = errors.New("it has no POP3_PORT (environment stopped?)")
	}
	if err != nil {
		where := "outside CI"
		if os.Getenv("CI") != "" {
			where = "in CI"
		}
		t.Fatalf("integration environment missing (%s): %s: %v; run `bash integration/setup.sh && bash integration/start.sh` (or `make integration`)", where, path, err)
	}
	envCache.m = m
	return m
}

// readEnvFile parses KEY=value lines; blank lines and # comments are skipped.
func readEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open env file: %w", err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("env file %s: malformed line %q", path, line)
		}
		m[k] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env file: %w", err)
	}
	return m, nil
}

// envValue returns one value of the environment; a missing key is fatal.
func envValue(t testing.TB, key string) string {
	t.Helper()
	v, ok := itEnv(t)[key]
	if !ok || v == "" {
		t.Fatalf("integration env has no %s: rerun integration/start.sh", key)
	}
	return v
}

// itPassword returns the password of user on Dovecot instance "a" or "b",
// read from that instance's passwd-file (the single source of truth is
// integration/mkmail/users.go).
func itPassword(t testing.TB, instance, user string) string {
	t.Helper()
	key := map[string]string{"a": "DOVECOT_PASSWD", "b": "DOVECOTB_PASSWD"}[instance]
	if key == "" {
		t.Fatalf("itPassword: unknown instance %q", instance)
	}
	data, err := os.ReadFile(envValue(t, key))
	if err != nil {
		t.Fatalf("itPassword: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		name, rest, _ := strings.Cut(line, ":")
		if name != user {
			continue
		}
		pw, _, _ := strings.Cut(strings.TrimPrefix(rest, "{PLAIN}"), ":")
		return pw
	}
	t.Fatalf("itPassword: instance %s has no user %q", instance, user)
	return ""
}

// seedUser replaces the mailbox of user on instance A with a fresh copy of
// its template (see integration/mkmail). Open sessions of user on A and C
// (which serves A's mailboxes) are ended first with doveadm kick, since a
// session left open would write into the new mailbox.
func seedUser(t testing.TB, user string) {
	t.Helper()
	seedInstance(t, "a", "MAIL_ROOT", user, "DOVECOT_CONF", "DOVECOTC_CONF")
}

// seedUserB is seedUser for instance B.
func seedUserB(t testing.TB, user string) {
	t.Helper()
	seedInstance(t, "b", "MAIL_ROOT_B", user, "DOVECOTB_CONF")
}

func seedInstance(t testing.TB, instance, rootKey, user string, confKeys ...string) {
	t.Helper()
	args := []string{"seed", "-instance", instance,
		"-root", envValue(t, rootKey), "-templates", envValue(t, "TEMPLATE_DIR"),
		"-uid", envValue(t, "MAIL_UID"), "-gid", envValue(t, "MAIL_GID")}
	for _, k := range confKeys {
		args = append(args, "-dovecot-conf", envValue(t, k))
	}
	cmd := exec.Command(envValue(t, "MKMAIL"), append(args, user)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("seed %s on %s: %v\n%s", user, instance, err, out)
	}
}

// eicarHalves are the two halves of the EICAR anti-virus test string, kept
// apart so no file in the repository carries the string itself.
var eicarHalves = [2]string{`X5O!P%@AP[4\PZX54(P^)7CC)7}$`, `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`}

// eicar returns the 68-byte EICAR test string, assembled at run time.
func eicar() string { return eicarHalves[0] + eicarHalves[1] }

// freePort returns "127.0.0.1:N" for a port that was free a moment ago.
func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("freePort: %v", err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatalf("freePort: %v", err)
	}
	return addr
}

// maildirFiles returns the paths of user's messages under mail root root
// (MAIL_ROOT or MAIL_ROOT_B) in POP3 order: file names start with
// increasing timestamps, and Dovecot only appends flags to them.
func maildirFiles(t testing.TB, root, user string) []string {
	t.Helper()
	var paths []string
	for _, sub := range []string{"cur", "new"} {
		dir := filepath.Join(root, user, "Maildir", sub)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("maildirFiles: %v", err)
		}
		for _, e := range entries {
			if !e.IsDir() {
				paths = append(paths, filepath.Join(dir, e.Name()))
			}
		}
	}
	sort.Slice(paths, func(i, j int) bool { return filepath.Base(paths[i]) < filepath.Base(paths[j]) })
	return paths
}

// maildirMessages returns the contents of user's message files, in POP3
// order. Mind the 50 MiB message of user big.
func maildirMessages(t testing.TB, root, user string) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range maildirFiles(t, root, user) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("maildirMessages: %v", err)
		}
		out = append(out, b)
	}
	return out
}

// expectedRETR returns the un-stuffed body a RETR of a message stored as
// file must yield: the generator writes CRLF line ends, and Dovecot ends a
// message that lacks a final line end with CRLF.
func expectedRETR(file []byte) []byte {
	out := append([]byte(nil), file...)
	if len(out) > 0 && out[len(out)-1] != '\n' {
		out = append(out, '\r', '\n')
	}
	return out
}

// logWatch follows a log file from the offset it had when created.
type logWatch struct {
	path string
	off  int64
}

// watchLog starts following path (e.g. envValue(t, "DOVECOT_LOG")): Wait
// only sees lines written after this call.
func watchLog(t testing.TB, path string) *logWatch {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("watchLog: %v", err)
	}
	return &logWatch{path: path, off: st.Size()}
}

// Wait polls the log (every 20 ms, up to timeout) until text written since
// watchLog contains substr, and returns that text. Polling is the only
// signal a daemon's log file offers.
func (w *logWatch) Wait(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		s := w.Since(t)
		if strings.Contains(s, substr) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("log %s: no %q within %v; new text:\n%s", w.path, substr, timeout, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Since returns the text written to the log since watchLog.
func (w *logWatch) Since(t testing.TB) string {
	t.Helper()
	f, err := os.Open(w.path)
	if err != nil {
		t.Fatalf("logWatch: %v", err)
	}
	defer f.Close()
	if _, err := f.Seek(w.off, 0); err != nil {
		t.Fatalf("logWatch: %v", err)
	}
	var b strings.Builder
	if _, err := bufio.NewReader(f).WriteTo(&b); err != nil {
		t.Fatalf("logWatch: %v", err)
	}
	return b.String()
}
