package parser

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"USER alice", "user alice", "PASS  my secret ", "PASS", "PASS ", "STAT", "TOP 1 10",
		"APOP mrose c4c9334bac560ecc979e58001b3e22fb", "AUTH PLAIN AGFsaWNlAHNlY3JldA==",
		"USER a\nPASS b", "US\x00ER", "USER  a", "X-FOO a=b", "USER \xc3\xa9", "", " ",
		strings.Repeat("A", MaxVerbLength+1),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := ParseCommand(line)
		if err != nil {
			if !errors.Is(err, ErrBadCommand) {
				t.Fatalf("error %v does not wrap ErrBadCommand", err)
			}
			return
		}
		s := c.String()
		if strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("String %q holds CR, LF or NUL", s)
		}
		again, err := ParseCommand([]byte(s))
		if err != nil || !reflect.DeepEqual(again, c) {
			t.Fatalf("%q parsed as %#v; String %q parses as (%#v, %v)", line, c, s, again, err)
		}
		var out bytes.Buffer
		w := NewWriter(bufio.NewWriter(&out))
		if err := w.WriteCommand(c); err != nil {
			t.Fatalf("WriteCommand(%#v) refused a parsed command: %v", c, err)
		}
		w.Flush()
		if out.String() != s+"\r\n" {
			t.Fatalf("WriteCommand wrote %q, String is %q", out.String(), s)
		}
		_ = c.Redacted()
	})
}

func FuzzParseResponse(f *testing.F) {
	for _, s := range []string{
		"+OK", "+OK hello", "-ERR [SYS/TEMP] later", "-ERR [IN-USE]", "-ERR [LOGIN-DELAY] 60",
		"-ERR [AUTH]x", "+OK [XCLIENT] ready", "-ERR []", "-ERR [", "+ PDEyMz4=", "+", "+ ",
		"+OKAY", "OK", "+OK a\tb", "+OK \x01", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		r, err := ParseResponse(line)
		if err != nil {
			if !errors.Is(err, ErrBadResponse) {
				t.Fatalf("error %v does not wrap ErrBadResponse", err)
			}
			return
		}
		s := r.String()
		if strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("String %q holds CR, LF or NUL", s)
		}
		again, err := ParseResponse([]byte(s))
		if err != nil || again != r {
			t.Fatalf("%q parsed as %#v; String %q parses as (%#v, %v)", line, r, s, again, err)
		}
		var out bytes.Buffer
		w := NewWriter(bufio.NewWriter(&out))
		if err := w.WriteResponse(r); err != nil {
			t.Fatalf("WriteResponse(%#v) refused a parsed response: %v", r, err)
		}
		w.Flush()
		if out.String() != s+"\r\n" {
			t.Fatalf("WriteResponse wrote %q, String is %q", out.String(), s)
		}
	})
}

// refLines splits a stream into ReadLine results the obvious way.
func refLines(data []byte, max int) []result {
	var out []result
	for {
		i := bytes.Index(data, []byte("\r\n"))
		if i < 0 {
			if len(data) == 0 {
				return append(out, fail(io.EOF))
			}
			return append(out, fail(io.ErrUnexpectedEOF))
		}
		line := data[:i]
		data = data[i+2:]
		switch {
		case i+2 > max:
			out = append(out, fail(ErrLineTooLong))
		case bytes.ContainsAny(line, "\r\n\x00"):
			out = append(out, fail(ErrBadLine))
		default:
			out = append(out, ok(string(line)))
		}
	}
}

func FuzzReadLine(f *testing.F) {
	f.Add([]byte("USER a\r\nPASS b\r\n"), uint8(0), uint8(0))
	f.Add([]byte("USER a\nPASS b\r\nNOOP\r\n"), uint8(10), uint8(1))
	f.Add([]byte("a\rb\r\r\n\n\r\n\x00\r\n"), uint8(20), uint8(4))
	f.Add([]byte("123456789\r\n12345678\r\n"), uint8(10), uint8(5))
	f.Add([]byte(strings.Repeat("x", 40)+"\r\n"), uint8(30), uint8(3))
	f.Add([]byte("tail without end"), uint8(0), uint8(2))
	f.Fuzz(func(t *testing.T, data []byte, max, mode uint8) {
		maxLine := int(max) // 0 means the default
		if maxLine == 0 {
			maxLine = DefaultMaxCommandLine
		}
		want := refLines(data, maxLine)
		m := readModes[int(mode)%len(readModes)]
		r := newTestReader(m, string(data), int(max))
		for i, w := range want {
			line, err := r.ReadLine()
			if bytes.ContainsAny(line, "\r\n\x00") {
				t.Fatalf("line %d %q holds CR, LF or NUL", i, line)
			}
			if err == nil && len(line)+2 > maxLine {
				t.Fatalf("line %d is %d octets, over MaxLine %d", i, len(line)+2, maxLine)
			}
			if w.err != nil {
				if err != w.err {
					t.Fatalf("read %d: got (%q, %v), want %v", i, line, err, w.err)
				}
				continue
			}
			if err != nil || string(line) != w.line {
				t.Fatalf("read %d: got (%q, %v), want %q", i, line, err, w.line)
			}
		}
	})
}

// expectedBody is what DotWriter then DotReader must give back for data.
func expectedBody(data []byte) []byte {
	if len(data) > 0 && !bytes.HasSuffix(data, []byte("\r\n")) {
		return append(append([]byte{}, data...), '\r', '\n')
	}
	return data
}

func FuzzDotRoundTrip(f *testing.F) {
	for _, s := range []string{
		"", "a", "a\r\n", ".\r\n", "..\r\n.\r\n", "a\r\n.", ".x\r\n", "\r", "\n.", "a\r\n.\r\nb",
		"...\r\n", "a\n.\r\n.\r\n", ".\rx", "x\r\n..\r\n.\r\n+OK\r\n",
	} {
		f.Add([]byte(s), uint8(0))
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		// Encode in writes of chunk+1 bytes, then decode.
		var wire bytes.Buffer
		w := NewWriter(bufio.NewWriter(&wire))
		d := w.DotWriter()
		step := int(chunk) + 1
		for p := data; len(p) > 0; {
			n := min(step, len(p))
			if k, err := d.Write(p[:n]); k != n || err != nil {
				t.Fatalf("Write = (%d, %v)", k, err)
			}
			p = p[n:]
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		w.Flush()
		want := expectedBody(data)
		if ref, used, err := refDecode(wire.Bytes()); err != io.EOF || used != wire.Len() || !bytes.Equal(ref, want) {
			t.Fatalf("wire %q decodes by reference as (%q, %d, %v), want %q", wire.Bytes(), ref, used, err, want)
		}
		m := readModes[int(chunk)%len(readModes)]
		br := bodyReads[int(chunk)%len(bodyReads)]
		r := newTestReader(m, wire.String()+"NEXT\r\n", 0)
		got, err := br.read(r.DotReader())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("wire %q reads back as (%q, %v), want %q", wire.Bytes(), got, err, want)
		}
		if line, err := r.ReadLine(); err != nil || string(line) != "NEXT" {
			t.Fatalf("after body: got (%q, %v)", line, err)
		}

		// The stuffed path relays the same wire bytes unchanged.
		rs := newTestReader(m, wire.String()+"NEXT\r\n", 0)
		stuffed, err := br.read(rs.StuffedReader())
		if err != nil || !bytes.Equal(stuffed, bytes.TrimSuffix(wire.Bytes(), []byte(".\r\n"))) {
			t.Fatalf("wire %q reads stuffed as (%q, %v)", wire.Bytes(), stuffed, err)
		}
		var again bytes.Buffer
		wa := NewWriter(bufio.NewWriter(&again))
		sw := wa.StuffedWriter()
		sw.Write(stuffed)
		if err := sw.Close(); err != nil {
			t.Fatal(err)
		}
		wa.Flush()
		if !bytes.Equal(again.Bytes(), wire.Bytes()) {
			t.Fatalf("stuffed relay of %q wrote %q", wire.Bytes(), again.Bytes())
		}

		// Decode the fuzz input itself as a stuffed body.
		ref, used, refErr := refDecode(data)
		r = newTestReader(m, string(data), 0)
		got, err = br.read(r.DotReader())
		if len(got) > len(data) {
			t.Fatalf("decoded %d bytes out of %d", len(got), len(data))
		}
		wantErr := error(nil)
		if refErr != io.EOF {
			wantErr = refErr
		}
		if err != wantErr || !bytes.Equal(got, ref) {
			t.Fatalf("%q decodes as (%q, %v), reference (%q, %v)", data, got, err, ref, refErr)
		}
		if refErr == io.EOF {
			rest, _ := io.ReadAll(r.R)
			if !bytes.Equal(rest, data[used:]) {
				t.Fatalf("%q: after body %q left, want %q", data, rest, data[used:])
			}
		}
	})
}
