package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// lineFieldNames are the JSON names of lineFields, in struct order.
var lineFieldNames = [...]string{"time", "event", "prev_hash", "reason", "skipped_offset", "skipped_bytes", "skipped_sha256"}

var errSyntax = errors.New("not a JSON object")

// decodeLineFields fills f from content, a JSON object, as
// json.Unmarshal(content, f) would: members are taken in order (a later
// duplicate wins), a name matches a field exactly or else
// case-insensitively, null leaves a field as it is, and a value of the
// wrong type is an error. It reads only the values of the fields it fills
// and skips the others, which makes checkLine, and so Check and audit
// search, several times faster than a full json.Unmarshal. checkLine has
// checked the line with json.Valid before; a syntax error here is still
// reported, never a panic.
func decodeLineFields(content []byte, f *lineFields) error {
	i := skipSpace(content, 0)
	if i >= len(content) || content[i] != '{' {
		return errSyntax
	}
	i = skipSpace(content, i+1)
	if i < len(content) && content[i] == '}' {
		return nil
	}
	for i < len(content) {
		end, err := stringEnd(content, i)
		if err != nil {
			return err
		}
		key := content[i:end]
		i = skipSpace(content, end)
		if i >= len(content) || content[i] != ':' {
			return errSyntax
		}
		i = skipSpace(content, i+1)
		vend, err := valueEnd(content, i)
		if err != nil {
			return err
		}
		if err := setLineField(f, key, content[i:vend]); err != nil {
			return err
		}
		i = skipSpace(content, vend)
		if i >= len(content) {
			break
		}
		switch content[i] {
		case '}':
			return nil
		case ',':
			i = skipSpace(content, i+1)
		default:
			return errSyntax
		}
	}
	return errSyntax
}

// setLineField stores val in the field of f that the quoted name key
// names, if any.
func setLineField(f *lineFields, key, val []byte) error {
	name, ok := plainText(key)
	if !ok {
		var s string
		if err := json.Unmarshal(key, &s); err != nil {
			return err
		}
		name = []byte(s)
	}
	idx := -1
	for j, n := range lineFieldNames {
		if string(name) == n {
			idx = j
			break
		}
	}
	if idx < 0 {
		for j, n := range lineFieldNames {
			if bytes.EqualFold(name, []byte(n)) {
				idx = j
				break
			}
		}
	}
	switch idx {
	case 0:
		return setStringPtr(&f.Time, val)
	case 1:
		return setStringPtr(&f.Event, val)
	case 2:
		return setStringPtr(&f.PrevHash, val)
	case 3:
		return setString(&f.Reason, val)
	case 4:
		return setInt(&f.SkippedOffset, val)
	case 5:
		return setInt(&f.SkippedBytes, val)
	case 6:
		return setString(&f.SkippedSHA256, val)
	}
	return nil
}

func setStringPtr(p **string, val []byte) error {
	if s, ok := plainString(val); ok {
		*p = &s
		return nil
	}
	return unmarshalField(val, p)
}

func setString(p *string, val []byte) error {
	if s, ok := plainString(val); ok {
		*p = s
		return nil
	}
	return unmarshalField(val, p)
}

func setInt(p *int64, val []byte) error {
	if len(val) > 0 && len(val) < 19 && val[0] >= '1' && val[0] <= '9' || len(val) == 1 && val[0] == '0' {
		if n, err := strconv.ParseInt(string(val), 10, 64); err == nil {
			*p = n
			return nil
		}
	}
	return unmarshalField(val, p)
}

func unmarshalField(val []byte, p any) error {
	if err := json.Unmarshal(val, p); err != nil {
		return fmt.Errorf("field value %.40s: %w", val, err)
	}
	return nil
}

// plainString returns the text of a quoted JSON string that has no
// escape and only ASCII, which is its text as it stands.
func plainString(q []byte) (string, bool) {
	s, ok := plainText(q)
	return string(s), ok
}

// plainText is plainString without the copy: the octets between the
// quotes.
func plainText(q []byte) ([]byte, bool) {
	if len(q) < 2 || q[0] != '"' || q[len(q)-1] != '"' {
		return nil, false
	}
	s := q[1 : len(q)-1]
	for _, c := range s {
		if c == '\\' || c >= 0x80 || c < 0x20 {
			return nil, false
		}
	}
	return s, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// stringEnd returns the index after the JSON string that starts at b[i].
func stringEnd(b []byte, i int) (int, error) {
	if i >= len(b) || b[i] != '"' {
		return 0, errSyntax
	}
	for j := i + 1; ; {
		k := bytes.IndexAny(b[j:], `"\`)
		if k < 0 {
			return 0, errSyntax
		}
		j += k
		if b[j] == '"' {
			return j + 1, nil
		}
		j += 2 // an escape: skip the backslash and the octet after it
		if j > len(b) {
			return 0, errSyntax
		}
	}
}

// valueEnd returns the index after the JSON value that starts at b[i].
func valueEnd(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax
	}
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); {
			switch b[j] {
			case '"':
				e, err := stringEnd(b, j)
				if err != nil {
					return 0, err
				}
				j = e
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
			j++
		}
		return 0, errSyntax
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' && b[j] != '\n' && b[j] != '\r' {
		j++
	}
	if j == i {
		return 0, errSyntax
	}
	return j, nil
}
