package rewrite

import (
	"context"
	"errors"
	"testing"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/filtertest"
	"github.com/popgate/popgate/parser"
)

// recorder is a filtertest.Backend recording every command it gets.
type recorder struct{ got []parser.Command }

func (r *recorder) answer(cmd parser.Command) (parser.Response, string) {
	r.got = append(r.got, cmd)
	return parser.OK("from backend"), ""
}

// run runs ex through a chain of f alone, with r answering, as the
// session does.
func (r *recorder) run(f *Filter, ex *filters.Exchange) error {
	return filtertest.Run(context.Background(), filters.NewChain(f), ex, r.answer)
}

func exchange(t *testing.T, s *filters.Session, line string) *filters.Exchange {
	t.Helper()
	cmd, err := parser.ParseCommand([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return filtertest.Exchange(s, cmd)
}

func TestOnAcceptRewritesOut(t *testing.T) {
	f, err := New(Config{Lowercase: true, StripDomain: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	transaction := &filters.Session{}
	transaction.SetState(filters.Transaction)
	for _, tc := range []struct {
		name    string
		s       *filters.Session
		line    string
		wantOut string
	}{
		{"USER", &filters.Session{}, "USER Alice@Example.org", "USER alice"},
		{"APOP", &filters.Session{}, "APOP Alice@Example.org c4c9334bac560ecc979e58001b3e22fb", "APOP alice c4c9334bac560ecc979e58001b3e22fb"},
		{"USER unchanged", &filters.Session{}, "USER alice", "USER alice"},
		{"PASS untouched", &filters.Session{}, "PASS Secret@Example.org", "PASS Secret@Example.org"},
		{"AUTH untouched", &filters.Session{}, "AUTH PLAIN AGFsaWNlAHB3", "AUTH PLAIN AGFsaWNlAHB3"},
		{"USER without argument", &filters.Session{}, "USER", "USER"},
		{"after-auth USER untouched", &filters.Session{AfterAuth: true}, "USER Alice@Example.org", "USER Alice@Example.org"},
		{"TRANSACTION untouched", transaction, "USER Alice@Example.org", "USER Alice@Example.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			backend := &recorder{}
			ex := exchange(t, tc.s, tc.line)
			if err := backend.run(f, ex); err != nil {
				t.Fatal(err)
			}
			if len(backend.got) != 1 || backend.got[0].String() != tc.wantOut {
				t.Fatalf("backend saw %v, want %q", backend.got, tc.wantOut)
			}
			if ex.Command.String() != tc.line {
				t.Errorf("client command edited to %q", ex.Command)
			}
			if ex.Response.Text != "from backend" {
				t.Errorf("response %q not the backend's", ex.Response)
			}
			if tc.s.Login != (filters.Login{}) {
				t.Errorf("filter wrote the session's login: %+v", tc.s.Login)
			}
		})
	}
}

func TestOnAcceptDoesNotShareArgs(t *testing.T) {
	f, err := New(Config{Lowercase: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd := parser.Command{Verb: "USER", Args: []string{"ALICE"}}
	ex := &filters.Exchange{Session: &filters.Session{}, Command: cmd, Out: cmd} // shared Args
	if err := (&recorder{}).run(f, ex); err != nil {
		t.Fatal(err)
	}
	if ex.Out.Arg(0) != "alice" || ex.Command.Arg(0) != "ALICE" {
		t.Errorf("Out %q, Command %q: want alice and ALICE", ex.Out, ex.Command)
	}
}

func TestOnAcceptRefusesUnusableLogin(t *testing.T) {
	f, err := New(Config{StripDomain: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	backend := &recorder{}
	ex := exchange(t, &filters.Session{}, "USER @example.org")
	err = backend.run(f, ex)
	var pe *parser.Error
	if !errors.As(err, &pe) || pe.Response().String() != "-ERR [AUTH] authentication failed" {
		t.Fatalf("error %v, want -ERR [AUTH]", err)
	}
	if !errors.Is(err, ErrBadLogin) {
		t.Errorf("error %v does not wrap ErrBadLogin", err)
	}
	if len(backend.got) != 0 {
		t.Errorf("backend was called with %v", backend.got)
	}
}

func TestRewriteLogin(t *testing.T) {
	p := writeMap(t, "carol@example.org c.jones\n")
	f, err := New(Config{Lowercase: true, StripDomain: true, AddDomain: "corp.example", MapFile: p}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		in   filters.Login
		want string
	}{
		{"from BackendUser", filters.Login{User: "Alice@Example.org", BackendUser: "Alice@Example.org"}, "alice@corp.example"},
		{"empty BackendUser uses User", filters.Login{User: "Bob"}, "bob@corp.example"},
		{"earlier rewriter's result", filters.Login{User: "x", BackendUser: "Carol@Example.org"}, "c.jones"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := tc.in
			if err := f.RewriteLogin(&filters.Session{AfterAuth: true}, &l); err != nil {
				t.Fatal(err)
			}
			if l.BackendUser != tc.want {
				t.Errorf("BackendUser %q, want %q", l.BackendUser, tc.want)
			}
			if l.User != tc.in.User {
				t.Errorf("User changed to %q", l.User)
			}
		})
	}

	l := filters.Login{User: "al ice", BackendUser: "al ice"}
	if err := f.RewriteLogin(&filters.Session{AfterAuth: true}, &l); !errors.Is(err, ErrBadLogin) {
		t.Errorf("unusable login: %v", err)
	}
	if l.BackendUser != "al ice" {
		t.Errorf("BackendUser changed to %q on error", l.BackendUser)
	}
}

func TestName(t *testing.T) {
	f, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if f.Name() != "rewrite" {
		t.Errorf("Name %q", f.Name())
	}
}
