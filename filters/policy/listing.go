package policy

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// maxCachedMsg is the largest message number the size cache holds: two
// bits per message up to it, 1 MiB at most per session. A listed message
// above it is asked for with "LIST n" each time.
const maxCachedMsg = 1 << 22

// maxListingLine bounds a line of a LIST answer's body; a scan listing
// line is "msg size" (RFC 1939 section 5), a few dozen octets.
const maxListingLine = 1024

// sizeKey is the filters.Session value key of a session's sizeCache.
type sizeKey struct{ f *Filter }

// sizeCache is one session's account of its messages' sizes against one
// Filter's limit, from the backend's scan listing (RFC 1939 section 5).
// The sizes of a session's messages never change, so an entry, once
// made, holds for the session. A message marked as deleted is missing
// from a listing and may come back with RSET, so a missing one is never
// cached. Only the Command side (and Exclusive) on the session's reading
// goroutine use it; the lock makes it safe wherever the session asks.
type sizeCache struct {
	mu     sync.Mutex
	full   bool   // a full LIST was read into the cache
	listed bitset // messages whose size is known
	over   bitset // of those, the ones over the limit
}

// cache returns the sizeCache of session s, creating it on first use. A
// nil session (a test's) gets a cache of its own every time.
func (f *Filter) cache(s *filters.Session) *sizeCache {
	if s == nil {
		return &sizeCache{}
	}
	f.cacheMu.Lock()
	defer f.cacheMu.Unlock()
	if c, ok := s.Value(sizeKey{f}).(*sizeCache); ok {
		return c
	}
	c := &sizeCache{}
	s.SetValue(sizeKey{f}, c)
	return c
}

// lookup reports whether msg is known, and if so whether it is over the
// limit.
func (c *sizeCache) lookup(msg int) (over, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.over.has(msg), c.listed.has(msg)
}

// isFull reports whether a full listing was read.
func (c *sizeCache) isFull() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.full
}

// fill records a full listing.
func (c *sizeCache) fill(l listing) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.full = true
	c.listed.or(l.listed)
	c.over.or(l.over)
}

// add records the size of one message, as "LIST msg" gave it.
func (c *sizeCache) add(msg int, over bool) {
	if msg > maxCachedMsg {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.listed.set(msg)
	if over {
		c.over.set(msg)
	}
}

// listing is a scan listing read whole, before it goes into a cache.
type listing struct {
	listed, over bitset
}

// readListing reads the body of a +OK answer to LIST (RFC 1939 section
// 5): one scan listing "msg size" per line, anything after the size
// ignored. A message listed twice is over the limit if either line says
// so. Any malformed line fails the whole listing, so that nothing is
// cached from a listing the filter cannot read.
func readListing(body io.Reader, maxSize int64) (listing, error) {
	var l listing
	if body == nil {
		return l, errors.New("policy: LIST answer without a listing")
	}
	br := bufio.NewReaderSize(body, maxListingLine)
	for {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			return l, fmt.Errorf("policy: LIST line longer than %d octets", maxListingLine)
		}
		if err != nil && err != io.EOF {
			return l, fmt.Errorf("policy: reading the LIST answer: %w", err)
		}
		if len(line) > 0 {
			msg, size, perr := parseScan(strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r"))
			if perr != nil {
				return l, perr
			}
			if msg <= maxCachedMsg {
				l.listed.set(msg)
				if size > maxSize {
					l.over.set(msg)
				}
			}
		}
		if err == io.EOF {
			return l, nil
		}
	}
}

// parseListing parses the text of a "+OK" answer to "LIST msg", a scan
// listing "msg size" (RFC 1939 section 5), and returns the size. Anything
// after the size is ignored.
func parseListing(text string, msg int) (int64, error) {
	n, size, err := parseScan(text)
	if err != nil {
		return 0, err
	}
	if n != msg {
		return 0, fmt.Errorf("policy: LIST answer %.80q is not about message %d", text, msg)
	}
	return size, nil
}

// parseScan parses a scan listing "msg size", with anything after the
// size ignored (RFC 1939 section 5).
func parseScan(text string) (msg int, size int64, err error) {
	fields := strings.Fields(text)
	if len(fields) < 2 {
		return 0, 0, fmt.Errorf("policy: malformed LIST answer %.80q", text)
	}
	msg, ok := parser.MessageNumber(fields[0])
	if !ok {
		return 0, 0, fmt.Errorf("policy: bad message number in LIST answer %.80q", text)
	}
	size, err = strconv.ParseInt(fields[1], 10, 64)
	if err != nil || size < 0 || fields[1][0] == '+' {
		return 0, 0, fmt.Errorf("policy: bad size in LIST answer %.80q", text)
	}
	return msg, size, nil
}

// bitset is a set of small non-negative numbers.
type bitset []uint64

// has reports whether i is in b.
func (b bitset) has(i int) bool {
	w := i / 64
	return i >= 0 && w < len(b) && b[w]&(1<<(i%64)) != 0
}

// set adds i to b; i must not be negative.
func (b *bitset) set(i int) {
	w := i / 64
	if w >= len(*b) {
		*b = append(*b, make(bitset, w+1-len(*b))...)
	}
	(*b)[w] |= 1 << (i % 64)
}

// or adds the members of o to b.
func (b *bitset) or(o bitset) {
	if len(o) > len(*b) {
		*b = append(*b, make(bitset, len(o)-len(*b))...)
	}
	for i, w := range o {
		(*b)[i] |= w
	}
}
