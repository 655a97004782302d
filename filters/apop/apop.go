package apop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Config configures the apop filter. main fills it from the configuration
// file.
type Config struct {
	// SecretsFile is the file of "user:password" lines. It is refused
	// unless only its owner may access it (mode 0600 or stricter).
	SecretsFile string
	// Host is the host part of CRAM-MD5 challenges (and of NewTimestamp);
	// "" means the machine's host name, or "popgate" if it has none.
	Host string
}

// Filter accepts APOP and AUTH CRAM-MD5 from clients in after-auth mode
// and logs in to the backend with USER and PASS. It is safe for concurrent
// use by any number of sessions; create it with New.
type Filter struct {
	secrets atomic.Pointer[secrets]
	path    string
	host    string
	decoy   string // secret of unknown users, so they take the same path
	logger  hclog.Logger
}

var (
	_ filters.Filter           = (*Filter)(nil)
	_ filters.PasswordVerifier = (*Filter)(nil)
)

// authFailed is the answer to every failed APOP or CRAM-MD5 attempt,
// whatever the reason, so an unknown user looks like a wrong digest.
var authFailed = parser.Err(parser.CodeAuth, "authentication failed")

// New reads cfg.SecretsFile and returns the filter. A nil logger discards
// the filter's own diagnostics.
func New(cfg Config, logger hclog.Logger) (*Filter, error) {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	host := cfg.Host
	if host == "" {
		host, _ = os.Hostname()
		if !validHost(host) {
			host = "popgate"
		}
	} else if !validHost(host) {
		return nil, fmt.Errorf("apop: host %q is not a host name", cfg.Host)
	}
	s, err := loadSecrets(cfg.SecretsFile)
	if err != nil {
		return nil, err
	}
	f := &Filter{path: cfg.SecretsFile, host: host, decoy: newDecoy(), logger: logger}
	f.secrets.Store(&s)
	return f, nil
}

// Reload reads the secrets file again (on SIGHUP). On error the secrets
// in use are kept and the error is returned. Sessions see the new secrets
// from their next attempt on.
func (f *Filter) Reload() error {
	s, err := loadSecrets(f.path)
	if err != nil {
		return err
	}
	f.secrets.Store(&s)
	f.logger.Info("apop: secrets reloaded", "file", f.path, "users", len(s))
	return nil
}

// Name returns "apop".
func (f *Filter) Name() string { return "apop" }

// Wrap returns a Handler that, in after-auth mode and the AUTHORIZATION
// state, answers APOP and AUTH CRAM-MD5 itself and turns a verified login
// into USER and PASS for next. Everything else, and everything in
// on-accept mode, goes to next untouched.
func (f *Filter) Wrap(next filters.Handler) filters.Handler {
	return filters.HandlerFunc(func(ctx context.Context, ex *filters.Exchange) error {
		if !ex.Session.AfterAuth || ex.Session.State() != filters.Authorization {
			return next.Serve(ctx, ex)
		}
		switch ex.Out.Verb {
		case "APOP":
			return f.serveAPOP(ctx, ex, next)
		case "AUTH":
			if strings.EqualFold(ex.Out.Arg(0), "CRAM-MD5") {
				return f.serveCRAM(ctx, ex, next)
			}
		}
		return next.Serve(ctx, ex)
	})
}

// serveAPOP verifies "APOP name digest" (RFC 1939 section 7).
func (f *Filter) serveAPOP(ctx context.Context, ex *filters.Exchange, next filters.Handler) error {
	if len(ex.Out.Args) != 2 {
		ex.Response = parser.Err("", "usage: APOP name digest")
		return nil
	}
	name, digest := ex.Out.Args[0], ex.Out.Args[1]
	begin(ex.Session, name, "apop")
	ts := ex.Session.Timestamp
	if ts == "" {
		ex.Response = parser.Err("", "APOP not available: no timestamp in the greeting")
		return nil
	}
	secret, ok := f.verify(name, digest, func(secret string) []byte { return apopDigest(ts, secret) })
	if !ok {
		f.log(ex).Debug("apop: authentication failed", "user", name, "mechanism", "apop")
		ex.Response = authFailed
		return nil
	}
	f.log(ex).Debug("apop: digest verified", "user", name, "mechanism", "apop")
	return translate(ctx, ex, next, name, secret, "apop")
}

// begin records the start of a login attempt, so the session's throttle
// and logs name the user even when the attempt fails here.
func begin(s *filters.Session, name, mechanism string) {
	s.Login = filters.Login{User: name, BackendUser: name, Mechanism: mechanism, Backend: s.Login.Backend}
}

// translate logs in to the backend for a verified user by calling next
// twice, with USER name and then PASS secret. The exchange ends with the
// answer to PASS, or with the answer to USER if that was not +OK. The
// session runs AUTHORIZATION-state exchanges exclusively, so the two
// calls cannot interleave with another command.
func translate(ctx context.Context, ex *filters.Exchange, next filters.Handler, name, secret, mechanism string) error {
	ex.Out = parser.Command{Verb: "USER", Args: []string{name}}
	ex.Response, ex.Body = parser.Response{}, nil
	if err := next.Serve(ctx, ex); err != nil {
		return err
	}
	if !ex.Response.IsOK() {
		return nil
	}
	// The innermost handler took the login name from the client's
	// command, which for AUTH is the mechanism: set it right.
	ex.Session.Login.User = name
	ex.Session.Login.Mechanism = mechanism
	ex.Out = parser.Command{Verb: "PASS", Args: []string{secret}}
	ex.Response, ex.Body = parser.Response{}, nil
	return next.Serve(ctx, ex)
}

// log returns the session's logger, or the filter's.
func (f *Filter) log(ex *filters.Exchange) hclog.Logger {
	if ex.Session.Logger != nil {
		return ex.Session.Logger
	}
	return f.logger
}

// validHost reports whether h is usable as the host part of a timestamp:
// letters, digits, '.', '-' and '_' only.
func validHost(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// errNoPrompt means the session gave an AUTH exchange no way to talk to
// the client.
var errNoPrompt = errors.New("apop: AUTH exchange without a Prompt")
