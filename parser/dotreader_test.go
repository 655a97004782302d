package parser

import (
	"bufio"
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

// refDecode decodes a stuffed body the slow, obvious way, one byte at a
// time, as RFC 1939 section 3 words it. It returns the body, how many input
// bytes it used, and io.EOF at the terminator or io.ErrUnexpectedEOF.
func refDecode(in []byte) (body []byte, used int, err error) {
	body = []byte{}
	lineStart := true
	for i := 0; i < len(in); i++ {
		if lineStart {
			lineStart = false
			if in[i] == '.' {
				if len(in)-i < 3 {
					return body, len(in), io.ErrUnexpectedEOF
				}
				if in[i+1] == '\r' && in[i+2] == '\n' {
					return body, i + 3, io.EOF
				}
				continue // the stuffing dot goes
			}
		}
		c := in[i]
		body = append(body, c)
		lineStart = c == '\n' && i > 0 && in[i-1] == '\r'
	}
	return body, len(in), io.ErrUnexpectedEOF
}

// bodyReads are the ways a test reads a body: Read with a large buffer,
// Read one byte at a time, and WriteTo.
var bodyReads = []struct {
	name string
	read func(io.Reader) ([]byte, error)
}{
	{"ReadAll", func(r io.Reader) ([]byte, error) { return io.ReadAll(struct{ io.Reader }{r}) }},
	{"OneByte", func(r io.Reader) ([]byte, error) { return io.ReadAll(iotest.OneByteReader(r)) }},
	{"WriteTo", func(r io.Reader) ([]byte, error) {
		var b bytes.Buffer
		_, err := io.Copy(&b, r) // uses the body's WriteTo
		return b.Bytes(), err
	}},
}

func TestDotReader(t *testing.T) {
	line998 := strings.Repeat("y", 998)
	lineMiB := strings.Repeat("z", 1<<20)
	tests := []struct {
		name  string
		input string // stuffed body with its terminator
		want  string // decoded body
	}{
		{"empty body", ".\r\n", ""},
		{"one line", "a\r\n.\r\n", "a\r\n"},
		{"two lines", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
		{"empty lines", "\r\n\r\n.\r\n", "\r\n\r\n"},
		{"dot line", "..\r\n.\r\n", ".\r\n"},
		{"body ending with a dot line", "a\r\n..\r\n.\r\n", "a\r\n.\r\n"},
		{"stuffed line", "..foo\r\n.\r\n", ".foo\r\n"},
		{"three dots", "...\r\n.\r\n", "..\r\n"},
		{"line starting with three dots", "....x\r\n.\r\n", "...x\r\n"},
		{"unstuffed dot line", ".x\r\n.\r\n", "x\r\n"},
		{"dot space", ". \r\n.\r\n", " \r\n"},
		{"dot bare CR", ".\rx\r\n.\r\n", "\rx\r\n"},
		{"dot bare LF", ".\n.\r\n.\r\n", "\n.\r\n"},
		{"dot inside a line", "a.b\r\na.\r\n.\r\n", "a.b\r\na.\r\n"},
		{"dot after bare LF", "a\n.\r\n.\r\n", "a\n.\r\n"},
		{"dot after bare CR", "a\r.\r\n.\r\n", "a\r.\r\n"},
		{"bare LF at start", "\n.\r\n.\r\n", "\n.\r\n"},
		{"CR CR LF", "a\r\r\n..\r\n.\r\n", "a\r\r\n.\r\n"},
		{"NUL kept", "a\x00b\r\n.\r\n", "a\x00b\r\n"},
		{"dots everywhere", "..\r\n..\r\n.a.\r\n...\r\n.\r\n", ".\r\n.\r\na.\r\n..\r\n"},
		{"998-octet lines", line998 + "\r\n." + line998 + "\r\n.\r\n", line998 + "\r\n" + line998 + "\r\n"},
		{"1 MiB lines", lineMiB + "\r\n.." + lineMiB + "\r\n.\r\n", lineMiB + "\r\n." + lineMiB + "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ref, used, err := refDecode([]byte(tt.input)); err != io.EOF || string(ref) != tt.want || used != len(tt.input) {
				t.Fatalf("reference decoder disagrees: (%q, %d, %v)", ref, used, err)
			}
			// Huge inputs are fed one byte at a time by the source
			// modes; reading them one byte at a time as well, in every
			// mode, only makes -race slow.
			huge := len(tt.input) > 64<<10
			forEachMode(t, func(t *testing.T, m readMode) {
				for _, br := range bodyReads {
					if huge && m.name != "whole" && br.name == "OneByte" {
						continue
					}
					t.Run(br.name, func(t *testing.T) {
						r := newTestReader(m, tt.input+"+OK next\r\n", 0)
						got, err := br.read(r.DotReader())
						if err != nil || string(got) != tt.want {
							t.Fatalf("got (%.80q, %v), want %.80q", got, err, tt.want)
						}
						line, err := r.ReadLine()
						if err != nil || string(line) != "+OK next" {
							t.Fatalf("after body: got (%q, %v)", line, err)
						}
					})
				}
				if huge && m.name != "whole" {
					return
				}
				t.Run("iotest.TestReader", func(t *testing.T) {
					r := newTestReader(m, tt.input, 0)
					if err := iotest.TestReader(r.DotReader(), []byte(tt.want)); err != nil {
						t.Fatal(err)
					}
				})
			})
		})
	}
}

func TestDotReaderTruncated(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string // what is returned before the error
	}{
		{"nothing", "", ""},
		{"mid-line", "a\r\nb", "a\r\nb"},
		{"after CRLF", "a\r\n", "a\r\n"},
		{"after CR", "a\r", "a\r"},
		{"dot only", "a\r\n.", "a\r\n"},
		{"dot CR", "a\r\n.\r", "a\r\n"},
		{"dot LF at start", ".\n", ""},
		{"dot LF x at start", ".\nx", "\nx"},
		{"stuffed line without end", "a\r\n..\r\n", "a\r\n.\r\n"},
		{"terminator not at line start", "a.\r\n", "a.\r\n"},
		{"terminator after bare LF", "a\n.\r\n", "a\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ref, _, err := refDecode([]byte(tt.input)); err != io.ErrUnexpectedEOF || string(ref) != tt.want {
				t.Fatalf("reference decoder disagrees: (%q, %v)", ref, err)
			}
			forEachMode(t, func(t *testing.T, m readMode) {
				for _, br := range bodyReads {
					t.Run(br.name, func(t *testing.T) {
						r := newTestReader(m, tt.input, 0)
						got, err := br.read(r.DotReader())
						if err != io.ErrUnexpectedEOF || string(got) != tt.want {
							t.Fatalf("got (%q, %v), want (%q, io.ErrUnexpectedEOF)", got, err, tt.want)
						}
					})
				}
			})
		})
	}
}

func TestDotReaderStickyError(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("abc")), 0)
	d := r.DotReader()
	var buf [8]byte
	for i := 0; i < 3; i++ {
		n, err := d.Read(buf[:])
		if err == nil {
			continue // the first read may return data alone
		}
		if err != io.ErrUnexpectedEOF {
			t.Fatalf("read %d: got (%d, %v)", i, n, err)
		}
	}
	if n, err := d.Read(buf[:]); n != 0 || err != io.ErrUnexpectedEOF {
		t.Fatalf("after error: got (%d, %v)", n, err)
	}
}

// TestDotReaderNoBlock checks that Read returns the bytes it has rather
// than wait for more: a proxy must forward a slow body as it comes.
func TestDotReaderNoBlock(t *testing.T) {
	pr, pw := io.Pipe()
	t.Cleanup(func() { pr.Close() })
	go func() {
		pw.Write([]byte("line one\r\n"))
		pw.Write([]byte("line two\r\n.\r\n"))
		pw.Close()
	}()
	d := NewReader(bufio.NewReader(pr), 0).DotReader()
	buf := make([]byte, 100)
	n, err := d.Read(buf)
	if err != nil || string(buf[:n]) != "line one\r\n" {
		t.Fatalf("first read: got (%q, %v)", buf[:n], err)
	}
	rest, err := io.ReadAll(d)
	if err != nil || string(rest) != "line two\r\n" {
		t.Fatalf("rest: got (%q, %v)", rest, err)
	}
}

// TestDotReaderConstantMemory decodes a 64 MiB body made of one line and
// checks that memory use does not grow with it.
func TestDotReaderConstantMemory(t *testing.T) {
	const size = 64 << 20
	src := io.MultiReader(&repeatReader{b: 'q', n: size}, strings.NewReader("\r\n.\r\n"))
	d := NewReader(bufio.NewReader(src), 0).DotReader()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	n, err := io.Copy(io.Discard, d)
	runtime.ReadMemStats(&after)
	if err != nil || n != size+2 {
		t.Fatalf("got (%d, %v), want %d bytes", n, err, size+2)
	}
	if a := after.TotalAlloc - before.TotalAlloc; a > 64<<10 {
		t.Errorf("decoding %d bytes allocated %d bytes", size, a)
	}
}

func TestDotReaderAllocs(t *testing.T) {
	body := strings.Repeat("Some text of a typical mail line, seventy-six octets long, give or take.\r\n..dot\r\n", 2000) + ".\r\n"
	sr := strings.NewReader(body)
	br := bufio.NewReader(sr)
	r := NewReader(br, 0)
	buf := make([]byte, 32<<10)
	allocs := testing.AllocsPerRun(20, func() {
		sr.Reset(body)
		br.Reset(sr)
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{r.DotReader()}, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 2 {
		t.Errorf("%v allocations per body of 4000 lines, want at most 2", allocs)
	}
}

// TestStuffedRoundTrip: StuffedReader hands out the wire form without the
// terminator, and StuffedWriter writes it back to the same wire bytes.
func TestStuffedRoundTrip(t *testing.T) {
	bodies := []string{
		"",
		"a\r\n",
		".\r\n",
		"..\r\n",
		".x\r\n...y\r\nz\r\n",
		"no final newline",
		"line\r\n.\r\nafter dot line\r\n.",
		strings.Repeat(".dot\r\nplain line\r\n", 5000),
	}
	for i, body := range bodies {
		var wire bytes.Buffer
		bw := bufio.NewWriter(&wire)
		w := NewWriter(bw)
		dw := w.DotWriter()
		io.WriteString(dw, body)
		dw.Close()
		bw.Flush()
		encoded := wire.String()
		for _, oneByte := range []bool{false, true} {
			var src io.Reader = strings.NewReader(encoded + "+OK next\r\n")
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			r := NewReader(bufio.NewReaderSize(src, 16), DefaultMaxResponseLine)
			got, err := io.ReadAll(r.StuffedReader())
			if err != nil {
				t.Fatalf("body %d: %v", i, err)
			}
			if want := strings.TrimSuffix(encoded, ".\r\n"); string(got) != want {
				t.Fatalf("body %d: stuffed read %q, want %q", i, got, want)
			}
			if resp, err := r.ReadResponse(); err != nil || resp.Text != "next" {
				t.Fatalf("body %d: after the body: %v %v", i, resp, err)
			}
			var out bytes.Buffer
			obw := bufio.NewWriter(&out)
			sw := NewWriter(obw).StuffedWriter()
			sw.Write(got)
			if err := sw.Close(); err != nil {
				t.Fatal(err)
			}
			obw.Flush()
			if out.String() != encoded {
				t.Fatalf("body %d: stuffed write %q, want %q", i, out.String(), encoded)
			}
		}
	}
	// Cut short: never a clean end.
	r := NewReader(bufio.NewReader(strings.NewReader("..a\r\nb\r\n")), 0)
	if _, err := io.ReadAll(r.StuffedReader()); err != io.ErrUnexpectedEOF {
		t.Fatalf("truncated stuffed body: %v, want io.ErrUnexpectedEOF", err)
	}
}
