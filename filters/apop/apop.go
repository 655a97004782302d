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
	_ filters.CommandFilter    = (*Filter)(nil)
	_ filters.Exclusive        = (*Filter)(nil)
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

// mechanism returns "apop" or "cram-md5" when ex is a login this filter
// answers: APOP or AUTH CRAM-MD5 in after-auth mode and the AUTHORIZATION
// state. It returns "" for everything else, which passes untouched.
func mechanism(ex *filters.Exchange) string {
	if !ex.Session.AfterAuth || ex.Session.State() != filters.Authorization {
		return ""
	}
	switch ex.Out.Verb {
	case "APOP":
		return "apop"
	case "AUTH":
		if strings.EqualFold(ex.Out.Arg(0), "CRAM-MD5") {
			return "cram-md5"
		}
	}
	return ""
}

// Exclusive reports whether ex is an APOP or AUTH CRAM-MD5 login this
// filter answers: a verified one makes an extra round trip (USER) through
// Exchange.Backend, so it must run alone. It implements filters.Exclusive;
// a session makes few login attempts, so the pipeline drains rarely.
func (f *Filter) Exclusive(ex *filters.Exchange) bool { return mechanism(ex) != "" }

// Command answers APOP and AUTH CRAM-MD5 in after-auth mode and the
// AUTHORIZATION state. A failed attempt is answered locally; a verified
// one sends USER through Exchange.Backend and leaves PASS in Exchange.Out
// for the session to send. Everything else, and everything in on-accept
// mode, passes untouched. It implements filters.CommandFilter.
func (f *Filter) Command(ctx context.Context, ex *filters.Exchange) error {
	switch mechanism(ex) {
	case "apop":
		return f.commandAPOP(ctx, ex)
	case "cram-md5":
		return f.commandCRAM(ctx, ex)
	}
	return nil
}

// commandAPOP verifies "APOP name digest" (RFC 1939 section 7). The
// session names the attempt from the client's command.
func (f *Filter) commandAPOP(ctx context.Context, ex *filters.Exchange) error {
	if len(ex.Out.Args) != 2 {
		ex.Response = parser.Err("", "usage: APOP name digest")
		return nil
	}
	name, digest := ex.Out.Args[0], ex.Out.Args[1]
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
	return translate(ctx, ex, name, secret)
}

// translate logs a verified user in with USER and PASS: USER name goes
// through Exchange.Backend (to popgate's AUTHORIZATION server, which
// records the login), and, if that is answered +OK, Exchange.Out becomes
// PASS secret, which the session sends; the exchange's answer is the
// answer to PASS. If USER is not answered +OK, that answer is the
// exchange's. The exchange is exclusive (see Exclusive), so nothing
// interleaves between the two.
func translate(ctx context.Context, ex *filters.Exchange, name, secret string) error {
	if ex.Backend == nil {
		return parser.NewError(parser.CodeSysTemp, "authentication not available", errNoBackend)
	}
	resp, _, err := ex.Backend.Call(ctx, parser.Command{Verb: "USER", Args: []string{name}})
	if err != nil {
		return err
	}
	if !resp.IsOK() {
		ex.Response = resp
		return nil
	}
	ex.Out = parser.Command{Verb: "PASS", Args: []string{secret}}
	return nil
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

var (
	// errNoPrompt means the session gave an AUTH exchange no way to talk
	// to the client.
	errNoPrompt = errors.New("apop: AUTH exchange without a Prompt")
	// errNoBackend means the session ran a verified login without the
	// Backend that Exclusive asked for.
	errNoBackend = errors.New("apop: login exchange without a Backend")
)
