package clamav

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// maxHeaderSection bounds how much of an infected message is read to find
// the header fields its notice keeps.
const maxHeaderSection = 64 << 10

// SubjectPrefix starts the subject of the notice that replaces an
// infected message.
const SubjectPrefix = "[VIRUS REMOVED]"

// Defaults for fields the infected message lacks. RFC 5322 section 3.6
// requires Date and From.
const defaultFrom = "popgate virus scanner <postmaster@localhost>"

// keptFields are the header fields of an infected message that its notice
// keeps, in the order written.
var keptFields = []string{"Date", "From", "To", "Subject", "Message-ID"}

// Line length limits of RFC 5322 section 2.1.1: lines SHOULD stay within
// 78 octets and MUST stay within 998, without CRLF.
const (
	softLineLimit = 78
	hardLineLimit = 998
)

// headerFields maps the names in keptFields to unfolded values.
type headerFields map[string]string

// readHeaderFields reads the header section at the start of r, at most
// maxHeaderSection octets, and returns the first occurrence of each field
// of keptFields, unfolded (RFC 5322 section 2.2.3) and stripped of control
// characters. Lines may end in CRLF or a bare LF. A field cut by the bound
// is dropped.
func readHeaderFields(r io.Reader) headerFields {
	lr := &io.LimitedReader{R: r, N: maxHeaderSection}
	br := bufio.NewReader(lr)
	fields := headerFields{}
	var name, value string
	keep := func() {
		if name == "" {
			return
		}
		for _, k := range keptFields {
			if strings.EqualFold(name, k) {
				if _, dup := fields[k]; !dup {
					fields[k] = cleanValue(value)
				}
			}
		}
		name = ""
	}
	for {
		line, err := br.ReadString('\n')
		complete := strings.HasSuffix(line, "\n")
		text := strings.TrimRight(line, "\r\n")
		switch {
		case text == "" && complete:
			keep() // the empty line that ends the header section
			return fields
		case text == "":
		case text[0] == ' ' || text[0] == '\t':
			value += text // a continuation: unfold
		default:
			keep()
			n, v, ok := strings.Cut(text, ":")
			if n = strings.TrimRight(n, " \t"); ok && isFieldName(n) {
				name, value = n, v
			}
		}
		if err != nil {
			if lr.N > 0 || complete {
				keep()
			}
			return fields
		}
	}
}

// isFieldName reports whether s is a field name: printable US-ASCII
// except colon (RFC 5322 section 2.2).
func isFieldName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 33 || c > 126 || c == ':' {
			return false
		}
	}
	return true
}

// cleanValue trims a field value and turns control characters into
// spaces, so that nothing in it can break the notice's framing.
func cleanValue(v string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, v))
}

// cleanVirusName keeps a signature name printable US-ASCII and short.
func cleanVirusName(name string) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e {
			return '_'
		}
		return r
	}, name)
	if len(name) > 200 {
		name = name[:200]
	}
	if name == "" {
		name = "unknown"
	}
	return name
}

// writeField writes "Name: value" CRLF, folded at spaces so lines stay
// within softLineLimit where the words allow and always within
// hardLineLimit (RFC 5322 section 2.2.3).
func writeField(b *bytes.Buffer, name, value string) {
	line := len(name) + 1
	b.WriteString(name)
	b.WriteByte(':')
	for _, word := range strings.Fields(value) {
		if line > len(name)+1 && line+1+len(word) > softLineLimit {
			b.WriteString("\r\n")
			line = 0
		}
		if room := hardLineLimit - line - 1; len(word) > room {
			for room > 0 && !utf8.RuneStart(word[room]) {
				room--
			}
			word = word[:room]
		}
		b.WriteByte(' ')
		b.WriteString(word)
		line += 1 + len(word)
	}
	b.WriteString("\r\n")
}

// buildNotice returns the RFC 5322 message that replaces an infected one:
// the original's Date, From, To, Subject (prefixed with SubjectPrefix) and
// Message-ID, and a plain text body naming the virus. Every line ends in
// CRLF.
func buildNotice(fields headerFields, virus string, size int64, now time.Time, scannedHeader bool) []byte {
	var b bytes.Buffer
	if scannedHeader {
		b.WriteString(ScannedHeader)
	}
	for _, k := range keptFields {
		v := fields[k]
		switch k {
		case "Date":
			if v == "" {
				v = now.Format(time.RFC1123Z)
			}
		case "From":
			if v == "" {
				v = defaultFrom
			}
		case "Subject":
			v = strings.TrimSpace(SubjectPrefix + " " + v)
		}
		if v != "" {
			writeField(&b, k, v)
		}
	}
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=us-ascii\r\n")
	b.WriteString("Content-Transfer-Encoding: 7bit\r\n")
	b.WriteString("\r\n")
	fmt.Fprintf(&b, "The virus scanner of your mail gateway found a virus in this message\r\n"+
		"and removed the message. It was not delivered to you.\r\n"+
		"\r\n"+
		"  Virus:          %s\r\n"+
		"  Octets scanned: %d\r\n"+
		"\r\n"+
		"If you need the original message, ask your mail administrator.\r\n",
		cleanVirusName(virus), size)
	return b.Bytes()
}
