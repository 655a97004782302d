package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
)

// The reasons a chain_break record gives for the octets it skips.
const (
	// ReasonTornTail: the file ended in a partial line when it was opened
	// (a crash or a full disk cut the last write short).
	ReasonTornTail = "torn tail"
	// ReasonUnverifiableTail: complete lines at the end of the file did
	// not verify on their own when it was opened.
	ReasonUnverifiableTail = "unverifiable tail"
	// ReasonTornWrite: a write failed part-way while popgate was running.
	ReasonTornWrite = "torn write"
)

// lineFields are the fields read from a chained record's content.
type lineFields struct {
	Time     *string `json:"time"`
	Event    *string `json:"event"`
	PrevHash *string `json:"prev_hash"`
	// The fields of a chain_break record.
	Reason        string `json:"reason"`
	SkippedOffset int64  `json:"skipped_offset"`
	SkippedBytes  int64  `json:"skipped_bytes"`
	SkippedSHA256 string `json:"skipped_sha256"`
}

// checkLine checks one line (without its newline) on its own: it must be
// a JSON object with time, event and prev_hash that ends in a hash field
// holding the SHA-256 of the rest. It returns the line's hash and fields,
// or a description of what is wrong.
func checkLine(line []byte) (hash string, f lineFields, problem string) {
	hash, content, ok := splitHash(line)
	if !ok {
		return "", f, "no hash field at the end"
	}
	if !json.Valid(line) {
		return "", f, "not valid JSON"
	}
	if err := decodeLineFields(content, &f); err != nil {
		return "", f, err.Error()
	}
	if f.Time == nil || f.Event == nil || f.PrevHash == nil {
		return "", f, "time, event or prev_hash missing"
	}
	if hashContent(content) != hash {
		return "", f, "hash mismatch"
	}
	return hash, f, ""
}

// tailState is what the end of an existing file says about how to go on
// writing it.
type tailState struct {
	// last is the hash of the last record that verifies on its own, or ""
	// when the file ends in an unchained record or has none.
	last string
	// gapAt is the offset where octets that are no record begin, up to
	// the end of the file; -1 when the file ends cleanly.
	gapAt  int64
	reason string // ReasonTornTail or ReasonUnverifiableTail when gapAt >= 0
	// needNL is true when the file does not end in a newline.
	needNL bool
}

// scanTail reads the end of f, whose size is size, back to the last line
// that is a record: a chained one that verifies on its own, or an
// unchained JSON object. Whatever follows it is the gap. The scan looks at
// most tailWindow octets back; a gap that starts further back is taken to
// start at the first line boundary in the window.
func scanTail(f *os.File, size int64) (tailState, error) {
	st := tailState{gapAt: -1}
	if size == 0 {
		return st, nil
	}
	n := min(size, tailWindow)
	base := size - n
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, base); err != nil {
		return st, fmt.Errorf("audit: read %s: %w", f.Name(), err)
	}
	st.needNL = buf[n-1] != '\n'
	// Lines that start in the window; the first is partial when the
	// window does not start the file.
	first := 0
	if base > 0 {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			// One line longer than the window: skip it from the
			// window's start.
			st.gapAt, st.reason = base, ReasonTornTail
			return st, nil
		}
		first = i + 1
	}
	end := int(n) // end of the region still to classify
	if st.needNL {
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			end = i + 1
		} else {
			end = 0
		}
	}
	gap := end // first octet of the gap among complete lines
	for gap > first {
		lineEnd := gap - 1 // the newline
		start := bytes.LastIndexByte(buf[first:lineEnd], '\n') + first + 1
		line := buf[start:lineEnd]
		if h, _, problem := checkLine(line); problem == "" {
			st.last = h
			break
		}
		if _, _, chained := splitHash(line); !chained && len(line) > 0 && line[0] == '{' && json.Valid(line) {
			break // an unchained record: a fresh chain follows it
		}
		gap = start
	}
	switch {
	case gap < end:
		st.gapAt, st.reason = base+int64(gap), ReasonUnverifiableTail
	case st.needNL:
		st.gapAt, st.reason = base+int64(end), ReasonTornTail
	}
	return st, nil
}
