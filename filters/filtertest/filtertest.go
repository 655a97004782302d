// Package filtertest runs exchanges through a filter chain the way the
// proxy's session does, against a backend that is a Go function, for the
// unit tests of filters.
package filtertest

import (
	"context"
	"errors"
	"io"
	"strings"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Backend answers one command with a response and, when parser.HasBody
// says one follows, its body (un-stuffed, lines ending in CRLF).
type Backend func(cmd parser.Command) (parser.Response, string)

// Calls records the commands a backend received.
type Calls struct {
	B    Backend
	Sent []parser.Command
}

// Answer is the Backend that records cmd and asks B.
func (c *Calls) Answer(cmd parser.Command) (parser.Response, string) {
	c.Sent = append(c.Sent, cmd)
	return c.B(cmd)
}

// Exchange returns an exchange of cmd in session s, as the session makes
// it: Out a copy of Command.
func Exchange(s *filters.Session, cmd parser.Command) *filters.Exchange {
	return &filters.Exchange{
		Session: s,
		Command: cmd,
		Out:     parser.Command{Verb: cmd.Verb, Args: append([]string(nil), cmd.Args...)},
	}
}

// ErrNotExclusive is what a filter gets from Exchange.Backend's Call when
// it did not ask for the exchange to run alone: the session gives such an
// exchange no Backend at all.
var ErrNotExclusive = errors.New("filtertest: Call on an exchange that is not exclusive")

type backend struct {
	b         Backend
	exclusive bool
}

func (b *backend) Call(_ context.Context, cmd parser.Command) (parser.Response, io.Reader, error) {
	if !b.exclusive {
		return parser.Response{}, nil, ErrNotExclusive
	}
	resp, body := b.b(cmd)
	if !parser.HasBody(cmd, resp) {
		return resp, nil, nil
	}
	return resp, strings.NewReader(body), nil
}

// Run runs ex through c with b answering, as the session does: Exclusive
// decides whether the Command side gets a Backend; a command no filter
// answered goes to b; then the Response side runs. The body is left in
// ex.Body for the test to read; call Finish afterwards. An error is what
// the chain returned (the session would turn a *parser.Error into -ERR).
func Run(ctx context.Context, c *filters.Chain, ex *filters.Exchange, b Backend) error {
	bk := &backend{b: b, exclusive: c.Exclusive(ex)}
	if bk.exclusive {
		ex.Backend = bk
	}
	n, err := c.Command(ctx, ex)
	ex.Backend = nil
	if err != nil {
		return err
	}
	if ex.Response.Status == 0 {
		resp, body := b(ex.Out)
		ex.Response = resp
		if parser.HasBody(ex.Out, resp) {
			ex.Body = strings.NewReader(body)
		}
	}
	return c.Response(ctx, ex, n)
}

// Finish reads what is left of ex.Body, lets the Flushers write what
// they hold (as the session does before it sends the answer to the
// client), records err as the exchange's failure and calls the chain's
// Finishers, as the session does once the answer went out.
func Finish(c *filters.Chain, ex *filters.Exchange, err error) {
	if ex.Body != nil {
		io.Copy(io.Discard, ex.Body)
		if cl, ok := ex.Body.(io.Closer); ok {
			cl.Close()
		}
	}
	c.Flush(ex.Session)
	ex.Err = err
	c.Finish(ex)
}
