package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/popgate/popgate/proxy"
)

// Client talks to a running popgate's admin interface: `popgate
// sessions` and `popgate kick` use it.
type Client struct {
	hc    *http.Client
	base  string // "http://popgate" on the socket, "http://HOST:PORT" on TCP
	token string
	// Where names what the client talks to, for messages.
	Where string
}

// NewClient returns a client of the first socket of sockets that exists;
// when none does and tcpAddr is set, of the TCP address with token.
func NewClient(sockets []string, tcpAddr, token string) (*Client, error) {
	for _, p := range sockets {
		if _, err := os.Stat(p); err == nil {
			path := p
			tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "unix", path)
			}}
			return &Client{hc: &http.Client{Transport: tr}, base: "http://popgate", Where: p}, nil
		} else if !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("admin socket %s: %w", p, err)
		}
	}
	if tcpAddr != "" {
		return &Client{hc: &http.Client{}, base: "http://" + tcpAddr, token: token, Where: tcpAddr}, nil
	}
	return nil, fmt.Errorf("no admin socket found (looked for %s): is popgate running with this configuration?",
		strings.Join(sockets, ", "))
}

// Sessions lists the open sessions m matches (ID, User, Addr, Backend).
func (c *Client) Sessions(ctx context.Context, m proxy.Match) ([]proxy.SessionInfo, error) {
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("user", m.User)
	set("id", m.ID)
	set("backend", m.Backend)
	set("addr", prefixString(m.Addr))
	var out SessionsResponse
	if err := c.do(ctx, http.MethodGet, "/v1/sessions?"+q.Encode(), nil, &out); err != nil {
		return nil, err
	}
	return out.Sessions, nil
}

// Kick closes the sessions req selects, blocking first when req.Block is
// set.
func (c *Client) Kick(ctx context.Context, req KickRequest) (KickResponse, error) {
	var out KickResponse
	err := c.do(ctx, http.MethodPost, "/v1/kick", req, &out)
	return out, err
}

// Blocks lists the blocks in force.
func (c *Client) Blocks(ctx context.Context) ([]proxy.Block, error) {
	var out BlocksResponse
	err := c.do(ctx, http.MethodGet, "/v1/blocks", nil, &out)
	return out.Blocks, err
}

func (c *Client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("admin interface at %s: %w", c.Where, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		json.NewDecoder(io.LimitReader(resp.Body, 4096)).Decode(&e)
		return fmt.Errorf("admin interface at %s: %s: %s", c.Where, resp.Status, e.Error)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("admin interface at %s: reading the answer: %w", c.Where, err)
	}
	return nil
}
