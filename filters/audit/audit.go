package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Config configures the audit filter. main fills it from the configuration
// file.
type Config struct {
	// Path is the file records are appended to, created with mode 0600 if
	// absent, or "-" for standard output.
	Path string
	// Chain makes every record carry "prev_hash" and "hash" fields that
	// link it to the record before it, so that Verify can detect edits.
	Chain bool
}

// Filter writes the audit trail. It is safe for concurrent use by any
// number of sessions; create it once with New and Close it at shutdown.
type Filter struct {
	w      *writer
	logger hclog.Logger
	mu     sync.Mutex // serialises the creation of per-session state
}

var (
	_ filters.Filter    = (*Filter)(nil)
	_ filters.Observer  = (*Filter)(nil)
	_ filters.Exclusive = (*Filter)(nil)
)

// New opens cfg.Path for appending and returns the filter. When chaining,
// the chain continues from the last record already in the file, if any.
// A nil logger discards the filter's own diagnostics.
func New(cfg Config, logger hclog.Logger) (*Filter, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: path is empty (use \"-\" for standard output)")
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	w, err := newWriter(cfg.Path, cfg.Chain, logger)
	if err != nil {
		return nil, err
	}
	return &Filter{w: w, logger: logger}, nil
}

// Name returns "audit".
func (f *Filter) Name() string { return "audit" }

// Wrap returns a Handler that records every exchange passing through it.
// The filter is meant to be the first of the chain, where it sees the
// client's commands one call each; placed after a filter that calls next
// several times, it records every one of those calls as a command record.
func (f *Filter) Wrap(next filters.Handler) filters.Handler {
	return filters.HandlerFunc(func(ctx context.Context, ex *filters.Exchange) error {
		return f.serve(ctx, ex, next)
	})
}

// Exclusive reports whether serving cmd may call next twice: for RETR and
// TOP of a message whose unique-id is not known yet, the filter first asks
// the backend "UIDL n". It implements filters.Exclusive.
func (f *Filter) Exclusive(cmd parser.Command, s *filters.Session) bool {
	if cmd.Verb != "RETR" && cmd.Verb != "TOP" {
		return false
	}
	msg, ok := parseMsg(cmd.Arg(0))
	return ok && f.state(s).needsLookup(msg)
}

// Reopen closes the audit file and opens its path again, for log rotation
// (call it on SIGHUP after the file has been renamed). With Chain, the
// first record of the new file continues the chain of the old one. It does
// nothing for standard output.
func (f *Filter) Reopen() error { return f.w.reopen() }

// Close closes the audit file; records of sessions still running are lost
// after it. Standard output is not closed.
func (f *Filter) Close() error { return f.w.close() }

// record writes one record. A failed write is logged by the writer and
// otherwise ignored: the audit trail never stops mail access.
func (f *Filter) record(rec any) {
	if err := f.w.write(rec); err != nil && !errors.Is(err, ErrClosed) {
		f.logger.Debug("audit: record lost", "error", err)
	}
}

// lookupUIDL asks the backend for the unique-id of msg before ex.Out (a
// RETR or TOP) is sent, and restores the exchange for that second call. It
// returns the unique-id, or "" when the backend gave none.
func (f *Filter) lookupUIDL(ctx context.Context, ex *filters.Exchange, next filters.Handler, st *session, msg int) (string, error) {
	out := ex.Out
	ex.Out = parser.NewCommand("UIDL", out.Arg(0))
	ex.Response, ex.Body = parser.Response{}, nil
	err := next.Serve(ctx, ex)
	if err == nil && ex.Body != nil {
		// UIDL n has no body (parser.HasBody); drain one anyway so the
		// backend stream stays in step.
		err = drain(ex.Body)
	}
	resp := ex.Response
	ex.Out = out
	ex.Response, ex.Body = parser.Response{}, nil
	if err != nil {
		return "", fmt.Errorf("audit: UIDL %d before %s: %w", msg, out.Verb, err)
	}
	if !resp.IsOK() {
		return "", nil
	}
	n, uid, ok := parseUIDLLine(resp.Text)
	if !ok || n != msg {
		return "", nil
	}
	st.storeUID(n, uid)
	return uid, nil
}

// wantsLookup reports whether to ask the backend for the unique-id before
// serving ex. It implies Exclusive(ex.Command) as long as the answer of
// Exclusive was true or the cache has not changed in between; the cache
// only ever stops needing lookups, never starts again.
func wantsLookup(ex *filters.Exchange, st *session) (int, bool) {
	cmd := ex.Command
	if cmd.Verb != "RETR" && cmd.Verb != "TOP" {
		return 0, false
	}
	if ex.Out.Verb != cmd.Verb || ex.Out.Arg(0) != cmd.Arg(0) {
		return 0, false
	}
	if ex.Session == nil || ex.Session.State() != filters.Transaction {
		return 0, false
	}
	msg, ok := parseMsg(cmd.Arg(0))
	if !ok || !st.needsLookup(msg) {
		return 0, false
	}
	return msg, true
}

// drain reads r to its end.
func drain(r io.Reader) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
