package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"
)

// stdJSON encodes v as the writer used to, with encoding/json and no HTML
// escaping, without the newline.
func stdJSON(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// awkward are strings that encoding/json escapes in every way it has.
var awkward = []string{
	"",
	"plain",
	`quote " and backslash \`,
	"controls \x00\x01\b\f\n\r\t\x1f\x7f",
	"html <a href=\"x\">&amp;</a>",
	"utf-8 grüße, 日本, 😀",
	"invalid \xff\xfe and cut \xe6\x97",
	"separators \u2028 and \u2029",
	"\ufffd literal replacement",
}

// TestRecordsEncodeAsEncodingJSON checks that every record type appends
// exactly the octets encoding/json writes for it, so the trail's format
// is what it was.
func TestRecordsEncodeAsEncodingJSON(t *testing.T) {
	lines := 5
	for i, str := range awkward {
		h := header{
			Time:  time.Date(2026, 12, 1, 23, 4, 5, i*123456789%1e9, time.UTC),
			Event: str, Instance: str, Session: str, Client: str, OriginalDst: str, Listener: str,
		}
		n := int64(i*1000 - 3)
		recs := []jsonRecord{
			&sessionStartRecord{header: h, Local: str, TLSVersion: str, TLSCipher: str, SNI: str},
			&tlsRecord{header: h, TLSVersion: str, TLSCipher: str, SNI: str},
			&sessionEndRecord{header: h, DurationMS: n, BytesIn: n, BytesOut: -n, Reason: str, DeletesMarked: int(n), DeletesCommitted: i%2 == 0},
			&authRecord{header: h, ClientUser: str, BackendUser: str, Mechanism: str, Backend: str, Result: str, Code: str},
			&commandRecord{header: h, Seq: n, Verb: str, Args: str, Out: str, Status: str, Code: str, Bytes: n, DurationUS: n, Complete: i%2 == 1, Error: str},
			&commandRecord{header: h},
			&retrieveRecord{header: h, Verb: str, Msg: int(n), Lines: &lines, UIDL: str, Size: n, MessageID: str, Complete: true},
			&retrieveRecord{header: h},
			&deleteRecord{header: h, Msg: int(n), UIDL: str},
			&commitRecord{header: h, Count: int(n), Msgs: []int{1, 22, 333}, Truncated: true},
			&commitRecord{header: h, Msgs: []int{}},
			&commitRecord{header: h},
			&scanRecord{header: h, Verb: str, Msg: int(n), Verdict: str, Virus: str, Action: str, Error: str, Bytes: n, DurationUS: n},
			&chainBreakRecord{header: h, Reason: str, SkippedOffset: n, SkippedBytes: n, SkippedSHA256: str},
		}
		for _, r := range recs {
			got := r.appendJSON(nil)
			if want := stdJSON(t, r); !bytes.Equal(got, want) {
				t.Errorf("%T with %q:\n got %s\nwant %s", r, str, got, want)
			}
		}
	}
}

// FuzzAppendString checks appendString against encoding/json for any
// string.
func FuzzAppendString(f *testing.F) {
	for _, s := range awkward {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendString([]byte("x"), s)
		want := append([]byte("x"), stdJSON(t, s)...)
		if !bytes.Equal(got, want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

// TestHeaderTimeLooksAsBefore: times are written in UTC with nanoseconds
// and without trailing zeros, as time.RFC3339Nano formats them.
func TestHeaderTimeLooksAsBefore(t *testing.T) {
	local := time.FixedZone("here", 3600)
	when := time.Date(2026, 12, 2, 0, 4, 5, 120000000, local)
	h := header{Time: when.UTC(), Event: "e"}
	got := string(h.appendJSON(nil))
	if want := fmt.Sprintf(`{"time":%q`, when.UTC().Format(time.RFC3339Nano)); got[:len(want)] != want || want != `{"time":"2026-12-01T23:04:05.12Z"` {
		t.Errorf("header %s, want it to start %s", got, want)
	}
}
