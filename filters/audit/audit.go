package audit

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
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
	// Instance names this popgate instance in every record ("instance",
	// after "event"), so that trails shipped from a fleet to one place
	// still say which instance wrote each record. main sets it from the
	// cluster block's instance; "" (no cluster) writes no field, and the
	// records are those of a single popgate.
	Instance string
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
	cfg     Config
	w       *writer
	logger  hclog.Logger
	mu      sync.Mutex // serialises the creation of per-session state
	orphans *session   // the state of exchanges without a Session
	closed  atomic.Bool
}

var (
	_ filters.Filter         = (*Filter)(nil)
	_ filters.CommandFilter  = (*Filter)(nil)
	_ filters.ResponseFilter = (*Filter)(nil)
	_ filters.Finisher       = (*Filter)(nil)
	_ filters.Exclusive      = (*Filter)(nil)
	_ filters.Observer       = (*Filter)(nil)
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

// maxKeptLine bounds the line buffers kept for reuse between records.
const maxKeptLine = 64 << 10

// lines holds line buffers (*[]byte) for reuse, so that encoding a record
// allocates nothing.
var lines = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// record writes one record. A failed write is counted through
// Config.OnWriteError and logged, and otherwise ignored: the audit trail
// never stops mail access.
func (f *Filter) record(rec jsonRecord) {
	lp := lines.Get().(*[]byte)
	*lp = rec.appendJSON(append((*lp)[:0], 0))
	f.emit(lp)
}

// recordLater is record for the records of an exchange whose answer has
// not reached the client yet: they may wait for the end of the session's
// burst (Flush), so that a pipelined burst is written with one write.
func (f *Filter) recordLater(rec jsonRecord) {
	lp := lines.Get().(*[]byte)
	*lp = rec.appendJSON(append((*lp)[:0], 0))
	f.emitLater(lp)
}

// recordCommand is recordLater for the command record of every exchange,
// with no interface in the way, so that rec does not escape.
func (f *Filter) recordCommand(rec *commandRecord) {
	lp := lines.Get().(*[]byte)
	*lp = rec.appendJSON(append((*lp)[:0], 0))
	f.emitLater(lp)
}

// recordRetrieve is recordCommand for retrieve records.
func (f *Filter) recordRetrieve(rec *retrieveRecord) {
	lp := lines.Get().(*[]byte)
	*lp = rec.appendJSON(append((*lp)[:0], 0))
	f.emitLater(lp)
}

// Flush writes the records that wait for the end of a burst. The session
// calls it before it sends the answers it holds to the client, so the
// records of an exchange reach the file before its answer reaches the
// client. It implements filters.Flusher.
func (f *Filter) Flush(*filters.Session) {
	if f.closed.Load() {
		return
	}
	lost, err := f.w.flush()
	f.lostRecords(lost, err)
}

// emit writes the line in *lp (see writer.write) and returns the buffer
// to lines.
func (f *Filter) emit(lp *[]byte) { f.emitWith(lp, (*writer).write) }

// emitLater is emit for a record that may wait (writer.deferred).
func (f *Filter) emitLater(lp *[]byte) { f.emitWith(lp, (*writer).deferred) }

func (f *Filter) emitWith(lp *[]byte, write func(*writer, []byte, bool) ([]byte, int, error)) {
	err, lost := ErrClosed, 1
	if !f.closed.Load() {
		*lp, lost, err = write(f.w, *lp, f.cfg.Chain)
	}
	if cap(*lp) <= maxKeptLine {
		lines.Put(lp)
	}
	f.lostRecords(lost, err)
}

// lostRecords counts lost records through Config.OnWriteError, once per
// record.
func (f *Filter) lostRecords(lost int, err error) {
	if err == nil || lost == 0 {
		return
	}
	if f.cfg.OnWriteError != nil {
		for range lost {
			f.cfg.OnWriteError(err)
		}
	}
	if errors.Is(err, ErrClosed) {
		// The writer logs write failures; a closed filter is a bug of
		// whoever closed it while a session still used it.
		f.logger.Error("audit: record lost: the filter was closed while a session still used it", "path", f.cfg.Path)
	}
}
