package apop

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"regexp"
	"slices"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

func TestCRAMDigestRFC2195Example(t *testing.T) {
	const challenge = "<1896.697170952@postoffice.reston.mci.net>"
	got := hex.EncodeToString(cramDigest(challenge, "tanstaaftanstaaf"))
	if want := "b913a602c7eda7a495b4e6e7334d3890"; got != want {
		t.Fatalf("digest %s, want %s", got, want)
	}
	// The client's response of the example, base64 as on the wire.
	resp := base64.StdEncoding.EncodeToString([]byte("tim " + got))
	if want := "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw"; resp != want {
		t.Fatalf("response %s, want %s", resp, want)
	}
}

var challengeRE = regexp.MustCompile(`^<[0-9a-f]{24}\.[0-9]+@test\.example>$`)

// client scripts the client side of AUTH CRAM-MD5: answer builds the
// client's line from the decoded challenge.
type client struct {
	t          *testing.T
	challenges []string
	answer     func(challenge string) (string, error)
}

func (c *client) prompt(_ context.Context, r parser.Response) (string, error) {
	if r.Status != parser.StatusContinue {
		c.t.Errorf("prompt with %q, want a continuation", r)
	}
	raw, err := base64.StdEncoding.DecodeString(r.Text)
	if err != nil {
		c.t.Fatalf("challenge %q is not base64: %v", r.Text, err)
	}
	ch := string(raw)
	if !challengeRE.MatchString(ch) {
		c.t.Errorf("challenge %q has not the form <random.time@host>", ch)
	}
	c.challenges = append(c.challenges, ch)
	return c.answer(ch)
}

// cramAnswer answers like a correct client knowing secret, independently
// of the package's code.
func cramAnswer(user, secret string) func(string) (string, error) {
	return func(ch string) (string, error) {
		m := hmac.New(md5.New, []byte(secret))
		m.Write([]byte(ch))
		return base64.StdEncoding.EncodeToString([]byte(user + " " + hex.EncodeToString(m.Sum(nil)))), nil
	}
}

func runCRAM(t *testing.T, line string, answer func(string) (string, error)) (*filters.Exchange, *server, *client, error) {
	t.Helper()
	f := newFilter(t)
	srv := &server{pass: backendPasswords()}
	c := &client{t: t, answer: answer}
	ex := exchange(t, newSession(true, ""), line)
	ex.Prompt = c.prompt
	err := run(f, ex, srv)
	return ex, srv, c, err
}

func TestCRAMTranslatesToUserPass(t *testing.T) {
	for _, line := range []string{"AUTH CRAM-MD5", "AUTH cram-md5"} {
		t.Run(line, func(t *testing.T) {
			ex, srv, c, err := runCRAM(t, line, cramAnswer("tim", "tanstaaftanstaaf"))
			if err != nil {
				t.Fatal(err)
			}
			if len(c.challenges) != 1 {
				t.Fatalf("%d prompts, want 1", len(c.challenges))
			}
			want := []string{"USER tim", "PASS tanstaaftanstaaf"}
			if got := srv.commands(); !slices.Equal(got, want) {
				t.Fatalf("backend saw %q, want %q", got, want)
			}
			if got := ex.Out.String(); got != "PASS tanstaaftanstaaf" {
				t.Errorf("Out %q, want PASS for the session to send", got)
			}
			if !ex.Response.IsOK() {
				t.Errorf("response %q", ex.Response)
			}
			// The name is inside the client's response: the filter hands
			// it to the session in ex.User and never writes Session.Login.
			if ex.User != "tim" {
				t.Errorf("User %q, want tim", ex.User)
			}
			if l := ex.Session.Login; l != (filters.Login{}) {
				t.Errorf("filter wrote login %+v", l)
			}
			if ex.Command.String() != line {
				t.Errorf("client command edited: %v", ex.Command)
			}
		})
	}
}

func TestCRAMFailuresLookAlike(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer func(string) (string, error)
		user   string // the name the session is told of, if any
	}{
		{"wrong secret", cramAnswer("tim", "wrong"), "tim"},
		{"unknown user", cramAnswer("nobody", "tanstaaftanstaaf"), "nobody"},
		{"other user's secret", cramAnswer("mrose", "tanstaaftanstaaf"), "mrose"},
		{"APOP-style digest", func(ch string) (string, error) {
			return base64.StdEncoding.EncodeToString([]byte("tim " + independentDigest(ch, "tanstaaftanstaaf"))), nil
		}, "tim"},
		{"no space", func(string) (string, error) {
			return base64.StdEncoding.EncodeToString([]byte("tim")), nil
		}, ""},
		{"empty response", func(string) (string, error) { return "=", nil }, ""},
		{"control character in name", func(ch string) (string, error) {
			a, _ := cramAnswer("ti\x00m", "tanstaaftanstaaf")(ch)
			return a, nil
		}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ex, srv, _, err := runCRAM(t, "AUTH CRAM-MD5", tc.answer)
			if err != nil {
				t.Fatal(err)
			}
			if ex.Response.String() != "-ERR [AUTH] authentication failed" {
				t.Errorf("response %q", ex.Response)
			}
			if got := srv.commands(); len(got) != 0 {
				t.Errorf("backend was called: %q", got)
			}
			if ex.User != tc.user {
				t.Errorf("User %q, want %q", ex.User, tc.user)
			}
		})
	}
}

func TestCRAMClientErrors(t *testing.T) {
	cancelled := parser.NewError("", "authentication cancelled", nil)
	gone := errors.New("client read: EOF")
	for _, tc := range []struct {
		name   string
		answer func(string) (string, error)
		want   func(error) bool
	}{
		{"cancelled", func(string) (string, error) { return "", cancelled },
			func(err error) bool { return err == error(cancelled) }},
		{"client gone", func(string) (string, error) { return "", gone },
			func(err error) bool { return errors.Is(err, gone) }},
		{"bad padding", func(string) (string, error) { return "dGl", nil }, isWireError},
		{"not base64", func(string) (string, error) { return "abc", nil }, isWireError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, srv, _, err := runCRAM(t, "AUTH CRAM-MD5", tc.answer)
			if !tc.want(err) {
				t.Errorf("error %v", err)
			}
			if got := srv.commands(); len(got) != 0 {
				t.Errorf("backend was called: %q", got)
			}
		})
	}
}

func isWireError(err error) bool {
	var pe *parser.Error
	return errors.As(err, &pe) && pe.Code == ""
}

func TestCRAMRefusesInitialResponse(t *testing.T) {
	ex, srv, c, err := runCRAM(t, "AUTH CRAM-MD5 dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw",
		cramAnswer("tim", "tanstaaftanstaaf"))
	if err != nil {
		t.Fatal(err)
	}
	if ex.Response.Status != parser.StatusErr {
		t.Errorf("response %q, want -ERR", ex.Response)
	}
	if len(c.challenges) != 0 || len(srv.commands()) != 0 {
		t.Error("an initial response was acted on")
	}
}

func TestCRAMWithoutPrompt(t *testing.T) {
	f := newFilter(t)
	srv := &server{pass: backendPasswords()}
	ex := exchange(t, newSession(true, ""), "AUTH CRAM-MD5")
	err := run(f, ex, srv)
	if !errors.Is(err, errNoPrompt) {
		t.Errorf("error %v", err)
	}
}

func TestChallengesAreUnique(t *testing.T) {
	f := newFilter(t)
	seen := make(map[string]bool)
	for range 1000 {
		ch := f.NewTimestamp()
		if !challengeRE.MatchString(ch) {
			t.Fatalf("challenge %q malformed", ch)
		}
		if seen[ch] {
			t.Fatalf("challenge %q repeated", ch)
		}
		seen[ch] = true
	}
}

func TestCRAMStopsWhenUserRefused(t *testing.T) {
	f := newFilter(t)
	refuse := parser.Err("", "no such mailbox here")
	srv := &server{pass: backendPasswords(), userResp: &refuse}
	c := &client{t: t, answer: cramAnswer("tim", "tanstaaftanstaaf")}
	ex := exchange(t, newSession(true, ""), "AUTH CRAM-MD5")
	ex.Prompt = c.prompt
	if err := run(f, ex, srv); err != nil {
		t.Fatal(err)
	}
	if got := srv.commands(); !slices.Equal(got, []string{"USER tim"}) {
		t.Errorf("backend saw %q, want USER only", got)
	}
	if ex.Response != refuse || ex.User != "tim" {
		t.Errorf("response %q, User %q: want the answer to USER, and tim", ex.Response, ex.User)
	}
}
