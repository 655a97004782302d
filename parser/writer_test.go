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

func newTestWriter() (*Writer, *bytes.Buffer) {
	var out bytes.Buffer
	return NewWriter(bufio.NewWriter(&out)), &out
}

func TestWriteLine(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  error
	}{
		{"+OK hello", "+OK hello\r\n", nil},
		{"", "\r\n", nil},
		{"a\tb", "a\tb\r\n", nil},
		{"a\rb", "", ErrBadLine},
		{"a\nb", "", ErrBadLine},
		{"a\x00b", "", ErrBadLine},
		{"a\r\n", "", ErrBadLine},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			w, out := newTestWriter()
			err := w.WriteLine(tt.in)
			if !errors.Is(err, tt.err) || err != nil && tt.err == nil {
				t.Fatalf("got %v, want %v", err, tt.err)
			}
			if out.Len() != 0 {
				t.Fatal("WriteLine flushed")
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Fatalf("wrote %q, want %q", out, tt.want)
			}
		})
	}
}

func TestWriteCommand(t *testing.T) {
	tests := []struct {
		name string
		cmd  Command
		err  error
	}{
		{"plain", NewCommand("user", "alice"), nil},
		{"no args", NewCommand("STAT"), nil},
		{"two args", NewCommand("TOP", "1", "10"), nil},
		{"pass with spaces", NewCommand("PASS", " my secret "), nil},
		{"lower-case pass with spaces", Command{Verb: "pass", Args: []string{"a b"}}, nil},
		{"keyword with dash", NewCommand("X-FOO", "a=b"), nil},
		{"high bytes", NewCommand("USER", "\xc3\xa9"), nil},
		{"empty verb", Command{}, ErrBadCommand},
		{"verb too long", NewCommand(strings.Repeat("A", MaxVerbLength+1)), ErrBadCommand},
		{"verb with space", NewCommand("US ER"), ErrBadCommand},
		{"verb with CR", NewCommand("USER\r"), ErrBadLine},
		{"space in arg", NewCommand("USER", "a b"), ErrBadCommand},
		{"empty arg", NewCommand("LIST", ""), ErrBadCommand},
		{"LF in arg", NewCommand("USER", "a\nPASS b"), ErrBadLine},
		{"CRLF in pass", NewCommand("PASS", "a\r\nDELE 1"), ErrBadLine},
		{"NUL in arg", NewCommand("USER", "a\x00"), ErrBadLine},
		{"tab in arg", NewCommand("USER", "a\tb"), ErrBadCommand},
		{"DEL in arg", NewCommand("USER", "a\x7f"), ErrBadCommand},
		{"pass with two args", NewCommand("PASS", "a", "b"), ErrBadCommand},
		{"empty pass", NewCommand("PASS", ""), ErrBadCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, out := newTestWriter()
			err := w.WriteCommand(tt.cmd)
			w.Flush()
			if tt.err != nil {
				if !errors.Is(err, tt.err) || out.Len() != 0 {
					t.Fatalf("got %v and %q, want %v and nothing written", err, out, tt.err)
				}
				return
			}
			if err != nil || out.String() != tt.cmd.String()+"\r\n" {
				t.Fatalf("got (%q, %v), want %q", out, err, tt.cmd.String()+"\r\n")
			}
			back, err := ParseCommand(bytes.TrimSuffix(out.Bytes(), []byte("\r\n")))
			want := NewCommand(tt.cmd.Verb, tt.cmd.Args...)
			if err != nil || !reflect.DeepEqual(back, want) {
				t.Fatalf("parses back as (%#v, %v), want %#v", back, err, want)
			}
		})
	}
}

func TestWriteResponse(t *testing.T) {
	tests := []struct {
		name string
		resp Response
		want string
		err  error
	}{
		{"ok", OK("hello"), "+OK hello\r\n", nil},
		{"ok bare", OK(""), "+OK\r\n", nil},
		{"err with code", Err(CodeInUse, "locked"), "-ERR [IN-USE] locked\r\n", nil},
		{"err code only", Err(CodeAuth, ""), "-ERR [AUTH]\r\n", nil},
		{"continuation", Continue("PDEyMz4="), "+ PDEyMz4=\r\n", nil},
		{"empty continuation", Continue(""), "+ \r\n", nil},
		{"zero status", Response{Text: "x"}, "", ErrBadResponse},
		{"unknown status", Response{Status: 9}, "", ErrBadResponse},
		{"continuation with code", Response{Status: StatusContinue, Code: "X"}, "", ErrBadResponse},
		{"bracket in code", Err("A]B", "x"), "", ErrBadResponse},
		{"CR in text", OK("a\rb"), "", ErrBadLine},
		{"LF in code", Err("A\nB", "x"), "", ErrBadLine},
		{"NUL in continuation", Continue("\x00"), "", ErrBadLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, out := newTestWriter()
			err := w.WriteResponse(tt.resp)
			w.Flush()
			if tt.err != nil {
				if !errors.Is(err, tt.err) || out.Len() != 0 {
					t.Fatalf("got %v and %q, want %v and nothing written", err, out, tt.err)
				}
				return
			}
			if err != nil || out.String() != tt.want || tt.resp.String()+"\r\n" != tt.want {
				t.Fatalf("got (%q, %v), want %q", out, err, tt.want)
			}
			back, err := ParseResponse(bytes.TrimSuffix(out.Bytes(), []byte("\r\n")))
			if err != nil || back != tt.resp {
				t.Fatalf("parses back as (%#v, %v)", back, err)
			}
		})
	}
}

func TestDotWriter(t *testing.T) {
	line998 := strings.Repeat("y", 998)
	lineMiB := strings.Repeat("z", 1<<20)
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"empty body", nil, ".\r\n"},
		{"empty writes", []string{"", ""}, ".\r\n"},
		{"one line", []string{"a\r\n"}, "a\r\n.\r\n"},
		{"no final CRLF", []string{"a"}, "a\r\n.\r\n"},
		{"final bare CR", []string{"a\r"}, "a\r\r\n.\r\n"},
		{"final bare LF", []string{"a\n"}, "a\n\r\n.\r\n"},
		{"dot line", []string{".\r\n"}, "..\r\n.\r\n"},
		{"body ending with a dot line", []string{"a\r\n.\r\n"}, "a\r\n..\r\n.\r\n"},
		{"dot line without CRLF", []string{"a\r\n."}, "a\r\n..\r\n.\r\n"},
		{"three dots", []string{"...\r\n"}, "....\r\n.\r\n"},
		{"dot inside a line", []string{"a.b\r\nc.\r\n"}, "a.b\r\nc.\r\n.\r\n"},
		{"dot after bare LF", []string{"a\n.b\r\n"}, "a\n.b\r\n.\r\n"},
		{"dot after bare CR", []string{"a\r.b\r\n"}, "a\r.b\r\n.\r\n"},
		{"CRLF split across writes", []string{"a\r", "\n.b\r\n"}, "a\r\n..b\r\n.\r\n"},
		{"dot first in next write", []string{"a\r\n", ".b\r\n"}, "a\r\n..b\r\n.\r\n"},
		{"byte by byte", []string{"a", "\r", "\n", ".", "b", "\r", "\n"}, "a\r\n..b\r\n.\r\n"},
		{"CR then non-LF across writes", []string{"a\r", ".b\r\n"}, "a\r.b\r\n.\r\n"},
		{"998-octet lines", []string{line998 + "\r\n." + line998 + "\r\n"}, line998 + "\r\n.." + line998 + "\r\n.\r\n"},
		{"1 MiB lines", []string{lineMiB + "\r\n.", lineMiB}, lineMiB + "\r\n.." + lineMiB + "\r\n.\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			whole := strings.Join(tt.writes, "")
			split := map[string][]string{"as given": tt.writes, "one write": {whole}}
			if len(whole) < 1000 {
				var bytewise []string
				for i := range len(whole) {
					bytewise = append(bytewise, whole[i:i+1])
				}
				split["one byte per write"] = bytewise
			}
			for name, writes := range split {
				t.Run(name, func(t *testing.T) {
					w, out := newTestWriter()
					d := w.DotWriter()
					for _, s := range writes {
						if n, err := d.Write([]byte(s)); n != len(s) || err != nil {
							t.Fatalf("Write = (%d, %v)", n, err)
						}
					}
					if err := d.Close(); err != nil {
						t.Fatal(err)
					}
					if out.Len() != 0 && out.Len() < len(tt.want) && len(tt.want) < 4096 {
						t.Fatal("DotWriter flushed")
					}
					w.Flush()
					if out.String() != tt.want {
						t.Fatalf("wrote %.80q, want %.80q", out, tt.want)
					}
					// Round trip: what was written reads back as the
					// body, plus the CRLF Close may add.
					want := whole
					if want != "" && !strings.HasSuffix(want, "\r\n") {
						want += "\r\n"
					}
					got, err := io.ReadAll(NewReader(bufio.NewReader(out), 0).DotReader())
					if err != nil || string(got) != want {
						t.Fatalf("reads back as (%.80q, %v), want %.80q", got, err, want)
					}
				})
			}
		})
	}
}

// TestDotDecodeEncode checks that valid stuffed input decodes and encodes
// back byte-exact.
func TestDotDecodeEncode(t *testing.T) {
	for _, in := range []string{
		".\r\n",
		"a\r\n.\r\n",
		"..\r\n..a\r\n...\r\n.\r\n",
		"a\rb\nc\r\r\n\n.\r\n..\r\n.\r\n",
		"x.\r\n\r\n\r\n.\r\n",
	} {
		t.Run(in, func(t *testing.T) {
			body, err := io.ReadAll(NewReader(bufio.NewReader(strings.NewReader(in)), 0).DotReader())
			if err != nil {
				t.Fatal(err)
			}
			w, out := newTestWriter()
			d := w.DotWriter()
			d.Write(body)
			d.Close()
			w.Flush()
			if out.String() != in {
				t.Fatalf("decode then encode gives %q, want %q", out, in)
			}
		})
	}
}

func TestDotWriterOpenBody(t *testing.T) {
	w, out := newTestWriter()
	d := w.DotWriter()
	d.Write([]byte("partial"))
	if err := w.WriteLine("+OK"); err != ErrBodyOpen {
		t.Fatalf("WriteLine: got %v, want ErrBodyOpen", err)
	}
	if err := w.WriteResponse(OK("")); err != ErrBodyOpen {
		t.Fatalf("WriteResponse: got %v, want ErrBodyOpen", err)
	}
	if err := w.WriteCommand(NewCommand("NOOP")); err != ErrBodyOpen {
		t.Fatalf("WriteCommand: got %v, want ErrBodyOpen", err)
	}
	d2 := w.DotWriter()
	if _, err := d2.Write([]byte("x")); err != ErrBodyOpen {
		t.Fatalf("second body Write: got %v, want ErrBodyOpen", err)
	}
	if err := d2.Close(); err != ErrBodyOpen {
		t.Fatalf("second body Close: got %v, want ErrBodyOpen", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := d.Write([]byte("x")); err == nil {
		t.Fatal("Write after Close succeeded")
	}
	if err := w.WriteLine("+OK"); err != nil {
		t.Fatal(err)
	}
	w.Flush()
	if out.String() != "partial\r\n.\r\n+OK\r\n" {
		t.Fatalf("wrote %q", out)
	}
}

// TestDotWriterFailedBody checks that a body whose write failed is never
// terminated: nothing that looks like a complete body reaches the wire.
func TestDotWriterFailedBody(t *testing.T) {
	boom := errors.New("boom")
	fw := &failWriter{ok: 20, err: boom}
	w := NewWriter(bufio.NewWriterSize(fw, 16))
	d := w.DotWriter()
	if _, err := d.Write([]byte(strings.Repeat("line\r\n", 10))); !errors.Is(err, boom) {
		t.Fatalf("Write: got %v, want %v", err, boom)
	}
	if err := d.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: got %v, want %v", err, boom)
	}
	if err := w.WriteLine("-ERR"); err != ErrBodyOpen {
		t.Fatalf("WriteLine after failed body: got %v, want ErrBodyOpen", err)
	}
}

func TestWriterBufferedNoFlush(t *testing.T) {
	w, out := newTestWriter()
	w.WriteLine("+OK")
	d := w.DotWriter()
	d.Write([]byte("a\r\n"))
	d.Close()
	if out.Len() != 0 {
		t.Fatalf("%d bytes reached the stream without Flush", out.Len())
	}
	if w.Buffered() != len("+OK\r\na\r\n.\r\n") {
		t.Fatalf("Buffered = %d", w.Buffered())
	}
	w.Flush()
	if w.Buffered() != 0 || out.String() != "+OK\r\na\r\n.\r\n" {
		t.Fatalf("after Flush: Buffered %d, wrote %q", w.Buffered(), out)
	}
}

func TestWriterAllocs(t *testing.T) {
	w := NewWriter(bufio.NewWriter(io.Discard))
	c := NewCommand("RETR", "1")
	r := Err(CodeSysTemp, "try later")
	allocs := testing.AllocsPerRun(100, func() {
		w.WriteCommand(c)
		w.WriteResponse(r)
		w.WriteLine("+OK")
	})
	if allocs != 0 {
		t.Errorf("%v allocations per write, want 0", allocs)
	}
}
