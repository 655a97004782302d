package clamav

import (
	"bytes"
	"io"
	"net/mail"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// checkNotice parses a notice with net/mail and checks that it is well
// formed and keeps testHeader's fields.
func checkNotice(t *testing.T, notice []byte, virus string) {
	t.Helper()
	checkLines(t, notice)
	m, err := mail.ReadMessage(bytes.NewReader(notice))
	if err != nil {
		t.Fatalf("notice does not parse: %v\n%s", err, notice)
	}
	for name, want := range map[string]string{
		"Date":         "Mon, 3 Nov 2025 10:00:00 +0100",
		"From":         "Alice Example <alice@example.org>",
		"To":           "bob@example.org",
		"Subject":      "[VIRUS REMOVED] quarterly report",
		"Message-ID":   "<1234@example.org>",
		"MIME-Version": "1.0",
		"Content-Type": "text/plain; charset=us-ascii",
		"Received":     "",
	} {
		if got := m.Header.Get(name); got != want {
			t.Errorf("notice %s = %q, want %q", name, got, want)
		}
	}
	if _, err := m.Header.Date(); err != nil {
		t.Errorf("notice Date: %v", err)
	}
	if _, err := m.Header.AddressList("From"); err != nil {
		t.Errorf("notice From: %v", err)
	}
	body, err := io.ReadAll(m.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(body, []byte(virus)) {
		t.Errorf("notice body does not name %q:\n%s", virus, body)
	}
}

// checkLines checks that every line of msg ends in CRLF and stays within
// 998 octets (RFC 5322 section 2.1.1) and that it is US-ASCII or UTF-8
// text without control characters.
func checkLines(t *testing.T, msg []byte) {
	t.Helper()
	if !bytes.HasSuffix(msg, []byte("\r\n")) {
		t.Error("message does not end in CRLF")
	}
	for i, line := range bytes.SplitAfter(msg, []byte("\r\n")) {
		text := bytes.TrimSuffix(line, []byte("\r\n"))
		if len(text) > hardLineLimit {
			t.Errorf("line %d has %d octets", i+1, len(text))
		}
		for _, c := range text {
			if c < 0x20 && c != '\t' || c == 0x7f {
				t.Errorf("line %d holds control character 0x%02x: %q", i+1, c, line)
			}
		}
	}
}

func TestReadHeaderFields(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want headerFields
	}{
		{"folded", "From: a@b.c\r\nSubject: one\r\n\ttwo\r\n  three\r\n\r\nSubject: body\r\n",
			headerFields{"From": "a@b.c", "Subject": "one two  three"}},
		{"bare-lf", "from: a@b.c\nSUBJECT: hi\n there\n\nbody\n",
			headerFields{"From": "a@b.c", "Subject": "hi there"}},
		{"first-wins", "To: first@x\r\nTo: second@x\r\n\r\n", headerFields{"To": "first@x"}},
		{"space-before-colon", "Subject : obsolete\r\n\r\n", headerFields{"Subject": "obsolete"}},
		{"no-end", "Message-ID: <x@y>\r\nDate: today", headerFields{"Message-ID": "<x@y>", "Date": "today"}},
		{"garbage", "not a header\r\nFrom: a@b.c\r\n\r\n", headerFields{"From": "a@b.c"}},
		{"control-chars", "Subject: a\x00b\rc\r\n\r\n", headerFields{"Subject": "a b c"}},
		{"empty", "", headerFields{}},
		{"no-header", "\r\nFrom: body@x\r\n", headerFields{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(tc.in), iotest.OneByteReader(strings.NewReader(tc.in))} {
				got := readHeaderFields(r)
				if len(got) != len(tc.want) {
					t.Fatalf("fields = %q, want %q", got, tc.want)
				}
				for k, v := range tc.want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
			}
		})
	}
}

func TestReadHeaderFieldsBounded(t *testing.T) {
	// A field that runs past the bound is dropped, and reading stops
	// there: an endless header costs maxHeaderSection octets at most.
	in := "From: a@b.c\r\nSubject: " + strings.Repeat("x", 2*maxHeaderSection) + "\r\n\r\n"
	r := strings.NewReader(in)
	got := readHeaderFields(r)
	if got["From"] != "a@b.c" || got["Subject"] != "" {
		t.Errorf("fields = %q", got)
	}
	if read := len(in) - r.Len(); read > maxHeaderSection+4096 {
		t.Errorf("read %d octets, bound is %d", read, maxHeaderSection)
	}
}

func TestBuildNotice(t *testing.T) {
	now := time.Date(2025, 11, 3, 10, 0, 0, 0, time.UTC)
	t.Run("defaults", func(t *testing.T) {
		n := buildNotice(headerFields{}, "Bad\r\nName\x00", 42, now, true)
		checkLines(t, n)
		if !bytes.HasPrefix(n, []byte(ScannedHeader)) {
			t.Error("scanned header missing")
		}
		m, err := mail.ReadMessage(bytes.NewReader(n))
		if err != nil {
			t.Fatal(err)
		}
		if d, err := m.Header.Date(); err != nil || !d.Equal(now) {
			t.Errorf("Date = %v, %v", d, err)
		}
		if _, err := m.Header.AddressList("From"); err != nil {
			t.Errorf("From: %v", err)
		}
		if s := m.Header.Get("Subject"); s != SubjectPrefix {
			t.Errorf("Subject = %q", s)
		}
		if m.Header.Get("To") != "" || m.Header.Get("Message-ID") != "" {
			t.Error("fields invented")
		}
		body, _ := io.ReadAll(m.Body)
		if !bytes.Contains(body, []byte("Bad__Name_")) || !bytes.Contains(body, []byte("42")) {
			t.Errorf("body:\n%s", body)
		}
	})
	t.Run("long-subject", func(t *testing.T) {
		subject := strings.Repeat("word ", 300) + strings.Repeat("é", 800)
		n := buildNotice(headerFields{"Subject": subject}, "V", 1, now, false)
		checkLines(t, n)
		m, err := mail.ReadMessage(bytes.NewReader(n))
		if err != nil {
			t.Fatal(err)
		}
		got := m.Header.Get("Subject")
		if !strings.HasPrefix(got, SubjectPrefix+" word word") || strings.Count(got, "word") != 300 {
			t.Errorf("Subject lost its words: %.100q", got)
		}
		for _, line := range strings.Split(string(n[:bytes.Index(n, []byte("\r\n\r\n"))]), "\r\n") {
			if len(line) > softLineLimit && strings.Contains(line, " word") {
				t.Errorf("foldable line of %d octets", len(line))
			}
		}
	})
}
