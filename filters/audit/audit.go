package audit

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// Config configures the audit filter. main fills it from the configuration
// file.
type Config struct {
	// Path is the file records are appended to, created with mode 0600 if
	// absent, or "-" for standard output. The file is held under an
	// exclusive flock(2) while any Filter of this process uses it.
	Path string
	// Chain makes every record carry "prev_hash" and "hash" fields that
	// link it to the record before it, so that Verify can detect edits.
	Chain bool
	// Sync says when records are flushed to stable storage; "" means
	// SyncInterval. Filters sharing a file get the strictest policy of
	// them all.
	Sync SyncPolicy
	// SyncInterval is the period of SyncInterval; 0 means
	// DefaultSyncInterval.
	SyncInterval time.Duration
	// OnWriteError, when set, is called for every record that could not
	// be written (the writer logs the first of a run of failures), so
	// that no record is lost without being counted.
	OnWriteError func(error)
}

// Filter writes the audit trail. It is safe for concurrent use by any
// number of sessions; create it with New and Close it when no session
// uses it any more. Filters of one process on the same path share one
// writer, which owns the file: the first New opens and locks it, the last
// Close closes it.
type Filter struct {
	cfg    Config
	w      *writer
	logger hclog.Logger
	mu     sync.Mutex // serialises the creation of per-session state
	closed atomic.Bool
}

var (
	_ filters.Filter    = (*Filter)(nil)
	_ filters.Observer  = (*Filter)(nil)
	_ filters.Exclusive = (*Filter)(nil)
)

// New opens cfg.Path for appending, or shares the writer of a Filter of
// this process already using it, and returns the filter. When chaining,
// the chain continues from the last record already in the file, if any;
// a torn or damaged tail is named in a chain_break record at once. A file
// locked by another process is ErrLocked. A nil logger discards the
// filter's own diagnostics.
func New(cfg Config, logger hclog.Logger) (*Filter, error) {
	if cfg.Path == "" {
		return nil, errors.New("audit: path is empty (use \"-\" for standard output)")
	}
	switch cfg.Sync {
	case "":
		cfg.Sync = SyncInterval
	case SyncInterval, SyncRecord, SyncNone:
	default:
		return nil, fmt.Errorf("audit: unknown sync policy %q", cfg.Sync)
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = DefaultSyncInterval
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	f := &Filter{cfg: cfg, logger: logger}
	w, err := acquire(f, cfg)
	if err != nil {
		return nil, err
	}
	f.w = w
	return f, nil
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
func (f *Filter) Reopen() error {
	if f.closed.Load() {
		return ErrClosed
	}
	return f.w.reopen(f.cfg.Chain)
}

// Close ends f's use of its file, which is synced and closed (and its lock
// released) when no other Filter of the process uses it. Records written
// through f after Close are lost, counted and logged: close a Filter only
// when no session uses it. Standard output is not closed.
func (f *Filter) Close() error {
	if !f.closed.CompareAndSwap(false, true) {
		return nil
	}
	return f.w.release(f)
}

// record writes one record. A failed write is counted through
// Config.OnWriteError and logged, and otherwise ignored: the audit trail
// never stops mail access.
func (f *Filter) record(rec any) {
	err := ErrClosed
	if !f.closed.Load() {
		err = f.w.write(rec, f.cfg.Chain)
	}
	if err == nil {
		return
	}
	if f.cfg.OnWriteError != nil {
		f.cfg.OnWriteError(err)
	}
	if errors.Is(err, ErrClosed) {
		// The writer logs write failures; a closed filter is a bug of
		// whoever closed it while a session still used it.
		f.logger.Error("audit: record lost: the filter was closed while a session still used it", "path", f.cfg.Path)
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
