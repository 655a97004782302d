package filters

import (
	"context"
)

// Chain is a listener's filters in the order the configuration lists
// them, with the roles each one plays looked up once. It runs the two
// sides of an exchange; the session decides on which goroutine. A Chain
// is immutable and safe for concurrent use.
type Chain struct {
	filters  []Filter
	command  []CommandFilter // per filter, nil when it has no Command side
	response []ResponseFilter
	excl     []Exclusive
	finish   []Finisher
	flush    []Flusher
	anyResp  bool
}

// NewChain returns the chain of fs, first filter outermost.
func NewChain(fs ...Filter) *Chain {
	c := &Chain{
		filters:  fs,
		command:  make([]CommandFilter, len(fs)),
		response: make([]ResponseFilter, len(fs)),
	}
	for i, f := range fs {
		c.command[i], _ = f.(CommandFilter)
		if r, ok := f.(ResponseFilter); ok {
			c.response[i] = r
			c.anyResp = true
		}
		if e, ok := f.(Exclusive); ok {
			c.excl = append(c.excl, e)
		}
		if fin, ok := f.(Finisher); ok {
			c.finish = append(c.finish, fin)
		}
		if fl, ok := f.(Flusher); ok {
			c.flush = append(c.flush, fl)
		}
	}
	return c
}

// Filters returns the chain's filters, outermost first.
func (c *Chain) Filters() []Filter { return c.filters }

// HasResponseSide reports whether any filter looks at answers. Without
// one the session may pass message bodies through as they are on the
// wire, still dot-stuffed.
func (c *Chain) HasResponseSide() bool { return c.anyResp }

// Exclusive reports whether some filter needs ex to run alone.
func (c *Chain) Exclusive(ex *Exchange) bool {
	for _, e := range c.excl {
		if e.Exclusive(ex) {
			return true
		}
	}
	return false
}

// Command runs the Command side of every filter in order, until one
// answers locally (sets ex.Response) or fails. It returns how many filters
// saw the command: the Response side runs for those.
func (c *Chain) Command(ctx context.Context, ex *Exchange) (int, error) {
	for i, f := range c.command {
		if f == nil {
			continue
		}
		if err := f.Command(ctx, ex); err != nil {
			return i + 1, err
		}
		if ex.Response.Status != 0 {
			return i + 1, nil
		}
	}
	return len(c.command), nil
}

// Response runs the Response side of the first n filters, innermost first.
// It stops at the first error.
func (c *Chain) Response(ctx context.Context, ex *Exchange, n int) error {
	for i := min(n, len(c.response)) - 1; i >= 0; i-- {
		if r := c.response[i]; r != nil {
			if err := r.Response(ctx, ex); err != nil {
				return err
			}
		}
	}
	return nil
}

// Flush asks every Flusher, in chain order, to write what it holds for
// the burst whose answers the session is about to send.
func (c *Chain) Flush(s *Session) {
	for _, f := range c.flush {
		f.Flush(s)
	}
}

// Finish tells every Finisher, in chain order, that ex is over.
func (c *Chain) Finish(ex *Exchange) {
	for _, f := range c.finish {
		f.Finish(ex)
	}
}
