package apop

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// rfc1939Timestamp is the greeting timestamp of RFC 1939 section 7's
// example; with the secret "tanstaaf" the digest is rfc1939Digest.
const (
	rfc1939Timestamp = "<1896.697170952@dbc.mtview.ca.us>"
	rfc1939Digest    = "c4c9334bac560ecc979e58001b3e22fb"
)

func TestAPOPDigestRFC1939Example(t *testing.T) {
	if got := hex.EncodeToString(apopDigest(rfc1939Timestamp, "tanstaaf")); got != rfc1939Digest {
		t.Fatalf("digest %s, want %s", got, rfc1939Digest)
	}
}

// independentDigest computes an APOP digest without the package's code.
func independentDigest(ts, secret string) string {
	sum := md5.Sum([]byte(ts + secret))
	return hex.EncodeToString(sum[:])
}

func TestAPOPTranslatesToUserPass(t *testing.T) {
	for _, tc := range []struct {
		name, line, user, secret string
	}{
		{"RFC 1939 example", "APOP mrose " + rfc1939Digest, "mrose", "tanstaaf"},
		{"upper-case hex", "APOP mrose " + strings.ToUpper(rfc1939Digest), "mrose", "tanstaaf"},
		{"password with colon and spaces", "APOP alice " + independentDigest(rfc1939Timestamp, "s3cret: with colon and space "),
			"alice", "s3cret: with colon and space "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t)
			srv := &server{pass: backendPasswords()}
			s := newSession(true, rfc1939Timestamp)
			ex := exchange(t, s, tc.line)
			if err := run(f, ex, srv); err != nil {
				t.Fatal(err)
			}
			want := []string{"USER " + tc.user, "PASS " + tc.secret}
			if got := srv.commands(); !slices.Equal(got, want) {
				t.Fatalf("backend saw %q, want %q", got, want)
			}
			if got := ex.Out.String(); got != "PASS "+tc.secret {
				t.Errorf("Out %q, want PASS for the session to send", got)
			}
			if !ex.Response.IsOK() || ex.Response.Text != "logged in" {
				t.Errorf("response %q, want the answer to PASS", ex.Response)
			}
			if ex.Command.String() != tc.line {
				t.Errorf("client command edited: %v", ex.Command)
			}
			// The session names an APOP login from the client's command
			// and records it from USER and PASS; the filter writes neither.
			if s.Login != (filters.Login{}) || ex.User != "" {
				t.Errorf("filter wrote login %+v, User %q", s.Login, ex.User)
			}
		})
	}
}

func TestAPOPFailuresLookAlike(t *testing.T) {
	cases := []struct{ name, line string }{
		{"wrong digest", "APOP mrose " + independentDigest(rfc1939Timestamp, "wrong")},
		{"unknown user", "APOP nobody " + independentDigest(rfc1939Timestamp, "tanstaaf")},
		{"other user's digest", "APOP tim " + rfc1939Digest},
		{"not hex", "APOP mrose " + strings.Repeat("z", 32)},
		{"short digest", "APOP mrose " + rfc1939Digest[:30]},
		{"digest of another timestamp", "APOP mrose " + independentDigest("<1.2@other>", "tanstaaf")},
	}
	var first parser.Response
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t)
			srv := &server{pass: backendPasswords()}
			s := newSession(true, rfc1939Timestamp)
			ex := exchange(t, s, tc.line)
			if err := run(f, ex, srv); err != nil {
				t.Fatal(err)
			}
			if got := srv.commands(); len(got) != 0 {
				t.Errorf("backend was called: %q", got)
			}
			if ex.Response.String() != "-ERR [AUTH] authentication failed" {
				t.Errorf("response %q", ex.Response)
			}
			if i == 0 {
				first = ex.Response
			} else if ex.Response != first {
				t.Errorf("response %q differs from %q", ex.Response, first)
			}
			if s.Login != (filters.Login{}) || ex.User != "" {
				t.Errorf("filter wrote login %+v, User %q: the session names APOP attempts", s.Login, ex.User)
			}
			if s.State() != filters.Authorization {
				t.Error("state changed")
			}
		})
	}
}

func TestAPOPRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, timestamp, line, want string
	}{
		{"no timestamp", "", "APOP mrose " + rfc1939Digest, "-ERR APOP not available: no timestamp in the greeting"},
		{"no digest", rfc1939Timestamp, "APOP mrose", "-ERR usage: APOP name digest"},
		{"no arguments", rfc1939Timestamp, "APOP", "-ERR usage: APOP name digest"},
		{"three arguments", rfc1939Timestamp, "APOP mrose " + rfc1939Digest + " x", "-ERR usage: APOP name digest"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t)
			srv := &server{pass: backendPasswords()}
			ex := exchange(t, newSession(true, tc.timestamp), tc.line)
			if err := run(f, ex, srv); err != nil {
				t.Fatal(err)
			}
			if ex.Response.String() != tc.want {
				t.Errorf("response %q, want %q", ex.Response, tc.want)
			}
			if got := srv.commands(); len(got) != 0 {
				t.Errorf("backend was called: %q", got)
			}
		})
	}
}

func TestPassThrough(t *testing.T) {
	transaction := newSession(true, rfc1939Timestamp)
	transaction.SetState(filters.Transaction)
	for _, tc := range []struct {
		name string
		s    *filters.Session
		line string
	}{
		{"on-accept APOP", newSession(false, rfc1939Timestamp), "APOP mrose " + rfc1939Digest},
		{"on-accept CRAM-MD5", newSession(false, rfc1939Timestamp), "AUTH CRAM-MD5"},
		{"APOP after login", transaction, "APOP mrose " + rfc1939Digest},
		{"USER", newSession(true, rfc1939Timestamp), "USER mrose"},
		{"AUTH PLAIN", newSession(true, rfc1939Timestamp), "AUTH PLAIN AG1yb3NlAHRhbnN0YWFm"},
		{"AUTH list", newSession(true, rfc1939Timestamp), "AUTH"},
		{"CAPA", newSession(true, rfc1939Timestamp), "CAPA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t)
			var got []parser.Command
			backend := func(cmd parser.Command) (parser.Response, string) {
				got = append(got, cmd)
				return parser.OK("from backend"), ""
			}
			ex := exchange(t, tc.s, tc.line)
			ex.Prompt = func(context.Context, parser.Response) (string, error) {
				t.Error("filter prompted the client")
				return "", errors.New("no prompt")
			}
			if f.Exclusive(ex) {
				t.Error("a command the filter does not answer runs exclusively")
			}
			if err := filtertest.Run(context.Background(), filters.NewChain(f), ex, backend); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].String() != tc.line {
				t.Errorf("backend saw %v, want exactly %q", got, tc.line)
			}
			if ex.Response.Text != "from backend" {
				t.Errorf("response %q not the backend's", ex.Response)
			}
		})
	}
}

func TestAPOPStopsWhenUserRefused(t *testing.T) {
	f := newFilter(t)
	refuse := parser.Err("", "no such mailbox here")
	srv := &server{pass: backendPasswords(), userResp: &refuse}
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	if err := run(f, ex, srv); err != nil {
		t.Fatal(err)
	}
	if got := srv.commands(); !slices.Equal(got, []string{"USER mrose"}) {
		t.Errorf("backend saw %q, want USER only", got)
	}
	if ex.Response != refuse {
		t.Errorf("response %q, want the answer to USER", ex.Response)
	}
}

func TestAPOPBackendRefusesPassword(t *testing.T) {
	f := newFilter(t)
	srv := &server{pass: map[string]string{"mrose": "changed-on-backend"}}
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	if err := run(f, ex, srv); err != nil {
		t.Fatal(err)
	}
	if ex.Response.String() != "-ERR [AUTH] backend says no" {
		t.Errorf("response %q, want the answer to PASS", ex.Response)
	}
}

func TestAPOPBackendError(t *testing.T) {
	f := newFilter(t)
	boom := errors.New("boom")
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	ex.Backend = failingBackend{boom}
	if err := f.Command(context.Background(), ex); !errors.Is(err, boom) {
		t.Errorf("got %v, want the backend's error", err)
	}
	if ex.Out.Verb != "APOP" || ex.Response.Status != 0 {
		t.Errorf("Out %q, response %q after a failed USER", ex.Out, ex.Response)
	}
}

func TestAPOPWithoutBackend(t *testing.T) {
	f := newFilter(t)
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	err := f.Command(context.Background(), ex)
	var pe *parser.Error
	if !errors.As(err, &pe) || pe.Code != parser.CodeSysTemp || !errors.Is(err, errNoBackend) {
		t.Errorf("error %v, want -ERR [SYS/TEMP] wrapping errNoBackend", err)
	}
}

func TestExclusiveOnlyForItsLogins(t *testing.T) {
	transaction := newSession(true, rfc1939Timestamp)
	transaction.SetState(filters.Transaction)
	for _, tc := range []struct {
		name string
		s    *filters.Session
		line string
		want bool
	}{
		{"APOP", newSession(true, rfc1939Timestamp), "APOP mrose " + rfc1939Digest, true},
		{"APOP with a wrong digest", newSession(true, rfc1939Timestamp), "APOP mrose " + strings.Repeat("0", 32), true},
		{"AUTH CRAM-MD5", newSession(true, ""), "AUTH CRAM-MD5", true},
		{"AUTH cram-md5", newSession(true, ""), "AUTH cram-md5", true},
		{"on-accept APOP", newSession(false, rfc1939Timestamp), "APOP mrose " + rfc1939Digest, false},
		{"on-accept CRAM-MD5", newSession(false, ""), "AUTH CRAM-MD5", false},
		{"APOP after login", transaction, "APOP mrose " + rfc1939Digest, false},
		{"USER", newSession(true, rfc1939Timestamp), "USER mrose", false},
		{"PASS", newSession(true, rfc1939Timestamp), "PASS tanstaaf", false},
		{"AUTH PLAIN", newSession(true, ""), "AUTH PLAIN AG1yb3NlAHRhbnN0YWFm", false},
		{"AUTH list", newSession(true, ""), "AUTH", false},
		{"RETR", newSession(true, ""), "RETR 1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFilter(t)
			if got := f.Exclusive(exchange(t, tc.s, tc.line)); got != tc.want {
				t.Errorf("Exclusive %v, want %v", got, tc.want)
			}
		})
	}
}

func TestAPOPDuringReload(t *testing.T) {
	f := newFilter(t)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 50 {
			if err := f.Reload(); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for range 50 {
		srv := &server{pass: backendPasswords()}
		ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
		if err := run(f, ex, srv); err != nil {
			t.Fatal(err)
		}
		if !ex.Response.IsOK() {
			t.Fatalf("response %q during reload", ex.Response)
		}
	}
	wg.Wait()
}

func TestNewRefusesBadHost(t *testing.T) {
	p := writeFile(t, testSecrets, 0o600)
	if _, err := New(Config{SecretsFile: p, Host: "bad host>"}, nil); err == nil {
		t.Error("bad host accepted")
	}
	f, err := New(Config{SecretsFile: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "apop" {
		t.Errorf("Name %q", f.Name())
	}
	if !validHost(f.host) {
		t.Errorf("default host %q invalid", f.host)
	}
}
