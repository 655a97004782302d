package policy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// tooLarge is the answer to RETR or TOP of a message over the size limit.
var tooLarge = parser.Err("", "message too large for this mailbox policy")

// errSizeUnknown is the cause of the -ERR [SYS/TEMP] for a size that is not
// cached on an exchange the session did not run alone.
var errSizeUnknown = errors.New("policy: message size not cached and no backend to ask")

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
// checked: a size limit is set, the verb is not denied, and Out is still
// the client's verb (an outer filter that turned the exchange into another
// command is passed on untouched).
func (f *Filter) checksSize(ex *filters.Exchange) bool {
	return f.maxSize > 0 && sizedVerb(ex.Command.Verb) && ex.Out.Verb == ex.Command.Verb && !f.deny[ex.Command.Verb]
}

// Exclusive reports whether ex must run alone: a RETR or TOP under the
// size limit whose message's size the session's cache does not hold yet,
// so that the Command side can ask the backend. Once a session's listing
// is cached, RETR and TOP stay pipelined. A malformed RETR or TOP is not
// exclusive: the Command side refuses it without asking. It implements
// filters.Exclusive.
func (f *Filter) Exclusive(ex *filters.Exchange) bool {
	if !f.checksSize(ex) {
		return false
	}
	msg, ok := parseMsg(ex.Out)
	if !ok {
		return false
	}
	_, known := f.cache(ex.Session).lookup(msg)
	return !known
}

// checkSize refuses a RETR or TOP of a message over the limit, from the
// session's cache of the backend's scan listing (RFC 1939 section 5). A
// size not cached yet is asked for on this exchange, which Exclusive made
// run alone: the first time with one full LIST, whose whole listing is
// cached; for a message the listing did not name (no such message, or
// one marked as deleted, which RSET may bring back) with "LIST n", whose
// -ERR is the answer to the RETR or TOP, as the backend's own. Neither
// LIST is the exchange's command: ex.Out stays the RETR or TOP, not sent
// when refused.
func (f *Filter) checkSize(ctx context.Context, ex *filters.Exchange) error {
	msg, ok := parseMsg(ex.Out)
	if !ok {
		// Checked here rather than by the backend so that no form of
		// the argument the backend might read differently slips past.
		ex.Response, ex.Body = parser.Err("", "invalid message number"), nil
		return nil
	}
	c := f.cache(ex.Session)
	over, known := c.lookup(msg)
	if !known {
		if ex.Backend == nil {
			return parser.NewError(parser.CodeSysTemp, "cannot check the message size, try again later", errSizeUnknown)
		}
		resp, o, err := f.ask(ctx, ex.Backend, c, msg, ex.Out.Verb)
		if err != nil {
			return err
		}
		if !resp.IsOK() {
			// No such message, or the backend cannot say: its answer
			// to LIST is the answer to RETR or TOP.
			ex.Response, ex.Body = resp, nil
			return nil
		}
		over = o
	}
	if over {
		ex.Response, ex.Body = tooLarge, nil
	}
	return nil
}

// ask learns whether msg is over the limit, and caches what it learns:
// from one full LIST if c holds no listing yet, then, if msg is still
// missing, from "LIST msg". It returns the -ERR answer of either LIST, or
// +OK with the answer in over. verb names the command waiting for the
// size, in errors.
func (f *Filter) ask(ctx context.Context, b filters.Backend, c *sizeCache, msg int, verb string) (resp parser.Response, over bool, err error) {
	if !c.isFull() {
		var body io.Reader
		resp, body, err = b.Call(ctx, parser.NewCommand("LIST"))
		if err != nil {
			return resp, false, fmt.Errorf("policy: LIST before %s: %w", verb, err)
		}
		if !resp.IsOK() {
			return resp, false, nil
		}
		l, lerr := readListing(body, f.maxSize)
		if lerr != nil {
			return resp, false, parser.NewError(parser.CodeSysTemp, "cannot check the message size, try again later", lerr)
		}
		c.fill(l)
		if over, known := c.lookup(msg); known {
			return resp, over, nil
		}
	}
	resp, _, err = b.Call(ctx, parser.NewCommand("LIST", strconv.Itoa(msg)))
	if err != nil {
		return resp, false, fmt.Errorf("policy: LIST %d before %s: %w", msg, verb, err)
	}
	if !resp.IsOK() {
		return resp, false, nil
	}
	size, err := parseListing(resp.Text, msg)
	if err != nil {
		return resp, false, parser.NewError(parser.CodeSysTemp, "cannot check the message size, try again later", err)
	}
	over = size > f.maxSize
	c.add(msg, over)
	return resp, over, nil
}

// parseMsg returns the message number of a RETR or TOP: a RETR has
// exactly one argument, a TOP exactly two (RFC 1939 section 7), a message
// number (parser.MessageNumber) and a line count (parser.Count).
func parseMsg(cmd parser.Command) (int, bool) {
	want := 1
	if cmd.Verb == "TOP" {
		want = 2
		if len(cmd.Args) == want {
			if _, ok := parser.Count(cmd.Args[1]); !ok {
				return 0, false
			}
		}
	}
	if len(cmd.Args) != want {
		return 0, false
	}
	return parser.MessageNumber(cmd.Args[0])
}
