package policy

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Config configures the policy filter. main fills it from the configuration
// file. The zero Config permits everything.
type Config struct {
	// Deny lists the commands answered "-ERR <VERB> not permitted by
	// policy" without reaching the backend, by keyword in upper case
	// ("DELE", "TOP", ...). QUIT cannot be denied. Denying RETR denies
	// TOP too: TOP with a large line count sends the whole message
	// (RFC 1939 section 7). Denying TOP alone leaves RETR alone.
	Deny []string
	// MaxMessageSize refuses RETR and TOP of messages whose size, as the
	// backend's LIST reports it, is larger than this many octets; 0 means
	// no limit.
	MaxMessageSize int64
}

// Filter is the policy filter. Its configuration is immutable after New;
// the sizes it learns are kept per session (sizeCache). It is safe for
// concurrent use by any number of sessions.
type Filter struct {
	deny    map[string]bool
	maxSize int64
	cacheMu sync.Mutex // creating a session's sizeCache
}

var (
	_ filters.CommandFilter  = (*Filter)(nil)
	_ filters.ResponseFilter = (*Filter)(nil)
	_ filters.Exclusive      = (*Filter)(nil)
)

// New validates cfg and returns the filter. Verbs in Deny must be command
// keywords in upper case (RFC 1939 section 3 keywords, up to
// parser.MaxVerbLength letters, digits or hyphens); QUIT is refused, since a
// client must always be able to end its session and commit (RFC 1939
// section 6). A negative MaxMessageSize is refused. A RETR in Deny adds
// TOP.
func New(cfg Config) (*Filter, error) {
	f := &Filter{deny: make(map[string]bool), maxSize: cfg.MaxMessageSize}
	for _, v := range cfg.Deny {
		if err := checkVerb(v); err != nil {
			return nil, fmt.Errorf("policy: deny %q: %w", v, err)
		}
		f.deny[v] = true
	}
	if f.deny["RETR"] {
		f.deny["TOP"] = true
	}
	if cfg.MaxMessageSize < 0 {
		return nil, fmt.Errorf("policy: max_message_size %d is negative", cfg.MaxMessageSize)
	}
	return f, nil
}

// checkVerb checks one entry of Config.Deny.
func checkVerb(v string) error {
	if v == "" || len(v) > parser.MaxVerbLength {
		return fmt.Errorf("a command keyword has 1 to %d characters", parser.MaxVerbLength)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch {
		case c >= 'a' && c <= 'z':
			return errors.New("command keywords are written in upper case")
		case !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-'):
			return errors.New("not a command keyword")
		}
	}
	if v == "QUIT" {
		return errors.New("QUIT cannot be denied: clients must be able to end the session")
	}
	return nil
}

// Name returns "policy".
func (f *Filter) Name() string { return "policy" }

// Command answers denied commands itself, and RETR and TOP of messages
// over the size limit (size.go); everything else passes to the backend.
// It implements filters.CommandFilter.
func (f *Filter) Command(ctx context.Context, ex *filters.Exchange) error {
	if f.deny[ex.Command.Verb] {
		ex.Response, ex.Body = denied(ex.Command.Verb), nil
		return nil
	}
	if f.checksSize(ex) {
		return f.checkSize(ctx, ex)
	}
	return nil
}

// Response hides the capabilities of denied commands from a CAPA answer
// (capa.go): it wraps the body, which the session closes. It implements
// filters.ResponseFilter.
func (f *Filter) Response(_ context.Context, ex *filters.Exchange) error {
	if ex.Out.Verb == "CAPA" && ex.Response.IsOK() && ex.Body != nil && len(f.deny) > 0 {
		ex.Body = newCapaFilter(ex.Body, f.hidden)
	}
	return nil
}

// denied is the answer to a denied command. It carries no response code:
// RFC 3206's SYS/PERM means a permanent system failure and makes clients
// give up on the session or alarm the user, while a command a server will
// not perform is answered with a plain -ERR (RFC 1939 section 3). The verb
// comes from the parser, so it holds only letters, digits and hyphens.
func denied(verb string) parser.Response {
	return parser.Err("", verb+" not permitted by policy")
}

// hidden reports whether a CAPA line whose first word is tag announces a
// denied command (RFC 2449 section 6): the tag names the command, or is
// SASL for AUTH, or USER for USER and PASS.
func (f *Filter) hidden(tag string) bool {
	switch tag {
	case "SASL":
		return f.deny["AUTH"]
	case "USER":
		return f.deny["USER"] || f.deny["PASS"]
	}
	return f.deny[tag]
}
