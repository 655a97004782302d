package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// MaxLine bounds a line read by Verify. Records are far shorter: their
// variable parts come from bounded command lines, user names and headers.
const MaxLine = 1 << 20

// ErrChain is wrapped by every error Verify returns for a file that does
// not hold an intact chain; the message names the first bad line.
var ErrChain = errors.New("audit: chain broken")

// Verify checks a chained audit file (written with Config.Chain) and returns
// the number of records in it. Every line must be a JSON object ending in
// its "hash" field, the hash must be the SHA-256 of the line without that
// field, and every record's "prev_hash" must be the hash of the record
// before it. Any edit of the file, a single byte anywhere, makes it fail
// with an error naming the first bad line (1-based).
//
// The first record's prev_hash is taken as given: it is "" at the start of
// a fresh chain, or the last hash of the previous file after a rotation.
// Verify cannot see records removed from the start of a file, nor whole
// records removed from its end; VerifyFrom with the previous file's last
// hash checks a series of rotated files, and comparing the last hash with a
// copy kept elsewhere detects truncation.
func Verify(r io.Reader) (records int, err error) {
	records, _, err = verify(r, "", false)
	return records, err
}

// VerifyFrom is Verify for a file whose first record must continue the
// chain ending in prevHash ("" for a fresh chain). It also returns the
// file's last hash, which is what the next rotated file must continue from.
func VerifyFrom(r io.Reader, prevHash string) (records int, lastHash string, err error) {
	return verify(r, prevHash, true)
}

// chainFields are the fields Verify reads from a record's content.
type chainFields struct {
	Time     *string `json:"time"`
	Event    *string `json:"event"`
	PrevHash *string `json:"prev_hash"`
}

func verify(r io.Reader, prev string, checkFirst bool) (int, string, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	n := 0
	for {
		line, err := readLine(br)
		if err == io.EOF {
			return n, prev, nil
		}
		num := n + 1
		if err != nil {
			return n, prev, fmt.Errorf("%w: line %d: %w", ErrChain, num, err)
		}
		hash, content, ok := splitHash(line)
		if !ok {
			return n, prev, fmt.Errorf("%w: line %d: no hash field at the end", ErrChain, num)
		}
		if !json.Valid(line) {
			return n, prev, fmt.Errorf("%w: line %d: not valid JSON", ErrChain, num)
		}
		var f chainFields
		if err := json.Unmarshal(content, &f); err != nil {
			return n, prev, fmt.Errorf("%w: line %d: %w", ErrChain, num, err)
		}
		if f.Time == nil || f.Event == nil || f.PrevHash == nil {
			return n, prev, fmt.Errorf("%w: line %d: time, event or prev_hash missing", ErrChain, num)
		}
		if got := hashContent(content); got != hash {
			return n, prev, fmt.Errorf("%w: line %d: hash mismatch", ErrChain, num)
		}
		if (n > 0 || checkFirst) && *f.PrevHash != prev {
			return n, prev, fmt.Errorf("%w: line %d: prev_hash does not match line %d", ErrChain, num, n)
		}
		prev = hash
		n++
	}
}

// readLine returns the next line without its newline. A last line without
// a newline, an empty line or a line over MaxLine is an error; io.EOF means
// the input ended cleanly after a newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(frag) > MaxLine {
				return nil, errors.New("line too long")
			}
			long = append(long, frag...)
			continue
		}
		if err == io.EOF {
			if len(long)+len(frag) == 0 {
				return nil, io.EOF
			}
			return nil, errors.New("last line has no newline")
		}
		if err != nil {
			return nil, err
		}
		line := frag[:len(frag)-1]
		if long != nil {
			line = append(long, line...)
		}
		if len(line) > MaxLine {
			return nil, errors.New("line too long")
		}
		if len(bytes.TrimSpace(line)) == 0 {
			return nil, errors.New("empty line")
		}
		return line, nil
	}
}
