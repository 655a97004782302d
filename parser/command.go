package parser

import (
	"errors"
	"fmt"
	"strings"
)

// MaxVerbLength bounds a command keyword. RFC 1939 keywords have three or
// four characters; RFC 2449 and vendor extensions (XCLIENT) use longer ones.
const MaxVerbLength = 40

// ErrBadCommand is returned for a line that is not a well-formed command.
var ErrBadCommand = errors.New("parser: malformed command")

// Command is one parsed client command. A Command is always re-serialised
// with String before it reaches a backend, so what is forwarded is exactly
// what was parsed and nothing more.
type Command struct {
	// Verb is the keyword, upper-cased (RFC 1939 section 3: keywords are
	// case-insensitive).
	Verb string
	// Args are the arguments. For PASS the whole rest of the line after the
	// keyword and one space is a single argument, so passwords may contain
	// spaces.
	Args []string
}

// NewCommand returns a Command with verb upper-cased and args as given.
func NewCommand(verb string, args ...string) Command {
	return Command{Verb: strings.ToUpper(verb), Args: args}
}

// ParseCommand parses a command line without its CRLF. It refuses empty
// lines, keywords that are not ASCII letters or digits, and control
// characters anywhere in the line.
func ParseCommand(line []byte) (Command, error) {
	if len(line) == 0 {
		return Command{}, fmt.Errorf("%w: empty line", ErrBadCommand)
	}
	for _, b := range line {
		if b < 0x20 || b == 0x7f {
			return Command{}, fmt.Errorf("%w: control character 0x%02x", ErrBadCommand, b)
		}
	}
	verb, rest, hasArgs := strings.Cut(string(line), " ")
	if len(verb) == 0 || len(verb) > MaxVerbLength {
		return Command{}, fmt.Errorf("%w: bad keyword length", ErrBadCommand)
	}
	for i := 0; i < len(verb); i++ {
		c := verb[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return Command{}, fmt.Errorf("%w: bad keyword", ErrBadCommand)
		}
	}
	cmd := Command{Verb: strings.ToUpper(verb)}
	if !hasArgs {
		return cmd, nil
	}
	if cmd.Verb == "PASS" {
		if rest == "" {
			return Command{}, fmt.Errorf("%w: PASS without a password", ErrBadCommand)
		}
		cmd.Args = []string{rest}
		return cmd, nil
	}
	args := strings.Split(rest, " ")
	for _, f := range args {
		if f == "" {
			return Command{}, fmt.Errorf("%w: empty argument", ErrBadCommand)
		}
	}
	cmd.Args = args
	return cmd, nil
}

// Arg returns argument i, or "" when there is none.
func (c Command) Arg(i int) string {
	if i < 0 || i >= len(c.Args) {
		return ""
	}
	return c.Args[i]
}

// String returns the wire form of the command without its CRLF.
func (c Command) String() string {
	if len(c.Args) == 0 {
		return c.Verb
	}
	return c.Verb + " " + strings.Join(c.Args, " ")
}

// Redacted returns the command as it may appear in logs: the arguments of
// PASS, the digest of APOP and the initial response of AUTH are masked.
// The keyword is matched case-insensitively, so a Command built by hand
// with a lower-case verb is masked too.
func (c Command) Redacted() string {
	switch strings.ToUpper(c.Verb) {
	case "PASS":
		if len(c.Args) == 0 {
			return c.Verb
		}
		return c.Verb + " ***"
	case "APOP":
		if len(c.Args) < 2 {
			return c.String()
		}
		return c.Verb + " " + c.Args[0] + " ***"
	case "AUTH":
		if len(c.Args) < 2 {
			return c.String()
		}
		return c.Verb + " " + c.Args[0] + " ***"
	}
	return c.String()
}
