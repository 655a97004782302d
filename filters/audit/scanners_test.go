package audit

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// scanMessageID runs a message through the scanner in chunks of the given
// size and returns what it found.
func scanMessageID(msg string, chunk int) string {
	m := newMessageIDScanner()
	for p := []byte(msg); len(p) > 0; {
		n := min(chunk, len(p))
		m.write(p[:n])
		p = p[n:]
	}
	m.close()
	return m.id
}

func TestMessageIDScanner(t *testing.T) {
	long := strings.Repeat("X-Filler: "+strings.Repeat("a", 80)+"\r\n", 1000)
	tests := []struct {
		name, msg, want string
	}{
		{"simple", "Message-ID: <a@b>\r\n\r\nbody\r\n", "<a@b>"},
		{"case and space before colon", "Subject: x\r\nmessage-id  : <c@d>\r\n\r\n", "<c@d>"},
		{"folded", "Message-Id:\r\n\t<e@f>\r\nTo: x\r\n\r\n", "<e@f>"},
		{"comment around", "Message-ID: (gen) <g@h> (x)\r\n\r\n", "<g@h>"},
		{"no brackets", "Message-ID: bare-id\r\n\r\n", "bare-id"},
		{"first wins", "Message-ID: <1@x>\r\nMessage-ID: <2@x>\r\n\r\n", "<1@x>"},
		{"bare LF", "Message-ID: <lf@x>\nSubject: s\n\n", "<lf@x>"},
		{"only in body", "Subject: s\r\n\r\nMessage-ID: <body@x>\r\n", ""},
		{"none", "Subject: s\r\n\r\nbody\r\n", ""},
		{"header ends at EOF", "To: a\r\nMessage-ID: <eof@x>", "<eof@x>"},
		{"past the scan bound", long + "Message-ID: <late@x>\r\n\r\n", ""},
		{"just inside the bound", strings.Repeat("X: y\r\n", 100) + "Message-ID: <in@x>\r\n\r\n", "<in@x>"},
		{"long line cut", "Message-ID: <" + strings.Repeat("z", 2000) + ">\r\n\r\n", "<" + strings.Repeat("z", maxHeaderLine-len("Message-ID: <"))},
		{"other field named alike", "X-Message-ID: <x@x>\r\n\r\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, chunk := range []int{1, 3, 7, 4096, len(tt.msg) + 1} {
				if got := scanMessageID(tt.msg, chunk); got != tt.want {
					t.Fatalf("chunk %d: got %.40q, want %.40q", chunk, got, tt.want)
				}
			}
		})
	}
}

func TestUIDLScanner(t *testing.T) {
	got := map[int]string{}
	u := newUIDLScanner(func(msg int, uid string) { got[msg] = uid })
	listing := "1 whq\r\n2 QhdPYR:00WBw1Ph7x7\r\n3 " + strings.Repeat("x", 71) + "\r\n" +
		"junk\r\n0 zero\r\n4 a b\r\n5 " + strings.Repeat("y", 300) + "\r\n6 ok\r\n"
	for _, c := range []byte(listing) {
		u.write([]byte{c})
	}
	want := map[int]string{1: "whq", 2: "QhdPYR:00WBw1Ph7x7", 6: "ok"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("msg %d: %q, want %q", k, got[k], v)
		}
	}
}

// TestTapPassesBodyUnchanged reads a body through the tap one byte at a
// time and whole, and checks every octet arrives unchanged and counted.
func TestTapPassesBodyUnchanged(t *testing.T) {
	f, path := newTest(t, false)
	body := "Message-ID: <t@x>\r\n\r\n" + strings.Repeat("line of text\r\n", 5000)
	for _, oneByte := range []bool{false, true} {
		tp := &tap{r: strings.NewReader(body), f: f, retrieving: true,
			retrieve: retrieveRecord{header: newHeader(EventRetrieve, nil, time.Now()), Verb: "RETR", Msg: 1}}
		tp.msgid.init()
		var r io.Reader = tp
		if oneByte {
			r = iotest.OneByteReader(tp)
		}
		var out bytes.Buffer
		if _, err := out.ReadFrom(r); err != nil {
			t.Fatal(err)
		}
		if out.String() != body {
			t.Fatal("body changed by the tap")
		}
	}
	f.Flush(nil) // as the session does before the answer goes out
	recs := only(records(t, path), "retrieve")
	if len(recs) != 2 {
		t.Fatalf("%d retrieve records", len(recs))
	}
	for _, r := range recs {
		want(t, r, map[string]any{"size": len(body), "message_id": "<t@x>", "complete": true})
	}
}

func TestParseMsg(t *testing.T) {
	for s, want := range map[string]int{"1": 1, "007": 7, "123456789": 123456789, "1234567890": 1234567890} {
		if n, ok := parseMsg(s); !ok || n != want {
			t.Errorf("parseMsg(%q) = %d, %v", s, n, ok)
		}
	}
	for _, s := range []string{"", "0", "-1", "+1", "1a", "12345678901", " 1"} {
		if _, ok := parseMsg(s); ok {
			t.Errorf("parseMsg(%q) accepted", s)
		}
	}
}
