//go:build integration

package integration

// Real POP3 clients through the core relay: python3's poplib and curl
// fetch what a direct connection to Dovecot fetches.

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// corePoplibScript drives python3's poplib: user/pass_, stat, list, uidl,
// retr and top of every message, then for MODE=dele: dele 1, rset, dele 2,
// stat; then quit. It prints JSON; bodies are base64 of the lines joined
// with CRLF.
const corePoplibScript = `
import base64, json, os, poplib
c = poplib.POP3(os.environ["CORE_HOST"], int(os.environ["CORE_PORT"]), timeout=60)
out = {"welcome": c.getwelcome().decode("latin-1")}
c.user(os.environ["CORE_USER"])
c.pass_(os.environ["CORE_PASS"])
join = lambda lines: base64.b64encode(b"".join(l + b"\r\n" for l in lines)).decode()
count, size = c.stat()
out["stat"] = [count, size]
out["list"] = [l.decode() for l in c.list()[1]]
out["uidl"] = [l.decode() for l in c.uidl()[1]]
out["retr"] = [join(c.retr(i)[1]) for i in range(1, count + 1)]
out["top"] = [join(c.top(i, 0)[1]) for i in range(1, count + 1)]
if os.environ.get("CORE_MODE") == "dele":
    out["dele1"] = c.dele(1).decode()
    out["rset"] = c.rset().decode()
    out["dele2"] = c.dele(2).decode()
    out["stat2"] = list(c.stat())
out["quit"] = c.quit().decode()
print(json.dumps(out))
`

// corePoplibResult is the JSON corePoplibScript prints.
type corePoplibResult struct {
	Welcome string   `json:"welcome"`
	Stat    [2]int   `json:"stat"`
	List    []string `json:"list"`
	UIDL    []string `json:"uidl"`
	Retr    []string `json:"retr"`
	Top     []string `json:"top"`
	Dele1   string   `json:"dele1"`
	Rset    string   `json:"rset"`
	Dele2   string   `json:"dele2"`
	Stat2   [2]int   `json:"stat2"`
	Quit    string   `json:"quit"`
}

// corePoplib runs corePoplibScript against addr as user; the password
// travels in the environment, never in argv.
func corePoplib(t *testing.T, addr, user, mode string) corePoplibResult {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "python3", "-c", corePoplibScript)
	cmd.Env = append(os.Environ(), "CORE_HOST="+host, "CORE_PORT="+port, "CORE_USER="+user,
		"CORE_PASS="+itPassword(t, "a", user), "CORE_MODE="+mode)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python3 poplib against %s: %v\n%s", addr, err, stderr.String())
	}
	var res corePoplibResult
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("poplib output: %v\n%s", err, out)
	}
	return res
}

// coreDirectBodies returns the un-stuffed bodies of LIST, UIDL, RETR n and
// TOP n 0 for every message of user, fetched directly from Dovecot.
func coreDirectBodies(t *testing.T, user string) (list, uidl []byte, retr, top [][]byte) {
	t.Helper()
	d := coreDirect(t, user)
	var err error
	if list, err = d.Multi("LIST"); err != nil {
		t.Fatal(err)
	}
	if uidl, err = d.Multi("UIDL"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= coreStat(t, d); i++ {
		r, err := d.Multi(fmt.Sprintf("RETR %d", i))
		if err != nil {
			t.Fatal(err)
		}
		h, err := d.Multi(fmt.Sprintf("TOP %d 0", i))
		if err != nil {
			t.Fatal(err)
		}
		retr, top = append(retr, r), append(top, h)
	}
	return list, uidl, retr, top
}

func TestCorePoplib(t *testing.T) {
	px := coreStart(t, "")
	list, uidl, retr, top := coreDirectBodies(t, "alice")
	root := envValue(t, "MAIL_ROOT")
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			res := corePoplib(t, m.addr, "alice", "")
			if res.Stat[0] != 6 {
				t.Errorf("poplib stat: %v, want 6 messages", res.Stat)
			}
			if got, want := strings.Join(res.List, "|"), strings.Join(coreLines(list), "|"); got != want {
				t.Errorf("poplib list %q, direct %q", got, want)
			}
			if got, want := strings.Join(res.UIDL, "|"), strings.Join(coreLines(uidl), "|"); got != want {
				t.Errorf("poplib uidl %q, direct %q", got, want)
			}
			if len(res.Retr) != len(retr) || len(res.Top) != len(top) {
				t.Fatalf("poplib fetched %d/%d messages, direct %d", len(res.Retr), len(res.Top), len(retr))
			}
			for i := range retr {
				for _, c := range []struct {
					what string
					b64  string
					want []byte
				}{{"retr", res.Retr[i], retr[i]}, {"top", res.Top[i], top[i]}} {
					got, err := base64.StdEncoding.DecodeString(c.b64)
					if err != nil {
						t.Fatal(err)
					}
					if !bytes.Equal(got, c.want) {
						t.Errorf("poplib %s %d differs from the direct fetch: %s", c.what, i+1, coreDiff(got, c.want))
					}
				}
			}
			if !strings.HasPrefix(res.Quit, "+OK") {
				t.Errorf("poplib quit: %q", res.Quit)
			}
		})
		t.Run(m.name+"/dele", func(t *testing.T) {
			seedUser(t, "dele")
			w := watchLog(t, envValue(t, "DOVECOT_LOG"))
			res := corePoplib(t, m.addr, "dele", "dele")
			for what, v := range map[string]string{"dele 1": res.Dele1, "rset": res.Rset, "dele 2": res.Dele2, "quit": res.Quit} {
				if !strings.HasPrefix(v, "+OK") {
					t.Errorf("poplib %s: %q", what, v)
				}
			}
			if res.Stat2[0] != 4 {
				t.Errorf("poplib stat after dele 1, rset, dele 2: %v, want 4 messages", res.Stat2)
			}
			files := maildirMessages(t, root, "dele")
			if len(files) != 4 {
				t.Fatalf("dele has %d files after poplib's quit, want 4", len(files))
			}
			for i, n := range []int{1, 3, 4, 5} {
				if want := fmt.Sprintf("Subject: dele message %d\r\n", n); !bytes.Contains(files[i], []byte(want)) {
					t.Errorf("remaining file %d lacks %q", i+1, want)
				}
			}
			coreSettle(t, w, "dele", 1)
		})
	}
}

// coreCurl runs curl on url with credentials from a private netrc file
// and returns its output and the login command it used (e.g. "AUTH
// CRAM-MD5", "APOP", "USER"), taken from its verbose trace.
func coreCurl(t *testing.T, netrc, url string) ([]byte, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "-v", "--max-time", "50", "--netrc-file", netrc, url)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	login := ""
	if m := regexp.MustCompile(`(?m)^> (AUTH [A-Z0-9-]+|APOP|USER)`).FindStringSubmatch(stderr.String()); m != nil {
		login = m[1]
	}
	if err != nil {
		// The trace holds credentials: show only the protocol verbs.
		verbs := regexp.MustCompile(`(?m)^[<>*] .{0,40}`).FindAllString(stderr.String(), -1)
		t.Fatalf("curl %s: %v (login %q); trace start: %q", url, err, login, verbs[:min(len(verbs), 12)])
	}
	return out, login
}

func TestCoreCurl(t *testing.T) {
	px := coreStart(t, "")
	list, _, retr, _ := coreDirectBodies(t, "alice")
	netrc := filepath.Join(t.TempDir(), "netrc")
	if err := os.WriteFile(netrc, []byte("machine 127.0.0.1 login alice password "+itPassword(t, "a", "alice")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, m := range px.modes {
		t.Run(m.name, func(t *testing.T) {
			base := "pop3://" + m.addr + "/"
			out, login := coreCurl(t, netrc, base)
			if !bytes.Equal(out, list) {
				t.Errorf("curl LIST: %s", coreDiff(out, list))
			}
			switch m.name {
			case "after-auth": // popgate offers SASL PLAIN LOGIN and no APOP timestamp
				if login != "AUTH PLAIN" && login != "AUTH LOGIN" {
					t.Errorf("curl logged in with %q, want AUTH PLAIN or AUTH LOGIN", login)
				}
			case "on-accept": // Dovecot's mechanisms pass through
				if !strings.HasPrefix(login, "AUTH ") && login != "APOP" {
					t.Errorf("curl logged in with %q, want one of Dovecot's SASL mechanisms or APOP", login)
				}
			}
			t.Logf("curl logged in with %s", login)
			for i := range retr {
				out, _ := coreCurl(t, netrc, fmt.Sprintf("%s%d", base, i+1))
				if !bytes.Equal(out, retr[i]) {
					t.Errorf("curl RETR %d differs from the direct fetch: %s", i+1, coreDiff(out, retr[i]))
				}
			}
		})
	}
}
