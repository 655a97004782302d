package audit

import (
	"bytes"
	"strings"

	"github.com/popgate/popgate/parser"
)

// Bounds of the streaming scanners. They look at octets as they pass and
// keep at most one line, so memory stays flat whatever the body size.
const (
	// maxHeaderScan is how many octets of a message are searched for the
	// Message-ID header field before giving up.
	maxHeaderScan = 64 << 10
	// maxHeaderLine bounds the part of a header line that is kept; RFC
	// 5322 section 2.1.1 limits lines to 998 characters.
	maxHeaderLine = 998
	// maxMessageID bounds the Message-ID written to the log.
	maxMessageID = 998
	// maxUIDLLine bounds a UIDL listing line: a message number, a space
	// and a unique-id of at most 70 characters (RFC 1939 section 7).
	maxUIDLLine = 96
	// maxUIDLen is the longest unique-id RFC 1939 section 7 allows.
	maxUIDLen = 70
)

// lineSplitter feeds whole lines (without CR LF, truncated to max) to a
// callback, as octets arrive in arbitrary pieces.
type lineSplitter struct {
	max  int
	line []byte
	over bool // the current line was longer than max
}

// feed splits p into lines; fn returns false to stop early, and feed then
// returns false too.
func (ls *lineSplitter) feed(p []byte, fn func(line []byte, over bool) bool) bool {
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		if room := ls.max - len(ls.line); len(chunk) > room {
			ls.line = append(ls.line, chunk[:room]...)
			ls.over = true
		} else {
			ls.line = append(ls.line, chunk...)
		}
		if i < 0 {
			return true
		}
		p = p[i+1:]
		line := bytes.TrimSuffix(ls.line, []byte{'\r'})
		more := fn(line, ls.over)
		ls.line, ls.over = ls.line[:0], false
		if !more {
			return false
		}
	}
	return true
}

// messageIDScanner finds the first Message-ID header field (RFC 5322
// section 3.6.4) in a message as it streams past. It handles folded fields
// and stops at the end of the header section or after maxHeaderScan octets.
type messageIDScanner struct {
	lines     lineSplitter
	scanned   int
	done      bool
	capturing bool
	value     []byte
	id        string
}

func newMessageIDScanner() *messageIDScanner {
	m := &messageIDScanner{}
	m.init()
	return m
}

// init readies a zero scanner for use.
func (m *messageIDScanner) init() { m.lines.max = maxHeaderLine }

// write inspects p; it never keeps a reference to p.
func (m *messageIDScanner) write(p []byte) {
	if m.done {
		return
	}
	if room := maxHeaderScan - m.scanned; len(p) > room {
		p = p[:room]
	}
	m.scanned += len(p)
	if !m.lines.feed(p, m.line) {
		m.done = true
	}
	if m.scanned >= maxHeaderScan {
		m.finish()
	}
}

// close handles a last line without a newline and ends scanning; it is
// called when the body ends.
func (m *messageIDScanner) close() {
	if !m.done && len(m.lines.line) > 0 {
		m.line(bytes.TrimSuffix(m.lines.line, []byte{'\r'}), m.lines.over)
	}
	m.finish()
}

// line handles one header line; it returns false when scanning is over.
func (m *messageIDScanner) line(line []byte, _ bool) bool {
	if len(line) == 0 { // end of the header section
		m.finish()
		return false
	}
	if line[0] == ' ' || line[0] == '\t' { // folded continuation
		if m.capturing && len(m.value) < maxMessageID {
			m.value = append(m.value, line...)
		}
		return true
	}
	if m.capturing { // the Message-ID field is complete
		m.finish()
		return false
	}
	name, value, ok := bytes.Cut(line, []byte{':'})
	if ok && strings.EqualFold(string(bytes.TrimRight(name, " \t")), "Message-ID") {
		m.capturing = true
		m.value = append(m.value[:0], value...)
	}
	return true
}

// finish ends scanning and extracts the identifier, with its angle
// brackets, from the captured field.
func (m *messageIDScanner) finish() {
	if m.done {
		return
	}
	m.done = true
	if !m.capturing {
		return
	}
	m.capturing = false
	v := strings.TrimSpace(string(m.value))
	if i := strings.IndexByte(v, '<'); i >= 0 {
		if j := strings.IndexByte(v[i:], '>'); j > 0 {
			v = v[i : i+j+1]
		}
	}
	if len(v) > maxMessageID {
		v = v[:maxMessageID]
	}
	m.id = v
}

// uidlScanner reads a UIDL listing ("n unique-id" per line, RFC 1939
// section 7) as it streams past and stores each pair.
type uidlScanner struct {
	lines lineSplitter
	store func(msg int, uid string)
}

func newUIDLScanner(store func(msg int, uid string)) *uidlScanner {
	return &uidlScanner{lines: lineSplitter{max: maxUIDLLine}, store: store}
}

// Write feeds p to the scanner; it never fails, so a listing can be
// copied into it.
func (u *uidlScanner) Write(p []byte) (int, error) {
	u.write(p)
	return len(p), nil
}

func (u *uidlScanner) write(p []byte) {
	u.lines.feed(p, func(line []byte, over bool) bool {
		if !over {
			if msg, uid, ok := parseUIDLLine(string(line)); ok {
				u.store(msg, uid)
			}
		}
		return true
	})
}

// parseUIDLLine parses "n unique-id", the form of a UIDL listing line and
// of the text of a "+OK" answer to "UIDL n".
func parseUIDLLine(s string) (msg int, uid string, ok bool) {
	num, uid, found := strings.Cut(strings.TrimSpace(s), " ")
	if !found {
		return 0, "", false
	}
	msg, ok = parseMsg(num)
	uid = strings.TrimSpace(uid)
	if !ok || !validUID(uid) {
		return 0, "", false
	}
	return msg, uid, true
}

// validUID reports whether s is a unique-id as RFC 1939 section 7 defines
// it: 1 to 70 characters in the range 0x21 to 0x7E.
func validUID(s string) bool {
	if len(s) == 0 || len(s) > maxUIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// parseMsg parses a message number argument (parser.MessageNumber).
func parseMsg(s string) (int, bool) { return parser.MessageNumber(s) }
