package parser

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line string
		want Command
		bad  bool
	}{
		{line: "USER alice", want: Command{Verb: "USER", Args: []string{"alice"}}},
		{line: "user alice", want: Command{Verb: "USER", Args: []string{"alice"}}},
		{line: "STAT", want: Command{Verb: "STAT"}},
		{line: "TOP 1 10", want: Command{Verb: "TOP", Args: []string{"1", "10"}}},
		{line: "PASS my secret pw", want: Command{Verb: "PASS", Args: []string{"my secret pw"}}},
		{line: "pass  lead and trail ", want: Command{Verb: "PASS", Args: []string{" lead and trail "}}},
		{line: "PASS", want: Command{Verb: "PASS"}},
		{line: "APOP mrose c4c9334bac560ecc979e58001b3e22fb", want: Command{Verb: "APOP", Args: []string{"mrose", "c4c9334bac560ecc979e58001b3e22fb"}}},
		{line: "AUTH PLAIN AGFsaWNlAHNlY3JldA==", want: Command{Verb: "AUTH", Args: []string{"PLAIN", "AGFsaWNlAHNlY3JldA=="}}},
		{line: "X-FOO a", want: Command{Verb: "X-FOO", Args: []string{"a"}}},
		{line: "USER \xc3\xa9", want: Command{Verb: "USER", Args: []string{"\xc3\xa9"}}},
		{line: strings.Repeat("A", MaxVerbLength), want: Command{Verb: strings.Repeat("A", MaxVerbLength)}},
		{line: "", bad: true},
		{line: " USER", bad: true},
		{line: "PASS ", bad: true},
		{line: "USER  a", bad: true},
		{line: "USER a ", bad: true},
		{line: "STAT ", bad: true},
		{line: "US\tER", bad: true},
		{line: "USER a\tb", bad: true},
		{line: "USER a\x7f", bad: true},
		{line: "USER a\x00", bad: true},
		{line: "US\xc3\x89R", bad: true},
		{line: "US_ER", bad: true},
		{line: strings.Repeat("A", MaxVerbLength+1), bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			got, err := ParseCommand([]byte(tt.line))
			if tt.bad {
				if !errors.Is(err, ErrBadCommand) {
					t.Fatalf("got (%#v, %v), want ErrBadCommand", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got (%#v, %v), want %#v", got, err, tt.want)
			}
			again, err := ParseCommand([]byte(got.String()))
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("String %q parses back as (%#v, %v)", got.String(), again, err)
			}
		})
	}
}

func TestCommandArg(t *testing.T) {
	c := NewCommand("top", "1", "10")
	if c.Verb != "TOP" || c.Arg(0) != "1" || c.Arg(1) != "10" || c.Arg(2) != "" || c.Arg(-1) != "" {
		t.Fatalf("got %#v", c)
	}
}

func TestRedacted(t *testing.T) {
	tests := []struct {
		cmd    Command
		want   string
		secret string
	}{
		{NewCommand("PASS", "hunter 2"), "PASS ***", "hunter"},
		{Command{Verb: "pass", Args: []string{"hunter2"}}, "pass ***", "hunter2"},
		{NewCommand("PASS"), "PASS", ""},
		{NewCommand("APOP", "mrose", "c4c9334bac560ecc979e58001b3e22fb"), "APOP mrose ***", "c4c9334b"},
		{NewCommand("APOP", "mrose"), "APOP mrose", ""},
		{NewCommand("AUTH", "PLAIN", "AGFsaWNlAHNlY3JldA=="), "AUTH PLAIN ***", "AGFsaWNl"},
		{NewCommand("AUTH", "PLAIN"), "AUTH PLAIN", ""},
		{NewCommand("AUTH"), "AUTH", ""},
		{NewCommand("USER", "alice"), "USER alice", ""},
		{NewCommand("RETR", "1"), "RETR 1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got := tt.cmd.Redacted()
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if tt.secret != "" && strings.Contains(got, tt.secret) {
				t.Fatalf("%q leaks %q", got, tt.secret)
			}
		})
	}
}
