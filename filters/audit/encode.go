package audit

import (
	"strconv"
	"time"
	"unicode/utf8"
)

// jsonRecord is a record that appends itself to a line as one JSON object,
// with its fields in the order of its struct and exactly the octets
// encoding/json would write for it (with SetEscapeHTML(false)): the
// writer then needs no reflection and no allocation per record. Every
// record type implements it; encode_test.go compares each one with
// encoding/json.
type jsonRecord interface {
	appendJSON(b []byte) []byte
}

var (
	_ jsonRecord = (*sessionStartRecord)(nil)
	_ jsonRecord = (*tlsRecord)(nil)
	_ jsonRecord = (*sessionEndRecord)(nil)
	_ jsonRecord = (*authRecord)(nil)
	_ jsonRecord = (*commandRecord)(nil)
	_ jsonRecord = (*retrieveRecord)(nil)
	_ jsonRecord = (*deleteRecord)(nil)
	_ jsonRecord = (*commitRecord)(nil)
	_ jsonRecord = (*scanRecord)(nil)
	_ jsonRecord = (*chainBreakRecord)(nil)
)

// appendJSON opens the object and appends the header's fields.
func (h *header) appendJSON(b []byte) []byte {
	b = append(b, `{"time":"`...)
	b = h.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	b = appendStr(b, "event", h.Event)
	if h.Instance != "" {
		b = appendStr(b, "instance", h.Instance)
	}
	b = appendStr(b, "session", h.Session)
	b = appendStr(b, "client", h.Client)
	if h.OriginalDst != "" {
		b = appendStr(b, "original_dst", h.OriginalDst)
	}
	return appendStr(b, "listener", h.Listener)
}

func (r *sessionStartRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "local", r.Local)
	b = appendStr(b, "tls_version", r.TLSVersion)
	b = appendStr(b, "tls_cipher", r.TLSCipher)
	b = appendStr(b, "sni", r.SNI)
	return append(b, '}')
}

func (r *tlsRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "tls_version", r.TLSVersion)
	b = appendStr(b, "tls_cipher", r.TLSCipher)
	b = appendStr(b, "sni", r.SNI)
	return append(b, '}')
}

func (r *sessionEndRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendInt(b, "duration_ms", r.DurationMS)
	b = appendInt(b, "bytes_in", r.BytesIn)
	b = appendInt(b, "bytes_out", r.BytesOut)
	b = appendStr(b, "reason", r.Reason)
	b = appendInt(b, "deletes_marked", int64(r.DeletesMarked))
	b = appendBool(b, "deletes_committed", r.DeletesCommitted)
	return append(b, '}')
}

func (r *authRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "client_user", r.ClientUser)
	b = appendStr(b, "backend_user", r.BackendUser)
	b = appendStr(b, "mechanism", r.Mechanism)
	b = appendStr(b, "backend", r.Backend)
	b = appendStr(b, "result", r.Result)
	b = appendStr(b, "code", r.Code)
	return append(b, '}')
}

func (r *commandRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendInt(b, "seq", r.Seq)
	b = appendStr(b, "verb", r.Verb)
	b = appendStr(b, "args", r.Args)
	if r.Out != "" {
		b = appendStr(b, "out", r.Out)
	}
	b = appendStr(b, "status", r.Status)
	b = appendStr(b, "code", r.Code)
	b = appendInt(b, "bytes", r.Bytes)
	b = appendInt(b, "duration_us", r.DurationUS)
	b = appendBool(b, "complete", r.Complete)
	if r.Error != "" {
		b = appendStr(b, "error", r.Error)
	}
	return append(b, '}')
}

func (r *retrieveRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "verb", r.Verb)
	b = appendInt(b, "msg", int64(r.Msg))
	if r.Lines != nil {
		b = appendInt(b, "lines", int64(*r.Lines))
	}
	b = appendStr(b, "uidl", r.UIDL)
	b = appendInt(b, "size", r.Size)
	b = appendStr(b, "message_id", r.MessageID)
	b = appendBool(b, "complete", r.Complete)
	return append(b, '}')
}

func (r *deleteRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendInt(b, "msg", int64(r.Msg))
	b = appendStr(b, "uidl", r.UIDL)
	return append(b, '}')
}

func (r *commitRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendInt(b, "count", int64(r.Count))
	b = append(b, `,"msgs":`...)
	if r.Msgs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, m := range r.Msgs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(m), 10)
		}
		b = append(b, ']')
	}
	if r.Truncated {
		b = appendBool(b, "msgs_truncated", true)
	}
	return append(b, '}')
}

func (r *scanRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "verb", r.Verb)
	b = appendInt(b, "msg", int64(r.Msg))
	b = appendStr(b, "verdict", r.Verdict)
	b = appendStr(b, "virus", r.Virus)
	b = appendStr(b, "action", r.Action)
	b = appendStr(b, "error", r.Error)
	b = appendInt(b, "bytes", r.Bytes)
	b = appendInt(b, "duration_us", r.DurationUS)
	return append(b, '}')
}

func (r *chainBreakRecord) appendJSON(b []byte) []byte {
	b = r.header.appendJSON(b)
	b = appendStr(b, "reason", r.Reason)
	b = appendInt(b, "skipped_offset", r.SkippedOffset)
	b = appendInt(b, "skipped_bytes", r.SkippedBytes)
	b = appendStr(b, "skipped_sha256", r.SkippedSHA256)
	return append(b, '}')
}

// appendStr appends `,"key":` and v as a JSON string. Keys are constants
// that need no escaping.
func appendStr(b []byte, key, v string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendInt(b []byte, key string, v int64) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendInt(b, v, 10)
}

func appendBool(b []byte, key string, v bool) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return strconv.AppendBool(b, v)
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string (RFC 8259 section 7) as
// encoding/json writes it without HTML escaping: '"', '\\' and control
// characters escaped (\b, \f, \n, \r, \t by name, the others as \u00XX),
// invalid UTF-8 replaced by \ufffd, and U+2028 and U+2029 escaped so the
// line is valid JavaScript too.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
