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
			if err := f.Wrap(srv).Serve(context.Background(), ex); err != nil {
				t.Fatal(err)
			}
			want := []string{"USER " + tc.user, "PASS " + tc.secret}
			if got := srv.commands(); !slices.Equal(got, want) {
				t.Fatalf("next saw %q, want %q", got, want)
			}
			if !ex.Response.IsOK() || ex.Response.Text != "logged in" {
				t.Errorf("response %q, want the answer to PASS", ex.Response)
			}
			if s.Login.User != tc.user || s.Login.Mechanism != "apop" {
				t.Errorf("login %+v, want user %q mechanism apop", s.Login, tc.user)
			}
			if ex.Command.Verb != "APOP" || ex.Command.Arg(0) != tc.user {
				t.Errorf("client command edited: %v", ex.Command)
			}
			if s.State() != filters.Transaction {
				t.Error("session not logged in")
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
			if err := f.Wrap(srv).Serve(context.Background(), ex); err != nil {
				t.Fatal(err)
			}
			if got := srv.commands(); len(got) != 0 {
				t.Errorf("next was called: %q", got)
			}
			if ex.Response.String() != "-ERR [AUTH] authentication failed" {
				t.Errorf("response %q", ex.Response)
			}
			if i == 0 {
				first = ex.Response
			} else if ex.Response != first {
				t.Errorf("response %q differs from %q", ex.Response, first)
			}
			if s.Login.User != ex.Command.Arg(0) || s.Login.Mechanism != "apop" {
				t.Errorf("login %+v does not name the attempt", s.Login)
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
			if err := f.Wrap(srv).Serve(context.Background(), ex); err != nil {
				t.Fatal(err)
			}
			if ex.Response.String() != tc.want {
				t.Errorf("response %q, want %q", ex.Response, tc.want)
			}
			if got := srv.commands(); len(got) != 0 {
				t.Errorf("next was called: %q", got)
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
			next := filters.HandlerFunc(func(_ context.Context, ex *filters.Exchange) error {
				got = append(got, ex.Out)
				ex.Response = parser.OK("from next")
				return nil
			})
			ex := exchange(t, tc.s, tc.line)
			ex.Prompt = func(context.Context, parser.Response) (string, error) {
				t.Error("filter prompted the client")
				return "", errors.New("no prompt")
			}
			if err := f.Wrap(next).Serve(context.Background(), ex); err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].String() != tc.line {
				t.Errorf("next saw %v, want exactly %q", got, tc.line)
			}
			if ex.Response.Text != "from next" {
				t.Errorf("response %q not next's", ex.Response)
			}
		})
	}
}

func TestAPOPStopsWhenUserRefused(t *testing.T) {
	f := newFilter(t)
	refuse := parser.Err("", "no such mailbox here")
	srv := &server{pass: backendPasswords(), userResp: &refuse}
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	if err := f.Wrap(srv).Serve(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	if got := srv.commands(); !slices.Equal(got, []string{"USER mrose"}) {
		t.Errorf("next saw %q, want USER only", got)
	}
	if ex.Response != refuse {
		t.Errorf("response %q, want the answer to USER", ex.Response)
	}
}

func TestAPOPBackendRefusesPassword(t *testing.T) {
	f := newFilter(t)
	srv := &server{pass: map[string]string{"mrose": "changed-on-backend"}}
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	if err := f.Wrap(srv).Serve(context.Background(), ex); err != nil {
		t.Fatal(err)
	}
	if ex.Response.String() != "-ERR [AUTH] backend says no" {
		t.Errorf("response %q, want the answer to PASS", ex.Response)
	}
}

func TestAPOPNextError(t *testing.T) {
	f := newFilter(t)
	boom := errors.New("boom")
	srv := &server{err: boom}
	ex := exchange(t, newSession(true, rfc1939Timestamp), "APOP mrose "+rfc1939Digest)
	if err := f.Wrap(srv).Serve(context.Background(), ex); !errors.Is(err, boom) {
		t.Errorf("got %v, want next's error", err)
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
		if err := f.Wrap(srv).Serve(context.Background(), ex); err != nil {
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
