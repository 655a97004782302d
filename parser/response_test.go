package parser

import (
	"errors"
	"fmt"
	"testing"
)

func TestParseResponse(t *testing.T) {
	tests := []struct {
		line string
		want Response
		bad  bool
	}{
		{line: "+OK", want: Response{Status: StatusOK}},
		{line: "+OK ", want: Response{Status: StatusOK}},
		{line: "+OK hello there", want: Response{Status: StatusOK, Text: "hello there"}},
		{line: "+OK  two spaces", want: Response{Status: StatusOK, Text: " two spaces"}},
		{line: "+OK [XCLIENT] Dovecot ready.", want: Response{Status: StatusOK, Code: "XCLIENT", Text: "Dovecot ready."}},
		{line: "-ERR", want: Response{Status: StatusErr}},
		{line: "-ERR no such message", want: Response{Status: StatusErr, Text: "no such message"}},
		{line: "-ERR [SYS/TEMP] try later", want: Response{Status: StatusErr, Code: CodeSysTemp, Text: "try later"}},
		{line: "-ERR [SYS/PERM] gone", want: Response{Status: StatusErr, Code: CodeSysPerm, Text: "gone"}},
		{line: "-ERR [IN-USE] mailbox locked", want: Response{Status: StatusErr, Code: CodeInUse, Text: "mailbox locked"}},
		{line: "-ERR [LOGIN-DELAY] wait", want: Response{Status: StatusErr, Code: CodeLoginDelay, Text: "wait"}},
		{line: "-ERR [AUTH] bad password", want: Response{Status: StatusErr, Code: CodeAuth, Text: "bad password"}},
		{line: "-ERR [SYS/TEMP/QUOTA] nested", want: Response{Status: StatusErr, Code: "SYS/TEMP/QUOTA", Text: "nested"}},
		{line: "-ERR [AUTH]", want: Response{Status: StatusErr, Code: CodeAuth}},
		{line: "-ERR [AUTH]no space", want: Response{Status: StatusErr, Code: CodeAuth, Text: "no space"}},
		{line: "-ERR [unclosed code", want: Response{Status: StatusErr, Text: "[unclosed code"}},
		{line: "-ERR [] empty", want: Response{Status: StatusErr, Text: "[] empty"}},
		{line: "+OK a\tb", want: Response{Status: StatusOK, Text: "a\tb"}},
		{line: "+ PDEyMz4=", want: Response{Status: StatusContinue, Text: "PDEyMz4="}},
		{line: "+ ", want: Response{Status: StatusContinue}},
		{line: "+", want: Response{Status: StatusContinue}},
		{line: "", bad: true},
		{line: "OK", bad: true},
		{line: "+OKAY", bad: true},
		{line: "-ERROR", bad: true},
		{line: "+ok", bad: true},
		{line: "+abc", bad: true},
		{line: "-", bad: true},
		{line: "+OK \x01", bad: true},
		{line: "+OK \x7f", bad: true},
		{line: "+OK a\rb", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseResponse([]byte(tt.line))
			if tt.bad {
				if !errors.Is(err, ErrBadResponse) {
					t.Fatalf("got (%#v, %v), want ErrBadResponse", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got (%#v, %v), want %#v", got, err, tt.want)
			}
			again, err := ParseResponse([]byte(got.String()))
			if err != nil || again != got {
				t.Fatalf("String %q parses back as (%#v, %v)", got.String(), again, err)
			}
		})
	}
}

func TestStatusString(t *testing.T) {
	for s, want := range map[Status]string{StatusOK: "+OK", StatusErr: "-ERR", StatusContinue: "+", 0: "?"} {
		if s.String() != want {
			t.Errorf("Status(%d).String() = %q, want %q", s, s.String(), want)
		}
	}
	if !OK("").IsOK() || Err("", "").IsOK() || Continue("").IsOK() {
		t.Error("IsOK is wrong")
	}
}

// TestHasBody covers every verb of RFC 1939, 2449 and 5034, with and
// without arguments, under each status.
func TestHasBody(t *testing.T) {
	multi := map[string]bool{
		"RETR 1": true, "TOP 1 0": true, "CAPA": true,
		"LIST": true, "UIDL": true, "AUTH": true,
	}
	cmds := []Command{
		NewCommand("USER", "a"), NewCommand("PASS", "b c"), NewCommand("APOP", "a", "d"),
		NewCommand("STAT"), NewCommand("LIST"), NewCommand("LIST", "1"),
		NewCommand("RETR", "1"), NewCommand("DELE", "1"), NewCommand("NOOP"),
		NewCommand("RSET"), NewCommand("QUIT"), NewCommand("TOP", "1", "0"),
		NewCommand("UIDL"), NewCommand("UIDL", "1"), NewCommand("CAPA"),
		NewCommand("STLS"), NewCommand("AUTH"), NewCommand("AUTH", "PLAIN"),
		NewCommand("AUTH", "PLAIN", "AGE="), NewCommand("UTF8"), NewCommand("XCLIENT", "ADDR=1"),
		NewCommand("retr", "1"),
	}
	for _, c := range cmds {
		for _, r := range []Response{OK(""), Err("", ""), Err(CodeSysTemp, "x"), Continue("")} {
			t.Run(fmt.Sprintf("%s/%s", c, r), func(t *testing.T) {
				want := r.IsOK() && multi[c.String()]
				if got := HasBody(c, r); got != want {
					t.Fatalf("HasBody(%q, %q) = %v, want %v", c, r, got, want)
				}
			})
		}
	}
}

func TestErrorResponse(t *testing.T) {
	cause := errors.New("backend said no")
	e := NewError(CodeInUse, "mailbox busy", cause)
	if !errors.Is(e, cause) {
		t.Error("Error does not unwrap to its cause")
	}
	if e.Error() != "-ERR [IN-USE] mailbox busy: backend said no" {
		t.Errorf("Error() = %q", e.Error())
	}
	if got := ErrorResponse(fmt.Errorf("session: %w", e)); got != Err(CodeInUse, "mailbox busy") {
		t.Errorf("wrapped *Error maps to %#v", got)
	}
	got := ErrorResponse(errors.New("dial tcp 10.0.0.1:110: connection refused"))
	if got.Code != CodeSysTemp || got.Status != StatusErr {
		t.Errorf("plain error maps to %#v", got)
	}
	if s := got.String(); s != "-ERR [SYS/TEMP] internal error, try again later" {
		t.Errorf("plain error shows %q", s)
	}
	if NewError("", "x", nil).Error() != "-ERR x" {
		t.Errorf("Error without cause = %q", NewError("", "x", nil).Error())
	}
}
