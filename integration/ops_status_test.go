//go:build integration

package integration

// The read-only status page, /status on the metrics listener: rendered by
// headless Chromium during a short load (a screenshot and the DOM as the
// browser built it), and the access rule off loopback (the admin token,
// as a bearer token or a query parameter; /metrics and /healthz stay
// open).

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"image/png"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// opsStatusUsers are the load users the page test reads (read only: no
// DELE, so they need no reseed).
var opsStatusUsers = []string{"load430", "load431", "load432", "load433"}

// opsChromium returns the chromium binary, or skips the test outside CI
// when it is not installed (CI installs it with integration/setup.sh).
func opsChromium(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err == nil {
		return bin
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("chromium is not installed in CI: integration/setup.sh installs it (%v)", err)
	}
	t.Skip("chromium is not installed (outside CI): run `bash integration/setup.sh` to install it")
	return ""
}

// opsChromiumRun runs headless Chromium on url with the extra arguments
// and returns its standard output.
func opsChromiumRun(t *testing.T, bin, url string, extra ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--no-first-run",
		"--user-data-dir=" + t.TempDir(), "--window-size=1280,900"}
	args = append(append(args, extra...), url)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\nstderr:\n%s", extra, err, stderr.String())
	}
	return stdout.Bytes()
}

// opsStatusCell returns the text of the element with id in the page, and
// whether there is one.
func opsStatusCell(page, id string) (string, bool) {
	m := regexp.MustCompile(`id="` + regexp.QuoteMeta(id) + `"[^>]*>([^<]*)<`).FindStringSubmatch(page)
	if m == nil {
		return "", false
	}
	return m[1], true
}

// opsGetStatus fetches /status at url with an optional bearer token and
// returns the HTTP status and body.
func opsGetStatus(t *testing.T, url, bearer string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(body)
}

// opsCheckPNG fails unless path is a 1280x900 PNG with something drawn on
// it: several colours and a share of pixels that are not background.
func opsCheckPNG(t *testing.T, path string) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("screenshot %s (%d bytes) is not a PNG: %v", path, len(data), err)
	}
	b := img.Bounds()
	if b.Dx() != 1280 || b.Dy() != 900 {
		t.Errorf("screenshot is %dx%d, want 1280x900", b.Dx(), b.Dy())
	}
	colours := map[[3]uint32]bool{}
	var ink int
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r>>8 < 200 || g>>8 < 200 || bl>>8 < 200 {
				ink++
			}
		}
	}
	share := float64(ink) / float64(b.Dx()*b.Dy())
	if len(colours) < 8 || share < 0.005 {
		t.Errorf("screenshot looks blank: %d colours, %.2f%% dark pixels (%d bytes)", len(colours), 100*share, len(data))
	}
	t.Logf("screenshot: %d bytes, %d colours, %.1f%% dark pixels", len(data), len(colours), 100*share)
}

// TestOpsStatusPage runs a short load through popgate (concurrent logins
// and scanned RETRs on one listener, a TLS session on another, a wrong
// password, a connection refused by a limit) and, with the sessions still
// open, renders /status in headless Chromium: the screenshot is a real
// picture, and the DOM as the browser built it shows the listeners, the
// backend and its health, the open sessions by listener and backend, the
// logins, the failure, the throttling, the scanner verdicts and the
// self-signed certificate's expiry.
func TestOpsStatusPage(t *testing.T) {
	bin := opsChromium(t)
	plain, secure, tiny, metricsAddr := freePort(t), freePort(t), freePort(t), freePort(t)
	auditPath := filepath.Join(t.TempDir(), "audit.jsonl")
	cfg := fmt.Sprintf(`state_dir = %q
listener "plain" {
  address = %q
  backend = "main"
  filters = ["audit", "clamav"]
}
listener "secure" {
  address = %q
  tls     = "implicit"
  backend = "main"
  filters = ["audit"]
}
listener "tiny" {
  address = %q
  backend = "main"
  filters = []
  limits {
    max_sessions = 1
  }
}
%s%sfilter "clamav" {
  address = "unix://%s"
}
metrics {
  address = %q
}
`, t.TempDir(), plain, secure, tiny, opsBackendA(t), fltAudit(auditPath, true), envValue(t, "CLAMD_UNIX"), metricsAddr)
	opsStart(t, cfg)

	// The load: every user logs in on "plain" and reads three messages,
	// concurrently, and stays connected.
	const retrs = 3
	passwords := map[string]string{}
	for _, user := range opsStatusUsers {
		passwords[user] = itPassword(t, "a", user)
	}
	var mu sync.Mutex
	var open []*popClient
	errs := make(chan error, len(opsStatusUsers)+1)
	var wg sync.WaitGroup
	for _, user := range opsStatusUsers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := tryDialPOP(plain, nil)
			if err != nil {
				errs <- fmt.Errorf("%s: dial: %w", user, err)
				return
			}
			mu.Lock()
			open = append(open, c)
			mu.Unlock()
			if err := c.Login(user, passwords[user]); err != nil {
				errs <- fmt.Errorf("%s: %w", user, err)
				return
			}
			for i := 1; i <= retrs; i++ {
				if _, err := c.Multi(fmt.Sprintf("RETR %d", i)); err != nil {
					errs <- fmt.Errorf("%s: RETR %d: %w", user, i, err)
					return
				}
			}
		}()
	}
	// A wrong password, at the same time (Dovecot answers it after about
	// two seconds), on a session that then quits.
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := tryDialPOP(plain, nil)
		if err != nil {
			errs <- fmt.Errorf("bad login: dial: %w", err)
			return
		}
		defer c.Close()
		if err := c.Login(opsStatusUsers[0], "not-the-password"); err == nil {
			errs <- fmt.Errorf("a wrong password was accepted")
			return
		}
		if _, err := c.Cmd("QUIT"); err != nil {
			errs <- fmt.Errorf("bad login: QUIT: %w", err)
			return
		}
		if _, err := coreReadToEOF(c, 10*time.Second); !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
			errs <- fmt.Errorf("bad login: waiting for the close: %w", err)
		}
	}()
	// One TLS session on "secure".
	tc, err := tryDialPOP(secure, &tls.Config{InsecureSkipVerify: true}) // popgate's self-signed certificate
	if err != nil {
		t.Fatalf("TLS listener: %v", err)
	}
	defer tc.Close()
	if err := tc.Login("alice", itPassword(t, "a", "alice")); err != nil {
		t.Fatalf("alice over TLS: %v", err)
	}
	// "tiny" takes one session; the second connection is refused.
	held := dialPOP(t, tiny)
	defer held.Close()
	if c, err := tryDialPOP(tiny, nil); err == nil {
		c.Close()
		t.Errorf("a second connection to the max_sessions = 1 listener was greeted")
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	defer func() {
		for _, c := range open {
			c.Close()
		}
	}()
	if t.Failed() {
		t.FailNow()
	}

	// The failed session ends asynchronously after its client saw EOF:
	// wait (bounded) until the page counts exactly the sessions still open.
	url := "http://" + metricsAddr + "/status"
	wantOpen := fmt.Sprint(len(opsStatusUsers) + 2)
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := opsGetStatus(t, url, "")
		n, _ := opsStatusCell(body, "sessions-total")
		if code == http.StatusOK && n == wantOpen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/status: HTTP %d, %q open sessions after 10 s, want %s; page:\n%s", code, n, wantOpen, body)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The browser: a screenshot, then the DOM it built.
	shot := filepath.Join(t.TempDir(), "status.png")
	opsChromiumRun(t, bin, url, "--screenshot="+shot, "--hide-scrollbars")
	opsCheckPNG(t, shot)
	if dir := os.Getenv("POPGATE_STATUS_SCREENSHOT"); dir != "" {
		// Kept for a person to look at.
		if data, err := os.ReadFile(shot); err == nil {
			os.WriteFile(filepath.Join(dir, "status.png"), data, 0o644)
		}
	}
	dom := string(opsChromiumRun(t, bin, url, "--dump-dom"))
	if !strings.Contains(dom, "<title>popgate status</title>") {
		t.Fatalf("--dump-dom did not return the status page:\n%s", dom)
	}
	users := fmt.Sprint(len(opsStatusUsers))
	for _, ck := range []struct{ id, want, what string }{
		{"sessions-total", wantOpen, "open sessions"},
		{"open:plain", users, "sessions open on listener plain"},
		{"open:secure", "1", "sessions open on listener secure"},
		{"open:tiny", "1", "sessions open on listener tiny"},
		{"sess:plain:main", users, "sessions of plain on backend main"},
		{"sess:secure:main", "1", "sessions of secure on backend main"},
		{"act:plain:sessions:15", fmt.Sprint(len(opsStatusUsers) + 1), "sessions started on plain"},
		{"act:plain:logins:15", users, "logins on plain"},
		{"act:plain:failures:15", "1", "failed logins on plain"},
		{"act:secure:logins:15", "1", "logins on secure"},
		{"act:tiny:throttled:15", "1", "connections throttled on tiny"},
		{"scan:plain:clean", fmt.Sprint(len(opsStatusUsers) * retrs), "clean verdicts on plain"},
		{"scan:plain:infected", "0", "infected verdicts on plain"},
		{"health", "ok", "overall health"},
	} {
		got, ok := opsStatusCell(dom, ck.id)
		if !ok || got != ck.want {
			t.Errorf("%s (#%s) = %q (present %v), want %q", ck.what, ck.id, got, ok, ck.want)
		}
	}
	for _, want := range []string{
		`<td>plain</td><td>` + plain + `</td>`,
		`<td>secure</td><td>` + secure + `</td><td>implicit</td>`,
		`<td>main</td><td>` + envValue(t, "POP3_ADDR") + `</td>`,
		`id="health:main"><span class="ok">reachable</span>`,
		`<td>self-signed</td>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the rendered page lacks %q", want)
		}
	}
	if m := regexp.MustCompile(`<td>self-signed</td><td>[^<]+</td>\s*<td class="ok">(\d+) days</td>`).FindStringSubmatch(dom); m == nil {
		t.Errorf("no expiry in days for the self-signed certificate")
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}
}

// TestOpsStatusToken checks the access rule off loopback: with the metrics
// listener on every interface, /status answers 401 without the admin
// token or with a wrong one and 200 with it (bearer or query), while
// /metrics and /healthz stay open; without a token configured the page is
// off (403). The token never reaches popgate's (debug) log.
func TestOpsStatusToken(t *testing.T) {
	const token = "st-9f2c-Tok3n-never-logged"
	base := func(t *testing.T, admin string) (*Popgate, string) {
		listen := freePort(t)
		_, port, _ := net.SplitHostPort(freePort(t))
		cfg := fmt.Sprintf(`state_dir = %q
log {
  level = "debug"
}
listener "plain" {
  address = %q
  backend = "main"
}
%s%smetrics {
  address = "0.0.0.0:%s"
}
`, t.TempDir(), listen, opsBackendA(t), admin, port)
		p := opsStart(t, cfg)
		return p, "http://127.0.0.1:" + port
	}

	t.Run("WithToken", func(t *testing.T) {
		p, url := base(t, fmt.Sprintf("admin {\n  token = %q\n}\n", token))
		for _, ck := range []struct {
			name, path, bearer string
			want               int
		}{
			{"no token", "/status", "", http.StatusUnauthorized},
			{"wrong bearer", "/status", token + "x", http.StatusUnauthorized},
			{"wrong query", "/status?token=nope", "", http.StatusUnauthorized},
			{"bearer", "/status", token, http.StatusOK},
			{"query", "/status?token=" + token, "", http.StatusOK},
			{"metrics without token", "/metrics", "", http.StatusOK},
			{"healthz without token", "/healthz", "", http.StatusOK},
		} {
			code, body := opsGetStatus(t, url+ck.path, ck.bearer)
			if code != ck.want {
				t.Errorf("%s: GET %s: HTTP %d, want %d", ck.name, ck.path, code, ck.want)
			}
			if ck.want == http.StatusOK && strings.HasPrefix(ck.path, "/status") && !strings.Contains(body, "<td>plain</td>") {
				t.Errorf("%s: 200 without the page", ck.name)
			}
			if strings.Contains(body, token) {
				t.Errorf("%s: the answer contains the token", ck.name)
			}
		}
		if strings.Contains(p.Logs(), token) {
			t.Errorf("popgate logged the admin token")
		}
	})

	t.Run("WithoutToken", func(t *testing.T) {
		p, url := base(t, "")
		if code, body := opsGetStatus(t, url+"/status", ""); code != http.StatusForbidden || !strings.Contains(body, "admin.token") {
			t.Errorf("/status off loopback without admin.token: HTTP %d %q, want 403 naming admin.token", code, body)
		}
		if code, _ := opsGetStatus(t, url+"/status?token=", "x"); code != http.StatusForbidden {
			t.Errorf("/status with a made-up token and none configured: HTTP %d, want 403", code)
		}
		if code, _ := opsGetStatus(t, url+"/metrics", ""); code != http.StatusOK {
			t.Errorf("/metrics: HTTP %d, want 200", code)
		}
		p.WaitLog(t, "the status page /status is off", 5*time.Second)
	})
}
