package parser

import (
	"bufio"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// result is one expected outcome of ReadLine: a line, or an error.
type result struct {
	line string
	err  error
}

func ok(line string) result { return result{line: line} }
func fail(err error) result { return result{err: err} }

func TestReadLine(t *testing.T) {
	long := strings.Repeat("x", 300)
	tests := []struct {
		name  string
		input string
		max   int
		want  []result
	}{
		{"empty stream", "", 0, []result{fail(io.EOF)}},
		{"one line", "NOOP\r\n", 0, []result{ok("NOOP"), fail(io.EOF)}},
		{"two lines", "USER a\r\nPASS b c\r\n", 0, []result{ok("USER a"), ok("PASS b c"), fail(io.EOF)}},
		{"empty line", "\r\nNOOP\r\n", 0, []result{ok(""), ok("NOOP"), fail(io.EOF)}},
		{"smuggled bare LF", "USER a\nPASS b\r\nNOOP\r\n", 0,
			[]result{fail(ErrBadLine), ok("NOOP"), fail(io.EOF)}},
		{"smuggled bare CR", "USER a\rPASS b\r\nNOOP\r\n", 0,
			[]result{fail(ErrBadLine), ok("NOOP"), fail(io.EOF)}},
		{"NUL", "US\x00ER a\r\nNOOP\r\n", 0, []result{fail(ErrBadLine), ok("NOOP"), fail(io.EOF)}},
		{"CR CR LF", "NOOP\r\r\nSTAT\r\n", 0, []result{fail(ErrBadLine), ok("STAT"), fail(io.EOF)}},
		{"LF alone then CRLF", "\n\r\nSTAT\r\n", 0, []result{fail(ErrBadLine), ok("STAT"), fail(io.EOF)}},
		{"many bare LFs", "\n\n\n\nQUIT\r\nSTAT\r\n", 0, []result{fail(ErrBadLine), ok("STAT"), fail(io.EOF)}},
		{"LF CR", "a\n\rb\r\nSTAT\r\n", 0, []result{fail(ErrBadLine), ok("STAT"), fail(io.EOF)}},
		{"bad lines in a row", "a\nb\r\nc\rd\r\ne\x00\r\nok\r\n", 0,
			[]result{fail(ErrBadLine), fail(ErrBadLine), fail(ErrBadLine), ok("ok"), fail(io.EOF)}},
		{"no CRLF at end", "NOOP", 0, []result{fail(io.ErrUnexpectedEOF)}},
		{"CR at end", "NOOP\r", 0, []result{fail(io.ErrUnexpectedEOF)}},
		{"LF at end", "NOOP\n", 0, []result{fail(io.ErrUnexpectedEOF)}},
		{"line then partial", "NOOP\r\nST", 0, []result{ok("NOOP"), fail(io.ErrUnexpectedEOF)}},
		{"exactly max", "12345678\r\nNOOP\r\n", 10, []result{ok("12345678"), ok("NOOP"), fail(io.EOF)}},
		{"one over max", "123456789\r\nNOOP\r\n", 10, []result{fail(ErrLineTooLong), ok("NOOP"), fail(io.EOF)}},
		{"over max, CRLF split at bound", "123456789\r\nNOOP\r\n", 11, []result{ok("123456789"), ok("NOOP"), fail(io.EOF)}},
		{"default max 255", strings.Repeat("a", 253) + "\r\n" + strings.Repeat("a", 254) + "\r\nNOOP\r\n", 0,
			[]result{ok(strings.Repeat("a", 253)), fail(ErrLineTooLong), ok("NOOP"), fail(io.EOF)}},
		{"too long wins over bad", long + "\n" + long + "\r\nNOOP\r\n", 0,
			[]result{fail(ErrLineTooLong), ok("NOOP"), fail(io.EOF)}},
		{"too long then EOF", long, 0, []result{fail(io.ErrUnexpectedEOF)}},
		{"response line", "+OK " + long + "\r\n", DefaultMaxResponseLine,
			[]result{ok("+OK " + long), fail(io.EOF)}},
		{"high bytes", "USER \xc3\xa9\xff\r\n", 0, []result{ok("USER \xc3\xa9\xff"), fail(io.EOF)}},
		{"tab kept", "a\tb\r\n", 0, []result{ok("a\tb"), fail(io.EOF)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			forEachMode(t, func(t *testing.T, m readMode) {
				r := newTestReader(m, tt.input, tt.max)
				for i, w := range tt.want {
					line, err := r.ReadLine()
					if w.err != nil {
						if !errors.Is(err, w.err) {
							t.Fatalf("read %d: got (%q, %v), want error %v", i, line, err, w.err)
						}
						continue
					}
					if err != nil || string(line) != w.line {
						t.Fatalf("read %d: got (%q, %v), want %q", i, line, err, w.line)
					}
				}
			})
		})
	}
}

// TestReadLineHugeWithoutCRLF feeds 10 MiB with no CRLF and checks that it
// is consumed in bounded memory and that the next command is still read.
func TestReadLineHugeWithoutCRLF(t *testing.T) {
	const size = 10 << 20
	for _, tc := range []struct {
		name string
		fill byte
	}{{"letters", 'a'}, {"bare LFs", '\n'}, {"bare CRs", '\r'}} {
		fill := tc.fill
		t.Run(tc.name, func(t *testing.T) {
			rep := &repeatReader{b: fill, n: size}
			src := io.MultiReader(rep, strings.NewReader("\r\nNOOP\r\n"))
			r := NewReader(bufio.NewReader(src), 0)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := r.ReadLine()
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrLineTooLong) {
				t.Fatalf("got %v, want ErrLineTooLong", err)
			}
			if rep.n != 0 {
				t.Fatalf("%d bytes of the long line left unread", rep.n)
			}
			if d := after.TotalAlloc - before.TotalAlloc; d > 64<<10 {
				t.Errorf("discarding %d bytes allocated %d bytes", size, d)
			}
			c, err := r.ReadCommand()
			if err != nil || c.Verb != "NOOP" {
				t.Fatalf("after the long line: got (%v, %v), want NOOP", c, err)
			}
		})
	}
}

func TestReadLineTruncatedHuge(t *testing.T) {
	r := NewReader(bufio.NewReader(&repeatReader{b: 'a', n: 1 << 20}), 0)
	if _, err := r.ReadLine(); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestReadLineAllocs(t *testing.T) {
	for _, size := range []int{4096, 16} {
		input := strings.Repeat("USER some-long-user-name@example.org\r\n", 100)
		sr := strings.NewReader(input)
		br := bufio.NewReaderSize(sr, size)
		r := NewReader(br, 0)
		r.ReadLine() // warm up the line buffer
		allocs := testing.AllocsPerRun(50, func() {
			if _, err := r.ReadLine(); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("bufio size %d: %v allocations per ReadLine, want 0", size, allocs)
		}
	}
}

func TestReadLineUnderlyingError(t *testing.T) {
	boom := errors.New("boom")
	r := NewReader(bufio.NewReader(io.MultiReader(strings.NewReader("NO"), errReader{boom})), 0)
	if _, err := r.ReadLine(); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadCommand(t *testing.T) {
	input := "user alice\r\nPASS  secret with spaces \r\nUSER a\nPASS b\r\nLIST  1\r\nNOOP\r\n"
	forEachMode(t, func(t *testing.T, m readMode) {
		r := newTestReader(m, input, 0)
		c, err := r.ReadCommand()
		if err != nil || c.String() != "USER alice" {
			t.Fatalf("got (%v, %v)", c, err)
		}
		c, err = r.ReadCommand()
		if err != nil || c.Verb != "PASS" || len(c.Args) != 1 || c.Args[0] != " secret with spaces " {
			t.Fatalf("got (%#v, %v)", c, err)
		}
		if _, err = r.ReadCommand(); !errors.Is(err, ErrBadLine) {
			t.Fatalf("smuggled line: got %v, want ErrBadLine", err)
		}
		if _, err = r.ReadCommand(); !errors.Is(err, ErrBadCommand) {
			t.Fatalf("double space: got %v, want ErrBadCommand", err)
		}
		if c, err = r.ReadCommand(); err != nil || c.Verb != "NOOP" {
			t.Fatalf("got (%v, %v), want NOOP", c, err)
		}
		if _, err = r.ReadCommand(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	})
}

func TestReadResponse(t *testing.T) {
	input := "+OK [XCLIENT] ready\r\n-ERR [SYS/TEMP] later\r\n+ PDEyMz4=\r\n+\r\nOK\r\n"
	forEachMode(t, func(t *testing.T, m readMode) {
		r := newTestReader(m, input, DefaultMaxResponseLine)
		want := []Response{
			{Status: StatusOK, Code: "XCLIENT", Text: "ready"},
			{Status: StatusErr, Code: CodeSysTemp, Text: "later"},
			{Status: StatusContinue, Text: "PDEyMz4="},
			{Status: StatusContinue},
		}
		for i, w := range want {
			got, err := r.ReadResponse()
			if err != nil || got != w {
				t.Fatalf("response %d: got (%#v, %v), want %#v", i, got, err, w)
			}
		}
		if _, err := r.ReadResponse(); !errors.Is(err, ErrBadResponse) {
			t.Fatalf("got %v, want ErrBadResponse", err)
		}
		if _, err := r.ReadResponse(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	})
}

// TestAutoDrain checks that a body left unread, or read in part, is drained
// before the next line, and that a new DotReader drains the previous one.
func TestAutoDrain(t *testing.T) {
	input := "+OK 2 octets\r\n..a\r\nb\r\n.\r\n+OK second\r\nx\r\n.\r\n+OK third\r\nline\r\n.\r\n+OK last\r\n"
	forEachMode(t, func(t *testing.T, m readMode) {
		r := newTestReader(m, input, DefaultMaxResponseLine)
		if _, err := r.ReadResponse(); err != nil {
			t.Fatal(err)
		}
		r.DotReader() // left unread
		resp, err := r.ReadResponse()
		if err != nil || resp.Text != "second" {
			t.Fatalf("after unread body: got (%v, %v)", resp, err)
		}
		d := r.DotReader()
		var one [1]byte
		if n, err := d.Read(one[:]); n != 1 || err != nil || one[0] != 'x' {
			t.Fatalf("partial read: got (%d, %v, %q)", n, err, one[:n])
		}
		resp, err = r.ReadResponse()
		if err != nil || resp.Text != "third" {
			t.Fatalf("after partly read body: got (%v, %v)", resp, err)
		}
		if n, err := d.Read(one[:]); n != 0 || err != io.EOF {
			t.Fatalf("drained body: got (%d, %v), want io.EOF", n, err)
		}
		body, err := io.ReadAll(r.DotReader())
		if err != nil || string(body) != "line\r\n" {
			t.Fatalf("third body: got (%q, %v)", body, err)
		}
		resp, err = r.ReadResponse()
		if err != nil || resp.Text != "last" {
			t.Fatalf("after read body: got (%v, %v)", resp, err)
		}
	})
}

func TestAutoDrainOrder(t *testing.T) {
	// A DotReader obtained after another one, while the first is unread,
	// starts after the first body.
	input := "a\r\n.\r\nb\r\n.\r\n"
	forEachMode(t, func(t *testing.T, m readMode) {
		r := newTestReader(m, input, 0)
		r.DotReader()
		body, err := io.ReadAll(r.DotReader())
		if err != nil || string(body) != "b\r\n" {
			t.Fatalf("got (%q, %v), want b CRLF", body, err)
		}
		if _, err := r.ReadLine(); err != io.EOF {
			t.Fatalf("got %v, want io.EOF", err)
		}
	})
}

func TestAutoDrainFailure(t *testing.T) {
	forEachMode(t, func(t *testing.T, m readMode) {
		r := newTestReader(m, "+OK\r\nbody without end\r\n", 0)
		if _, err := r.ReadResponse(); err != nil {
			t.Fatal(err)
		}
		r.DotReader()
		for i := 0; i < 2; i++ {
			if _, err := r.ReadLine(); err != io.ErrUnexpectedEOF {
				t.Fatalf("read %d: got %v, want io.ErrUnexpectedEOF", i, err)
			}
		}
	})
}

func TestBufferedAndDiscard(t *testing.T) {
	// STLS injection: the client pipelines a command behind STLS; it
	// must be dropped, not read after the handshake.
	r := NewReader(bufio.NewReader(strings.NewReader("STLS\r\nUSER evil\r\n")), 0)
	c, err := r.ReadCommand()
	if err != nil || c.Verb != "STLS" {
		t.Fatalf("got (%v, %v)", c, err)
	}
	if n := r.Buffered(); n != len("USER evil\r\n") {
		t.Fatalf("Buffered = %d", n)
	}
	if n := r.Discard(); n != len("USER evil\r\n") {
		t.Fatalf("Discard = %d", n)
	}
	if r.Buffered() != 0 {
		t.Fatalf("Buffered after Discard = %d", r.Buffered())
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestDiscardAbandonsBody(t *testing.T) {
	r := NewReader(bufio.NewReader(strings.NewReader("abc\r\ndef\r\n.\r\n")), 0)
	d := r.DotReader()
	var one [1]byte
	if _, err := d.Read(one[:]); err != nil {
		t.Fatal(err)
	}
	r.Discard()
	if _, err := d.Read(one[:]); err != io.ErrUnexpectedEOF {
		t.Fatalf("got %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := r.ReadLine(); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

func TestZeroReader(t *testing.T) {
	r := Reader{R: bufio.NewReader(strings.NewReader("NOOP\r\n"))}
	line, err := r.ReadLine()
	if err != nil || string(line) != "NOOP" {
		t.Fatalf("got (%q, %v)", line, err)
	}
}
