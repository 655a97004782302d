package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// message is one message of a template. write streams its exact bytes, so
// even the 50 MiB message is never held in memory.
type message struct {
	write func(w io.Writer) error
}

// Sizes of the large deterministic messages.
const (
	bigSize    = 50 << 20 // user big: one 50 MiB message
	mediumSize = 10 << 20 // user virus, message 4: 10 MiB clean, for scan benchmarks
)

// templateMessages returns the messages of a template, in POP3 order.
func templateMessages(name string) ([]message, error) {
	switch name {
	case "alice":
		return aliceMessages(), nil
	case "bob":
		ms := make([]message, 1000)
		for i := range ms {
			ms[i] = textMessage(fmt.Sprintf("bob message %04d", i+1), fmt.Sprintf("bob-%04d", i+1),
				fmt.Sprintf("This is small message number %d of 1000 for bob.\r\n", i+1))
		}
		return ms, nil
	case "big":
		return []message{sizedMessage("big 50 MiB message", "big-1", 1, bigSize)}, nil
	case "dele":
		ms := make([]message, 5)
		for i := range ms {
			ms[i] = textMessage(fmt.Sprintf("dele message %d", i+1), fmt.Sprintf("dele-%d", i+1),
				fmt.Sprintf("Delete me: message %d of 5.\r\n", i+1))
		}
		return ms, nil
	case "virus":
		return []message{
			textMessage("clean before", "virus-1", "A clean message before the test virus.\r\n"),
			textMessage("eicar test", "virus-2", "The next line is the EICAR anti-virus test string.\r\n"+eicar()+"\r\n"),
			textMessage("clean after", "virus-3", "A clean message after the test virus.\r\n"),
			sizedMessage("clean 10 MiB", "virus-4", 2, mediumSize),
		}, nil
	case "spacey":
		return []message{textMessage("hello spacey", "spacey-1", "The password of this user has spaces.\r\n")}, nil
	case "load":
		ms := make([]message, 10)
		for i := range ms {
			body := strings.Repeat(fmt.Sprintf("Load test message %d, a line of filler text to give it some size.\r\n", i+1), 20+i*10)
			ms[i] = textMessage(fmt.Sprintf("load message %d", i+1), fmt.Sprintf("load-%d", i+1), body)
		}
		return ms, nil
	case "b-alice", "b-bob", "b-carol":
		u := strings.TrimPrefix(name, "b-")
		return []message{textMessage("backend B: hello "+u, "b-"+u+"-1",
			"This mailbox lives on backend B.\r\n")}, nil
	default:
		return nil, fmt.Errorf("unknown template %q", name)
	}
}

// aliceMessages are the framing edge cases of user alice.
func aliceMessages() []message {
	long := strings.Repeat("0123456789", 99) + "abcdefgh" // 998 octets, the RFC 5322 limit
	return []message{
		textMessage("plain hello", "alice-1", "Hello Alice.\r\nThis is a plain message.\r\n"),
		textMessage("leading dots", "alice-2",
			".one leading dot\r\n..two leading dots\r\n...three leading dots\r\n. dot and space\r\nno dot\r\n.. \r\n"),
		textMessage("lone dot lines", "alice-3", "before the dot\r\n.\r\nafter the dot\r\n.\r\n"),
		textMessage("998 octet line", "alice-4", "The next line has 998 octets.\r\n"+long+"\r\nend\r\n"),
		textMessage("no final newline", "alice-5", "This message ends without a line end."),
		multipartMessage(),
	}
}

// writeHeader writes a fixed header block followed by the empty line that
// ends it. extra lines are written before the empty line.
func writeHeader(w io.Writer, subject, id string, extra ...string) error {
	h := "From: Popgate Test <sender@popgate.test>\r\n" +
		"To: Mailbox Owner <owner@popgate.test>\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n" +
		"Message-ID: <" + id + "@popgate.test>\r\n"
	for _, e := range extra {
		h += e + "\r\n"
	}
	h += "\r\n"
	if _, err := io.WriteString(w, h); err != nil {
		return fmt.Errorf("write header: %w", err)
	}
	return nil
}

// textMessage is a single-part text message with the body given verbatim.
func textMessage(subject, id, body string) message {
	return message{write: func(w io.Writer) error {
		if err := writeHeader(w, subject, id); err != nil {
			return err
		}
		if _, err := io.WriteString(w, body); err != nil {
			return fmt.Errorf("write body: %w", err)
		}
		return nil
	}}
}

// multipartMessage is a MIME message with a text part and a small, clean
// base64 attachment.
func multipartMessage() message {
	const boundary = "popgate-boundary-1"
	attachment := base64.StdEncoding.EncodeToString([]byte("name,value\r\nalpha,1\r\nbeta,2\r\n"))
	body := "This is a multi-part message in MIME format.\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Transfer-Encoding: 8bit\r\n" +
		"\r\n" +
		"Alice, the table is attached. Grüße.\r\n" +
		"--" + boundary + "\r\n" +
		"Content-Type: text/csv; name=\"table.csv\"\r\n" +
		"Content-Disposition: attachment; filename=\"table.csv\"\r\n" +
		"Content-Transfer-Encoding: base64\r\n" +
		"\r\n" +
		attachment + "\r\n" +
		"--" + boundary + "--\r\n"
	return message{write: func(w io.Writer) error {
		if err := writeHeader(w, "multipart with attachment", "alice-6",
			"MIME-Version: 1.0",
			"Content-Type: multipart/mixed; boundary=\""+boundary+"\""); err != nil {
			return err
		}
		if _, err := io.WriteString(w, body); err != nil {
			return fmt.Errorf("write body: %w", err)
		}
		return nil
	}}
}

// sizedMessage is a message of exactly size octets: a header padded with
// an X-Pad field and a base64 body of pseudo-random bytes from seed, in
// lines of 76 octets plus CRLF, like a large attachment.
func sizedMessage(subject, id string, seed uint64, size int64) message {
	return message{write: func(w io.Writer) error {
		var hdr strings.Builder
		extra := []string{"MIME-Version: 1.0", "Content-Type: application/octet-stream",
			"Content-Transfer-Encoding: base64"}
		if err := writeHeader(&hdr, subject, id, extra...); err != nil {
			return err
		}
		const lineLen = 78                // 76 base64 octets + CRLF
		const padMin = len("X-Pad: \r\n") // an empty pad field
		room := size - int64(hdr.Len()) - int64(padMin)
		if room < 0 {
			return fmt.Errorf("size %d too small for a header", size)
		}
		lines := room / lineLen
		pad := "X-Pad: " + strings.Repeat("x", int(room%lineLen))
		bw := bufio.NewWriterSize(w, 1<<16)
		if err := writeHeader(bw, subject, id, append(extra, pad)...); err != nil {
			return err
		}
		rng := splitmix{state: seed}
		raw := make([]byte, 57)
		enc := make([]byte, 76, lineLen)
		for i := int64(0); i < lines; i++ {
			rng.fill(raw)
			base64.StdEncoding.Encode(enc[:76], raw)
			if _, err := bw.Write(append(enc[:76], '\r', '\n')); err != nil {
				return fmt.Errorf("write body: %w", err)
			}
		}
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("write body: %w", err)
		}
		return nil
	}}
}

// splitmix is the SplitMix64 generator: tiny, fast and deterministic, which
// is all the large test bodies need.
type splitmix struct{ state uint64 }

// fill fills b with pseudo-random bytes.
func (s *splitmix) fill(b []byte) {
	for i := 0; i < len(b); i += 8 {
		s.state += 0x9e3779b97f4a7c15
		z := s.state
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
		z ^= z >> 31
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(z >> (8 * j))
		}
	}
}
