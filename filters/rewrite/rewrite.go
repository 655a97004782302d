package rewrite

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Config configures the rewrite filter. main fills it from the
// configuration file. The zero value rewrites nothing.
type Config struct {
	// StripDomain removes the "@domain" suffix (from the last '@').
	StripDomain bool
	// AddDomain, if not "", is appended as "@" + AddDomain to a login that
	// has no '@' (after StripDomain, so both together replace the domain).
	AddDomain string
	// Lowercase lower-cases the login.
	Lowercase bool
	// MapFile, if not "", is a file of "login backend-login" lines; a login
	// found there is replaced by its backend login and no other rule
	// applies.
	MapFile string
}

// Filter rewrites login names before routing and the backend login. It is
// safe for concurrent use by any number of sessions; create it with New.
type Filter struct {
	rules  rules
	path   string
	m      atomic.Pointer[loginMap]
	logger hclog.Logger
}

var (
	_ filters.Filter        = (*Filter)(nil)
	_ filters.CommandFilter = (*Filter)(nil)
	_ filters.LoginRewriter = (*Filter)(nil)
)

// New checks cfg, reads cfg.MapFile if set, and returns the filter. A nil
// logger discards the filter's own diagnostics.
func New(cfg Config, logger hclog.Logger) (*Filter, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	if cfg.AddDomain != "" {
		if strings.Contains(cfg.AddDomain, "@") {
			return nil, fmt.Errorf("rewrite: add_domain %q must not contain '@'", cfg.AddDomain)
		}
		if err := check(cfg.AddDomain); err != nil {
			return nil, fmt.Errorf("rewrite: add_domain %q: %w", cfg.AddDomain, err)
		}
	}
	f := &Filter{
		rules:  rules{lowercase: cfg.Lowercase, stripDomain: cfg.StripDomain, addDomain: cfg.AddDomain},
		path:   cfg.MapFile,
		logger: logger,
	}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload reads the map file again (on SIGHUP). On error the map in use is
// kept and the error is returned. Without a map file it does nothing.
func (f *Filter) Reload() error {
	if f.path == "" {
		return nil
	}
	m, err := loadMap(f.path)
	if err != nil {
		return err
	}
	f.m.Store(&m)
	f.logger.Info("rewrite: map loaded", "file", f.path, "entries", len(m))
	return nil
}

// Name returns "rewrite".
func (f *Filter) Name() string { return "rewrite" }

// Rewrite returns the backend login for login by the configured rules, or
// an error wrapping ErrBadLogin when the result is unusable.
func (f *Filter) Rewrite(login string) (string, error) {
	var m loginMap
	if p := f.m.Load(); p != nil {
		m = *p
	}
	out, err := f.rules.apply(m, login)
	if err != nil {
		return "", fmt.Errorf("rewrite: %w", err)
	}
	return out, nil
}

// RewriteLogin rewrites l.BackendUser (l.User when BackendUser is empty).
// l.User stays the client's login. It implements filters.LoginRewriter:
// the session calls it in after-auth mode, before routing and the backend
// login, where an error makes it refuse the login with -ERR [AUTH]; and,
// in on-accept mode, for the login name inside the SASL responses it
// relays to the backend (AUTH PLAIN, LOGIN, CRAM-MD5).
func (f *Filter) RewriteLogin(s *filters.Session, l *filters.Login) error {
	in := l.BackendUser
	if in == "" {
		in = l.User
	}
	out, err := f.Rewrite(in)
	if err != nil {
		return err
	}
	if out != in && s != nil && s.Logger != nil {
		s.Logger.Debug("rewrite: login rewritten", "user", l.User, "backend_user", out)
	}
	l.BackendUser = out
	return nil
}

// Command rewrites the login in on-accept mode, where the client logs in
// to the backend directly: in the AUTHORIZATION state it rewrites the login
// name (first argument) of USER and APOP in Exchange.Out; Exchange.Command
// keeps the client's. An unusable result is answered with -ERR [AUTH] and
// never reaches the backend. In after-auth mode it does nothing, since the
// session calls RewriteLogin there. It implements filters.CommandFilter.
func (f *Filter) Command(_ context.Context, ex *filters.Exchange) error {
	s := ex.Session
	if s.AfterAuth || s.State() != filters.Authorization ||
		ex.Out.Verb != "USER" && ex.Out.Verb != "APOP" || len(ex.Out.Args) == 0 {
		return nil
	}
	out, err := f.Rewrite(ex.Out.Args[0])
	if err != nil {
		return parser.NewError(parser.CodeAuth, "authentication failed", err)
	}
	if out != ex.Out.Args[0] {
		// A fresh slice: Out may share its arguments with Command.
		args := append([]string(nil), ex.Out.Args...)
		args[0] = out
		ex.Out.Args = args
		if s.Logger != nil {
			s.Logger.Debug("rewrite: login rewritten", "user", ex.Command.Arg(0), "backend_user", out)
		}
	}
	return nil
}
