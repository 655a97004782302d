package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ErrClosed is returned for records written after Close.
var ErrClosed = errors.New("audit: closed")

// ErrLocked is returned by New and Reopen when the audit file is locked by
// another process, or by another open of the same file (a link) in this one.
var ErrLocked = errors.New("audit: file is locked by another process (is another popgate instance writing it? every instance needs an audit file of its own)")

// fileMode is the mode of a newly created audit file: audit trails name
// users and addresses, so they are not world-readable.
const fileMode = 0o600

// tailWindow bounds how much of an existing file is read, from its end, to
// find the hash the chain continues from.
const tailWindow = 64 << 10

// The chain fields end every chained line; the hash is the last field so a
// verifier can split it off without re-encoding anything.
const (
	prevHashField = `,"prev_hash":"`
	hashField     = `,"hash":"`
	hashLen       = sha256.Size * 2
	// hashSuffixLen is the length of `,"hash":"<64 hex>"}`.
	hashSuffixLen = len(hashField) + hashLen + len(`"}`)
)

// maxPending bounds the octets of queued records: beyond it they are
// written at once.
const maxPending = 64 << 10

// pendingRecord is one queued line: where it ends in writer.pend, and its
// hash when it is chained.
type pendingRecord struct {
	end     int
	chained bool
	hash    [hashLen]byte
}

// gap is a run of octets at the end of the file that are no record: a torn
// write, or a damaged tail found at open. The next chained record is
// preceded by a chain_break record that names it.
type gap struct {
	offset int64
	reason string
}

// writer appends records to one audit file, one line per record. A record
// written with write goes out at once, with every record queued before it,
// in one write. A record written with defer waits, at most until the
// session that made it sends its answers to the client (Filter.Flush, at
// the end of each pipelined burst), the next write, maxPending octets, or
// the sync interval: a burst of pipelined commands costs one write instead
// of one per record, and its records reach the file before its answers
// reach the client. With the record sync policy nothing waits. It owns the
// file, its lock and the chain's last hash; the Filters that share it (see
// files.go) only call write, defer and flush. It is safe for concurrent use.
type writer struct {
	path   string // "-" for stdout
	key    string // the files registry key
	logger hclog.Logger

	mu      sync.Mutex
	out     io.Writer
	file    *os.File // nil for stdout
	closed  bool
	last    []byte // hex hash of the last chained record in the file; empty before the first
	head    []byte // hex hash of the last chained record queued (last when none is)
	pend    []byte // queued lines, each ending in a newline; a leading newline ends a torn last line
	pendRec []pendingRecord
	pendLen int    // 1 when pend starts with the newline that ends a torn line
	size    int64  // octets in the file, so offsets of gaps are known
	needNL  bool   // the file ends mid-line: start the next write with "\n"
	gap     *gap   // octets to name in a chain_break before the next chained record
	failing bool   // the last write failed; logged once until it recovers
	dropped int64  // records lost while failing
	gapLine []byte // the line of a chain_break record
	// instance is the Config.Instance of the Filter that opened the
	// writer (one process is one instance), for chain_break records.
	instance string

	// Sync policy: the strictest of the Filters using the writer.
	users    map[*Filter]syncSetting
	policy   SyncPolicy
	interval time.Duration
	dirty    bool          // written since the last fsync
	syncMu   sync.Mutex    // held while syncing, so the file is not closed under it
	stop     chan struct{} // closed by close to end syncLoop
	done     chan struct{} // closed when syncLoop has returned
}

func newWriter(path, key, instance string, chain bool, logger hclog.Logger) (*writer, error) {
	w := &writer{path: path, key: key, instance: instance, logger: logger, users: map[*Filter]syncSetting{}}
	if path == "-" {
		w.out = os.Stdout
		return w, nil
	}
	if err := w.open(chain); err != nil {
		return nil, err
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.syncLoop()
	return w, nil
}

// open opens and locks w.path for appending and reads its end: when
// chaining, the chain continues from the hash of the file's last record if
// it has one, otherwise from the last hash this process wrote (the old
// file's, after a rotation), otherwise from "". Octets after the last
// record (a torn or damaged tail) are named at once in a chain_break
// record; they stay in the file. Callers hold w.mu or own w.
func (w *writer) open(chain bool) error {
	f, err := os.OpenFile(w.path, os.O_RDWR|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", w.path, err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return fmt.Errorf("audit: %s: %w", w.path, err)
		}
		return fmt.Errorf("audit: lock %s: %w", w.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("audit: stat %s: %w", w.path, err)
	}
	ts, err := scanTail(f, st.Size())
	if err != nil {
		f.Close()
		return err
	}
	if chain && ts.last != "" {
		w.last = append(w.last[:0], ts.last...)
	}
	w.file, w.out, w.size, w.needNL, w.gap = f, f, st.Size(), ts.needNL, nil
	if chain && ts.gapAt >= 0 {
		w.gap = &gap{offset: ts.gapAt, reason: ts.reason}
		if err := w.recordGap(); err != nil {
			// Kept pending: the next chained record tries again.
			w.logger.Error("audit: could not record the damaged tail", "path", w.path, "error", err)
		}
	}
	return nil
}

// hashContent returns the hex SHA-256 of a record's content.
func hashContent(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// splitHash splits a chained line (without newline) into its hash and its
// content: the line with the hash field removed, which is what the hash is
// computed over. ok is false when the line does not end in a hash field.
func splitHash(line []byte) (hash string, content []byte, ok bool) {
	if len(line) < hashSuffixLen+2 || line[0] != '{' {
		return "", nil, false
	}
	suf := line[len(line)-hashSuffixLen:]
	if !bytes.HasPrefix(suf, []byte(hashField)) || !bytes.HasSuffix(suf, []byte(`"}`)) {
		return "", nil, false
	}
	h := suf[len(hashField) : len(hashField)+hashLen]
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return "", nil, false
		}
	}
	content = make([]byte, 0, len(line)-hashSuffixLen+1)
	content = append(content, line[:len(line)-hashSuffixLen]...)
	content = append(content, '}')
	return string(h), content, true
}

// write appends one record as one line, chained or not. line holds the
// record's JSON object from line[1] on; line[0] is spare room for the
// newline that ends a torn last line. write adds the chain fields and the
// newline to line, and returns it (grown, for the caller to reuse). A
// pending gap is named in a chain_break record before the next chained
// record. Failures are logged (once until writing works again) and
// returned.
func (w *writer) write(line []byte, chain bool) ([]byte, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.add(line, chain, true)
}

// defer is write for a record that may wait for the end of its session's
// burst (see writer); it is write under the record sync policy.
func (w *writer) deferred(line []byte, chain bool) ([]byte, int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.add(line, chain, w.policy == SyncRecord)
}

// flush writes the queued records. It returns how many were lost, and why.
func (w *writer) flush() (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return 0, nil
	}
	return w.flushPending()
}

// add queues line and, when now is set or the queue is full, writes the
// queue. It returns line for reuse and how many records were lost, and
// why. Callers hold w.mu.
func (w *writer) add(line []byte, chain, now bool) ([]byte, int, error) {
	if w.closed {
		return line, 1, ErrClosed
	}
	if chain && w.gap != nil {
		if lost, err := w.flushPending(); err != nil {
			return line, lost + 1, w.lost(err)
		}
		if err := w.recordGap(); err != nil {
			return line, 1, w.lost(err)
		}
	}
	line = w.queue(line, chain)
	if !now && len(w.pend) < maxPending {
		return line, 0, nil
	}
	lost, err := w.flushPending()
	return line, lost, err
}

// lost logs a failed write, once until writing works again, and returns
// err.
func (w *writer) lost(err error) error {
	w.dropped++
	if !w.failing {
		w.failing = true
		w.logger.Error("audit: write failed; records are being lost", "path", w.path, "error", err)
	}
	return err
}

// queue ends line (see write) with the chain fields when chain is set and
// a newline, and appends it to the queue, chained on from the last record
// queued. It returns line for the caller to reuse. Callers hold w.mu.
func (w *writer) queue(line []byte, chain bool) []byte {
	if len(w.pend) == 0 {
		w.head = append(w.head[:0], w.last...)
		w.pendLen = 0
		if w.needNL {
			w.pend = append(w.pend, '\n')
			w.pendLen = 1
		}
	}
	rec := pendingRecord{chained: chain}
	if chain {
		// The content is the record with prev_hash as its last field;
		// the line is the content with the hash field appended.
		line = line[:len(line)-1] // closing brace
		line = append(line, prevHashField...)
		line = append(line, w.head...)
		line = append(line, '"', '}')
		sum := sha256.Sum256(line[1:])
		hex.Encode(rec.hash[:], sum[:])
		line = line[:len(line)-1]
		line = append(line, hashField...)
		line = append(line, rec.hash[:]...)
		line = append(line, '"', '}')
		w.head = append(w.head[:0], rec.hash[:]...)
	}
	line = append(line, '\n')
	w.pend = append(w.pend, line[1:]...)
	rec.end = len(w.pend)
	w.pendRec = append(w.pendRec, rec)
	return line
}

// put queues line and writes the queue at once. Callers hold w.mu.
func (w *writer) put(line []byte, chain bool) ([]byte, error) {
	line = w.queue(line, chain)
	_, err := w.flushPending()
	return line, err
}

// flushPending writes the queue with one write. The records written whole
// are in the file, and the chain goes on from the last of them; a chained
// record cut short leaves a gap that the next chained record names; the
// records not written are lost, and counted. With the record policy the
// file is synced before it returns. Callers hold w.mu.
func (w *writer) flushPending() (int, error) {
	if len(w.pendRec) == 0 {
		w.pend = w.pend[:0]
		return 0, nil
	}
	n, err := w.out.Write(w.pend)
	start, lost := w.pendLen, 0
	for _, rec := range w.pendRec {
		switch {
		case rec.end <= n:
			if rec.chained {
				// The line is in the file: the next record links to it,
				// even if the sync below fails.
				w.last = append(w.last[:0], rec.hash[:]...)
			}
		default:
			lost++
			if rec.chained && w.file != nil && w.gap == nil && n > start && n > 0 {
				w.gap = &gap{offset: w.size + int64(start), reason: ReasonTornWrite}
			}
		}
		start = rec.end
	}
	if n > 0 {
		w.size += int64(n)
		w.needNL = w.pend[n-1] != '\n'
		w.dirty = true
	}
	if len(w.pend) > maxPending*4 {
		w.pend = nil // do not keep a burst's worth of memory for ever
	} else {
		w.pend = w.pend[:0]
	}
	w.pendRec = w.pendRec[:0]
	w.head = append(w.head[:0], w.last...)
	if err != nil {
		err = fmt.Errorf("audit: write %s: %w", w.path, err)
		for range lost {
			w.lost(err)
		}
		return lost, err
	}
	if w.failing {
		w.failing = false
		w.logger.Warn("audit: writing again", "path", w.path, "records_lost", w.dropped)
		w.dropped = 0
	}
	if w.policy == SyncRecord && w.file != nil {
		w.dirty = false
		if err := w.file.Sync(); err != nil {
			return 0, fmt.Errorf("audit: sync %s: %w", w.path, err)
		}
	}
	return 0, nil
}

// recordGap writes the chain_break record that names w.gap: the offset,
// length and SHA-256 of the octets from the gap to the end of the file
// (with the newline that ends them, written with the record). The octets
// stay where they are, and the record chains on from the last record
// before them. Callers hold w.mu.
func (w *writer) recordGap() error {
	g := w.gap
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(w.file, g.offset, w.size-g.offset)); err != nil {
		return fmt.Errorf("audit: read the gap in %s: %w", w.path, err)
	}
	n := w.size - g.offset
	if w.needNL {
		h.Write([]byte{'\n'})
		n++
	}
	rec := &chainBreakRecord{
		header:        header{Time: time.Now().UTC(), Event: EventChainBreak, Instance: w.instance},
		Reason:        g.reason,
		SkippedOffset: g.offset,
		SkippedBytes:  n,
		SkippedSHA256: hex.EncodeToString(h.Sum(nil)),
	}
	line, err := w.put(rec.appendJSON(append(w.gapLine[:0], 0)), true)
	w.gapLine = line
	if err != nil {
		return err
	}
	w.gap = nil
	w.logger.Warn("audit: chain break recorded; the octets that are no record stay in the file",
		"path", w.path, "reason", rec.Reason, "offset", rec.SkippedOffset, "bytes", rec.SkippedBytes)
	return nil
}

// reopen closes the file and opens w.path again, so that after a rotation
// (the old file renamed away) records go to a new file. The chain goes on:
// the first record of the new file carries the old file's last hash as its
// prev_hash. When w.path is still the open file (copytruncate), only its
// size is read again. Reopening stdout does nothing.
func (w *writer) reopen(chain bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.file == nil {
		return nil
	}
	if _, err := w.flushPending(); err != nil {
		w.logger.Warn("audit: writing queued records before a reopen", "path", w.path, "error", err)
	}
	old := w.file
	if cur, err := old.Stat(); err == nil {
		if st, err := os.Stat(w.path); err == nil && os.SameFile(cur, st) {
			w.size = st.Size()
			return nil
		}
	}
	if err := w.open(chain); err != nil {
		w.file, w.out = old, old
		return err
	}
	// Wait for a sync in progress; sync the old file whatever the dirty
	// flag says, since that sync may have cleared it before the file was
	// written to its end.
	w.syncMu.Lock()
	defer w.syncMu.Unlock()
	if w.policy != SyncNone {
		if err := old.Sync(); err != nil {
			w.logger.Warn("audit: syncing rotated file", "path", w.path, "error", err)
		}
	}
	w.dirty = true // the new file may have had a chain_break written
	if err := old.Close(); err != nil {
		w.logger.Warn("audit: closing rotated file", "path", w.path, "error", err)
	}
	return nil
}

// close syncs (unless the policy is none) and closes the file, which
// releases its lock; stdout is left open. Later writes fail.
func (w *writer) close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	if _, err := w.flushPending(); err != nil {
		w.logger.Warn("audit: writing queued records before closing", "path", w.path, "error", err)
	}
	w.closed = true
	w.mu.Unlock()
	if w.file == nil {
		return nil
	}
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	var errs []error
	if w.dirty && w.policy != SyncNone {
		if err := w.file.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("audit: sync %s: %w", w.path, err))
		}
	}
	if err := w.file.Close(); err != nil {
		errs = append(errs, fmt.Errorf("audit: close %s: %w", w.path, err))
	}
	return errors.Join(errs...)
}
