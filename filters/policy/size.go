package policy

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// tooLarge is the answer to RETR or TOP of a message over the size limit.
var tooLarge = parser.Err("", "message too large for this mailbox policy")

// sizedVerb reports whether verb reads a message and so is size-checked:
// RETR, and TOP, whose output is the header plus up to as many body lines
// as asked for (RFC 1939 section 7). How many octets a TOP sends cannot be
// known before it is sent (the header alone may hold the whole payload),
// so TOP is checked against the message's size whatever its line count,
// TOP n 0 included.
func sizedVerb(verb string) bool {
	return verb == "RETR" || verb == "TOP"
}

// checksSize reports whether ex is a RETR or TOP whose size must be
// checked. It implies Exclusive(ex.Command): the client's command is the
// same verb, so an outer filter's extra backend call on this exchange
// (which edits Out) is passed on untouched.
func (f *Filter) checksSize(ex *filters.Exchange) bool {
	return f.maxSize > 0 && sizedVerb(ex.Command.Verb) && ex.Out.Verb == ex.Command.Verb
}

// sized serves a RETR or TOP under the size limit: it asks the backend
// "LIST n" (RFC 1939 section 5) and sends the command only when the size
// is within the limit. When the command is not sent, ex.Out is left as the
// LIST, the last command the backend received.
func (f *Filter) sized(ctx context.Context, ex *filters.Exchange, next filters.Handler) error {
	cmd := ex.Out
	msg, ok := parseMsg(cmd)
	if !ok {
		// Checked here rather than by the backend so that no form of
		// the argument the backend might read differently slips past.
		ex.Response, ex.Body = parser.Err("", "invalid message number"), nil
		return nil
	}
	ex.Out = parser.NewCommand("LIST", cmd.Arg(0))
	ex.Response, ex.Body = parser.Response{}, nil
	err := next.Serve(ctx, ex)
	if err == nil && ex.Body != nil {
		// LIST n has no body (parser.HasBody); drain one anyway so the
		// backend stream stays in step before the next call.
		_, err = io.Copy(io.Discard, ex.Body)
		ex.Body = nil
	}
	if err != nil {
		return fmt.Errorf("policy: LIST %d before %s: %w", msg, cmd.Verb, err)
	}
	resp := ex.Response
	if !resp.IsOK() {
		// No such message, or the backend cannot say: its answer to
		// LIST is the answer to RETR or TOP.
		return nil
	}
	size, err := parseListing(resp.Text, msg)
	if err != nil {
		return parser.NewError(parser.CodeSysTemp, "cannot check the message size, try again later", err)
	}
	if size > f.maxSize {
		ex.Response = tooLarge
		return nil
	}
	ex.Out = cmd
	ex.Response, ex.Body = parser.Response{}, nil
	return next.Serve(ctx, ex)
}

// parseMsg returns the message number of a RETR or TOP: a RETR has
// exactly one argument, a TOP exactly two (RFC 1939 section 7). The
// message number has 1 to 10 decimal digits and is not zero; TOP's line
// count has 1 to 10 decimal digits and may be zero.
func parseMsg(cmd parser.Command) (uint64, bool) {
	want := 1
	if cmd.Verb == "TOP" {
		want = 2
		if len(cmd.Args) == want && !isDigits(cmd.Args[1], 10) {
			return 0, false
		}
	}
	if len(cmd.Args) != want {
		return 0, false
	}
	return parseNumber(cmd.Args[0], 10)
}

// isDigits reports whether s is 1 to max decimal digits.
func isDigits(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseNumber parses 1 to max decimal digits, and refuses zero.
func parseNumber(s string, max int) (uint64, bool) {
	if !isDigits(s, max) {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}

// parseListing parses the text of a "+OK" answer to "LIST msg", a scan
// listing "msg size" (RFC 1939 section 5), and returns the size. Anything
// after the size is ignored.
func parseListing(text string, msg uint64) (int64, error) {
	fields := strings.Fields(text)
	if len(fields) < 2 {
		return 0, fmt.Errorf("policy: malformed LIST answer %.80q", text)
	}
	n, ok := parseNumber(fields[0], 10)
	if !ok || n != msg {
		return 0, fmt.Errorf("policy: LIST answer %.80q is not about message %d", text, msg)
	}
	size, err := strconv.ParseInt(fields[1], 10, 64)
	if err != nil || size < 0 || fields[1][0] == '+' {
		return 0, fmt.Errorf("policy: bad size in LIST answer %.80q", text)
	}
	return size, nil
}
