package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// ErrClosed is returned for records written after Close.
var ErrClosed = errors.New("audit: closed")

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

// writer appends records to the audit file, one line per record, each with
// a single write and no buffering beyond the line, so a crash loses at most
// the record being written. It is safe for concurrent use.
type writer struct {
	path   string // "-" for stdout
	chain  bool
	logger hclog.Logger

	mu      sync.Mutex
	out     io.Writer
	file    *os.File // nil for stdout
	closed  bool
	last    string // hash of the last record written, when chaining
	torn    bool   // a write failed part-way: start the next with "\n"
	failing bool   // the last write failed; logged once until it recovers
	dropped int64  // records lost while failing
	line    bytes.Buffer
	enc     *json.Encoder
}

func newWriter(path string, chain bool, logger hclog.Logger) (*writer, error) {
	w := &writer{path: path, chain: chain, logger: logger}
	w.enc = json.NewEncoder(&w.line)
	w.enc.SetEscapeHTML(false)
	if path == "-" {
		w.out = os.Stdout
		return w, nil
	}
	if err := w.open(); err != nil {
		return nil, err
	}
	return w, nil
}

// open opens w.path for appending and, when chaining, finds the hash the
// chain continues from: the hash of the file's last record if it has one,
// otherwise the last hash this process wrote (the old file's, after a
// rotation), otherwise "" for a fresh chain. Callers hold w.mu or own w.
func (w *writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("audit: open %s: %w", w.path, err)
	}
	last, torn, err := tail(w.path)
	if err != nil {
		f.Close()
		return err
	}
	if w.chain && last != "" {
		w.last = last
	}
	w.torn = torn
	w.file, w.out = f, f
	return nil
}

// tail reads the end of the file at path and returns the hash of its last
// complete chained line (or "") and whether the file ends without a newline.
func tail(path string) (last string, torn bool, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", false, fmt.Errorf("audit: read %s: %w", path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", false, fmt.Errorf("audit: stat %s: %w", path, err)
	}
	size := st.Size()
	if size == 0 {
		return "", false, nil
	}
	n := min(size, tailWindow)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, size-n); err != nil {
		return "", false, fmt.Errorf("audit: read %s: %w", path, err)
	}
	torn = buf[len(buf)-1] != '\n'
	end := bytes.LastIndexByte(buf, '\n')
	if end < 0 {
		return "", torn, nil
	}
	line := buf[:end]
	if i := bytes.LastIndexByte(line, '\n'); i >= 0 {
		line = line[i+1:]
	}
	h, _, ok := splitHash(line)
	if !ok {
		return "", torn, nil
	}
	return h, torn, nil
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

// hashContent returns the hex SHA-256 of a record's content.
func hashContent(content []byte) string {
	sum := sha256.Sum256(content)
	return hex.EncodeToString(sum[:])
}

// write encodes rec as one line and appends it. Failures are logged (once
// until writing works again) and returned.
func (w *writer) write(rec any) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	w.line.Reset()
	if w.torn {
		w.line.WriteByte('\n')
	}
	start := w.line.Len()
	if err := w.enc.Encode(rec); err != nil {
		return fmt.Errorf("audit: encode record: %w", err)
	}
	w.line.Truncate(w.line.Len() - 1) // Encode's newline
	var hash string
	if w.chain {
		// The content is the record with prev_hash as its last field;
		// the line is the content with the hash field appended.
		w.line.Truncate(w.line.Len() - 1) // closing brace
		w.line.WriteString(prevHashField)
		w.line.WriteString(w.last)
		w.line.WriteString(`"}`)
		hash = hashContent(w.line.Bytes()[start:])
		w.line.Truncate(w.line.Len() - 1)
		w.line.WriteString(hashField)
		w.line.WriteString(hash)
		w.line.WriteString(`"}`)
	}
	w.line.WriteByte('\n')
	n, err := w.out.Write(w.line.Bytes())
	if err != nil {
		w.torn = n > 0
		w.dropped++
		if !w.failing {
			w.failing = true
			w.logger.Error("audit: write failed; records are being lost", "path", w.path, "error", err)
		}
		return fmt.Errorf("audit: write %s: %w", w.path, err)
	}
	w.torn = false
	if w.failing {
		w.failing = false
		w.logger.Warn("audit: writing again", "path", w.path, "records_lost", w.dropped)
		w.dropped = 0
	}
	if w.chain {
		w.last = hash
	}
	return nil
}

// reopen closes the file and opens w.path again, so that after a rotation
// (the old file renamed away) records go to a new file. The chain goes on:
// the first record of the new file carries the old file's last hash as its
// prev_hash. Reopening stdout does nothing.
func (w *writer) reopen() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	if w.file == nil {
		return nil
	}
	old := w.file
	if err := w.open(); err != nil {
		return err
	}
	if err := old.Close(); err != nil {
		w.logger.Warn("audit: closing rotated file", "path", w.path, "error", err)
	}
	return nil
}

// close closes the file; stdout is left open. Later writes fail.
func (w *writer) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if w.file == nil {
		return nil
	}
	if err := w.file.Close(); err != nil {
		return fmt.Errorf("audit: close %s: %w", w.path, err)
	}
	return nil
}
