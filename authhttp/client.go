package authhttp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"
)

// Client asks one auth_http service. It is safe for concurrent use; create
// it with New. The Client owns its http.Transport (the pool of kept-alive
// connections), the slots that bound requests in flight, and the cache.
type Client struct {
	opts  Options
	url   string // the URL requested; user info goes as Basic authorization
	safe  string // the URL for logs and errors: no user info, no query
	user  *url.Userinfo
	pool  *pool         // kept-alive connections (pool.go)
	slots chan struct{} // one token per request in flight
	cache *cache        // nil without CacheTTL
}

// New checks opts and returns a Client. The URL must be http:// or
// https:// with a host.
func New(opts Options) (*Client, error) {
	opts = opts.withDefaults()
	u, err := url.Parse(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("auth_http url: %w", errors.Unwrap(err))
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, errors.New("auth_http url must be http:// or https:// with a host")
	}
	safe := *u
	safe.User, safe.RawQuery, safe.Fragment = nil, "", ""
	c := &Client{
		opts:  opts,
		url:   u.String(),
		safe:  safe.String(),
		user:  u.User,
		pool:  newPool(u, opts.MaxInFlight, opts.Timeout),
		slots: make(chan struct{}, opts.MaxInFlight),
	}
	if opts.CacheTTL > 0 {
		c.cache = newCache(opts.CacheTTL, opts.CacheEntries)
	}
	return c, nil
}

// URL returns the service's URL without user info or query, for logs.
func (c *Client) URL() string { return c.safe }

// Close closes the idle connections to the service. Requests in flight
// finish; the Client stays usable.
func (c *Client) Close() { c.pool.closeIdle() }

// Authenticate asks the service about r. It returns the service's Answer
// (OK or a refusal), or an error wrapping ErrService when there is no
// usable answer within the timeout, or ctx's error. Auth-Status: WAIT is
// followed up to MaxWaitRounds times, sleeping Auth-Wait between rounds.
func (c *Client) Authenticate(ctx context.Context, r *Request) (*Answer, error) {
	var key cacheKey
	if c.cache != nil {
		key = c.cache.key(r)
		if a, ok := c.cache.get(key, time.Now()); ok {
			return a, nil
		}
	}
	for round := 0; ; round++ {
		a, err := c.ask(ctx, r)
		if err != nil {
			return nil, err
		}
		if a.Status != "WAIT" {
			if a.OK && c.cache != nil {
				c.cache.put(key, a, time.Now())
			}
			return a, nil
		}
		if round+1 >= MaxWaitRounds {
			return nil, serviceError("still WAIT after %d rounds", MaxWaitRounds)
		}
		t := time.NewTimer(a.Wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("auth_http WAIT: %w", ctx.Err())
		}
	}
}

// ask makes one request within the timeout, waiting for a slot first.
func (c *Client) ask(ctx context.Context, r *Request) (*Answer, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	select {
	case c.slots <- struct{}{}:
		defer func() { <-c.slots }()
	case <-ctx.Done():
		return nil, serviceError("no free slot within %s (%d requests in flight)", c.opts.Timeout, cap(c.slots))
	}
	req, err := c.httpRequest(ctx, r)
	if err != nil {
		return nil, err
	}
	h, status, err := c.pool.roundTrip(ctx, req)
	if err != nil {
		return nil, serviceError("%s: %v", c.safe, scrub(ctx, err))
	}
	a, err := parseAnswer(h, r.Method)
	if err != nil {
		return nil, fmt.Errorf("%s (HTTP %d): %w", c.safe, status, err)
	}
	return a, nil
}

// scrub returns err's text, or "timed out" when ctx's deadline passed.
// The errors of a request name addresses, never the URL's user info.
func scrub(ctx context.Context, err error) string {
	var ne net.Error
	if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	return err.Error()
}
