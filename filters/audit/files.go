package audit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// SyncPolicy says when records are flushed to stable storage with fsync.
type SyncPolicy string

// The sync policies.
const (
	// SyncInterval syncs at most Config.SyncInterval after a record was
	// written: a power loss loses at most that much of the trail, and
	// sessions never wait for the disk. It is the default ("").
	SyncInterval SyncPolicy = "interval"
	// SyncRecord syncs after every record, before the next one is
	// written: nothing acknowledged is lost, at the cost of one fsync per
	// record, taken while other sessions' records wait.
	SyncRecord SyncPolicy = "record"
	// SyncNone never syncs; the operating system writes back when it
	// likes.
	SyncNone SyncPolicy = "none"
)

// DefaultSyncInterval is the period of SyncInterval when Config sets none.
const DefaultSyncInterval = time.Second

// syncSetting is one Filter's sync policy for its writer.
type syncSetting struct {
	policy   SyncPolicy
	interval time.Duration
}

// files holds the writer of every audit file open in this process, by
// absolute path ("-" for stdout). Filters on one path share its writer, so
// the file has one lock, one chain and one writer whatever the number of
// configuration generations using it; the writer closes with the last of
// them.
var files = struct {
	sync.Mutex
	m map[string]*writer
}{m: map[string]*writer{}}

// fileKey returns the files key of path.
func fileKey(path string) (string, error) {
	if path == "-" {
		return path, nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", fmt.Errorf("audit: %s: %w", path, err)
	}
	return abs, nil
}

// acquire returns the writer of cfg.Path, opening it if no Filter of this
// process uses it yet, and counts f among its users.
func acquire(f *Filter, cfg Config) (*writer, error) {
	key, err := fileKey(cfg.Path)
	if err != nil {
		return nil, err
	}
	files.Lock()
	defer files.Unlock()
	w := files.m[key]
	if w == nil {
		if w, err = newWriter(cfg.Path, key, cfg.Instance, cfg.Chain, f.logger); err != nil {
			return nil, err
		}
		files.m[key] = w
	}
	w.mu.Lock()
	w.users[f] = syncSetting{policy: cfg.Sync, interval: cfg.SyncInterval}
	w.setPolicy()
	w.mu.Unlock()
	return w, nil
}

// release removes f from w's users and closes w after its last user.
func (w *writer) release(f *Filter) error {
	files.Lock()
	defer files.Unlock()
	w.mu.Lock()
	delete(w.users, f)
	w.setPolicy()
	last := len(w.users) == 0
	w.mu.Unlock()
	if !last {
		return nil
	}
	delete(files.m, w.key)
	return w.close()
}

// setPolicy makes the strictest policy of w's users w's own: record over
// interval over none, and the shortest interval. Callers hold w.mu.
func (w *writer) setPolicy() {
	w.policy, w.interval = SyncNone, 0
	for _, s := range w.users {
		switch s.policy {
		case SyncRecord:
			w.policy = SyncRecord
		case SyncInterval:
			if w.policy != SyncRecord {
				w.policy = SyncInterval
			}
			if w.interval == 0 || s.interval < w.interval {
				w.interval = s.interval
			}
		}
	}
	if w.interval <= 0 {
		w.interval = DefaultSyncInterval
	}
}

// syncLoop syncs the file every interval when the policy is SyncInterval
// and records were written since the last sync. The fsync runs outside
// w.mu, so sessions keep writing meanwhile.
func (w *writer) syncLoop() {
	defer close(w.done)
	w.mu.Lock()
	t := time.NewTimer(w.interval)
	w.mu.Unlock()
	defer t.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-t.C:
		}
		w.mu.Lock()
		if !w.closed {
			// Records waiting for their burst's end wait no longer than
			// the sync interval.
			w.flushPending()
		}
		f, due := w.file, w.dirty && w.policy == SyncInterval
		if due {
			w.dirty = false
		}
		period := w.interval
		w.mu.Unlock()
		if due {
			// A rotation may close f meanwhile; reopen syncs it first.
			w.syncMu.Lock()
			if err := f.Sync(); err != nil && !errors.Is(err, os.ErrClosed) {
				w.logger.Error("audit: sync failed", "path", w.path, "error", err)
			}
			w.syncMu.Unlock()
		}
		t.Reset(period)
	}
}
