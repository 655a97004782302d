package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
)

// MaxLine bounds a line read by Verify. Records are far shorter: their
// variable parts come from bounded command lines, user names and headers.
const MaxLine = 1 << 20

// ErrChain is wrapped by every error Verify returns for a file that does
// not hold an intact chain; the message names the first bad line.
var ErrChain = errors.New("audit: chain broken")

// Report is what Check found in a chained audit file: its segments, runs
// of records each linked to the one before, and the breaks between them.
type Report struct {
	Records  int       // records that verify, chain_break records included
	Segments []Segment // in file order
	Breaks   []Break   // in file order; Breaks[i] comes before Segments[i+1]
	LastHash string    // hash of the last record, for the next rotated file
}

// Segment is a run of records, each linked to the one before it.
type Segment struct {
	FirstLine, LastLine int // 1-based
	Records             int
	// Break is the chain_break record that starts the segment, when
	// popgate recorded the break before it.
	StartsWithBreak bool
}

// Break is a place where the chain does not go on.
type Break struct {
	Line   int   // 1-based line where the break starts
	Offset int64 // octet offset where the skipped octets start
	Bytes  int64 // octets that are no record (0 when records do not link)
	Lines  int   // lines that are no record
	// Recorded is true when a chain_break record written by popgate
	// names exactly these octets (offset, length and SHA-256) and links to
	// the record before them. Any other break means an edit, a removal,
	// or damage popgate did not see.
	Recorded bool
	Reason   string // popgate's reason when Recorded, else what is wrong
}

// OK reports whether every break in r was recorded by popgate.
func (r *Report) OK() bool {
	for _, b := range r.Breaks {
		if !b.Recorded {
			return false
		}
	}
	return true
}

// Verify checks a chained audit file (written with Config.Chain) and returns
// the number of records in it. Every line must be a JSON object ending in
// its "hash" field, the hash must be the SHA-256 of the line without that
// field, and every record's "prev_hash" must be the hash of the record
// before it, except where popgate recorded a break: lines that are no
// record followed by a chain_break record naming their offset, length and
// SHA-256. Any other edit of the file, a single byte anywhere, makes it
// fail with an error naming the first bad line (1-based).
//
// The first record's prev_hash is taken as given: it is "" at the start of
// a fresh chain, or the last hash of the previous file after a rotation.
// Verify cannot see records removed from the start of a file, nor whole
// records removed from its end; VerifyFrom with the previous file's last
// hash checks a series of rotated files, and comparing the last hash with a
// copy kept elsewhere detects truncation.
func Verify(r io.Reader) (records int, err error) {
	rep, err := Check(r, "", false)
	return rep.Records, err
}

// VerifyFrom is Verify for a file whose first record must continue the
// chain ending in prevHash ("" for a fresh chain). It also returns the
// file's last hash, which is what the next rotated file must continue from.
func VerifyFrom(r io.Reader, prevHash string) (records int, lastHash string, err error) {
	rep, err := Check(r, prevHash, true)
	return rep.Records, rep.LastHash, err
}

// Check reads a chained audit file to its end and reports its segments and
// breaks. With checkFirst, the first record must link to prevHash. The
// error wraps ErrChain and names the first break popgate did not record;
// other errors are read errors. The report is filled in either case.
func Check(r io.Reader, prevHash string, checkFirst bool) (*Report, error) {
	c := checker{rep: &Report{}, prev: prevHash, linked: checkFirst}
	br := bufio.NewReaderSize(r, 64<<10)
	var off int64
	for num := 1; ; num++ {
		line, n, err := readLine(br)
		if err == io.EOF {
			break
		}
		if err != nil && !errors.Is(err, errPartial) {
			c.skipped(num, off, nil, 0, err.Error())
			c.finish()
			if errors.Is(err, errTooLong) {
				return c.rep, c.err
			}
			return c.rep, fmt.Errorf("audit: read: %w", err)
		}
		if errors.Is(err, errPartial) {
			c.skipped(num, off, line, n, "last line has no newline")
			break
		}
		c.line(num, off, line, n)
		off += int64(n)
	}
	c.finish()
	c.rep.LastHash = c.prev
	return c.rep, c.err
}

// checker is the state of one Check.
type checker struct {
	rep    *Report
	err    error  // the first unrecorded break
	prev   string // hash of the last record
	linked bool   // the next record must link to prev
	seg    *Segment
	// The run of lines that are no record since the last record.
	gap *pendingGap
}

type pendingGap struct {
	line    int
	offset  int64
	bytes   int64
	lines   int
	h       hash.Hash
	problem string
}

// skipped adds a line that is no record to the pending gap.
func (c *checker) skipped(num int, off int64, line []byte, n int, problem string) {
	if c.gap == nil {
		c.gap = &pendingGap{line: num, offset: off, h: sha256.New(), problem: problem}
	}
	c.gap.h.Write(line)
	if n > len(line) {
		c.gap.h.Write([]byte{'\n'})
	}
	c.gap.bytes += int64(n)
	c.gap.lines++
}

// line handles one line of n octets (its newline included).
func (c *checker) line(num int, off int64, line []byte, n int) {
	h, f, problem := checkLine(line)
	if problem != "" {
		c.skipped(num, off, line, n, problem)
		return
	}
	switch g := c.gap; {
	case *f.Event == EventChainBreak && g != nil:
		b := Break{Line: g.line, Offset: g.offset, Bytes: g.bytes, Lines: g.lines, Reason: g.problem}
		b.Recorded = f.SkippedOffset == g.offset && f.SkippedBytes == g.bytes &&
			f.SkippedSHA256 == hex.EncodeToString(g.h.Sum(nil)) && (!c.linked || *f.PrevHash == c.prev)
		if b.Recorded {
			b.Reason = f.Reason
		} else {
			b.Reason = fmt.Sprintf("%s; the chain_break record on line %d does not name these octets", g.problem, num)
		}
		c.breakAt(b, num)
		c.seg.StartsWithBreak = b.Recorded
	case g != nil:
		c.breakAt(Break{Line: g.line, Offset: g.offset, Bytes: g.bytes, Lines: g.lines,
			Reason: g.problem + "; no chain_break record names it"}, num)
	case *f.Event == EventChainBreak:
		c.breakAt(Break{Line: num, Offset: off, Reason: "a chain_break record with nothing skipped before it"}, num)
	case c.linked && *f.PrevHash != c.prev:
		c.breakAt(Break{Line: num, Offset: off, Reason: fmt.Sprintf("prev_hash does not match line %d", num-1)}, num)
	}
	if c.seg == nil {
		c.rep.Segments = append(c.rep.Segments, Segment{FirstLine: num})
		c.seg = &c.rep.Segments[len(c.rep.Segments)-1]
	}
	c.seg.LastLine = num
	c.seg.Records++
	c.rep.Records++
	c.prev, c.linked = h, true
}

// breakAt records b and starts a new segment at line num.
func (c *checker) breakAt(b Break, num int) {
	c.gap = nil
	c.rep.Breaks = append(c.rep.Breaks, b)
	if !b.Recorded && c.err == nil {
		c.err = fmt.Errorf("%w: line %d: %s", ErrChain, b.Line, b.Reason)
	}
	c.rep.Segments = append(c.rep.Segments, Segment{FirstLine: num})
	c.seg = &c.rep.Segments[len(c.rep.Segments)-1]
}

// finish turns a gap at the end of the file into an unrecorded break.
func (c *checker) finish() {
	g := c.gap
	if g == nil {
		return
	}
	c.gap = nil
	b := Break{Line: g.line, Offset: g.offset, Bytes: g.bytes, Lines: g.lines, Reason: g.problem + " (at the end of the file; popgate names it when it next opens the file)"}
	c.rep.Breaks = append(c.rep.Breaks, b)
	if c.err == nil {
		c.err = fmt.Errorf("%w: line %d: %s", ErrChain, b.Line, b.Reason)
	}
}

var (
	errPartial = errors.New("last line has no newline")
	errTooLong = errors.New("line too long")
)

// readLine returns the next line without its newline and the octets it
// took, newline included. A last line without a newline is errPartial
// (with the line), a line over MaxLine is errTooLong; io.EOF means the
// input ended cleanly after a newline. An empty line is returned as it is.
func readLine(br *bufio.Reader) ([]byte, int, error) {
	var long []byte
	for {
		frag, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			if len(long)+len(frag) > MaxLine {
				return nil, 0, errTooLong
			}
			long = append(long, frag...)
			continue
		}
		if err == io.EOF {
			if len(long)+len(frag) == 0 {
				return nil, 0, io.EOF
			}
			line := append(long, frag...)
			return line, len(line), errPartial
		}
		if err != nil {
			return nil, 0, err
		}
		n := len(long) + len(frag)
		line := frag[:len(frag)-1]
		if long != nil {
			line = append(long, line...)
		}
		if len(line) > MaxLine {
			return nil, 0, errTooLong
		}
		return bytes.Clone(line), n, nil
	}
}
