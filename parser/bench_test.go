package parser

import (
	"bufio"
	"bytes"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
)

// benchMessage returns a realistic message of about size bytes: headers,
// then 76-octet lines of text and base64 with an empty line now and then
// and a line starting with "." every 50 lines, all CRLF-terminated.
func benchMessage(size int) []byte {
	rng := rand.New(rand.NewPCG(1, 2))
	const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	words := strings.Fields("the of and to a in is it you that he was for on are with as his they be at one have this from or had by word but what some we can out other were all there when up use your how said an each she which do their time if will way about many then them")
	var b bytes.Buffer
	b.WriteString("Return-Path: <alice@example.org>\r\nFrom: Alice <alice@example.org>\r\nTo: bob@example.net\r\n" +
		"Subject: benchmark\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	line := make([]byte, 0, 80)
	for n := 0; b.Len() < size; n++ {
		line = line[:0]
		switch {
		case n%50 == 49:
			line = append(line, ".. and a line that starts with a dot"...)
		case n%20 == 19:
			// empty line
		case n%200 < 100:
			for len(line) < 76 {
				line = append(line, b64[rng.IntN(len(b64))])
			}
		default:
			for len(line) < 70 {
				line = append(line, words[rng.IntN(len(words))]...)
				line = append(line, ' ')
			}
			line = line[:76]
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// stuffed returns body as it goes on the wire, terminator included.
func stuffed(body []byte) []byte {
	var wire bytes.Buffer
	w := NewWriter(bufio.NewWriter(&wire))
	d := w.DotWriter()
	d.Write(body)
	d.Close()
	w.Flush()
	return wire.Bytes()
}

func BenchmarkDotReader10MiB(b *testing.B) {
	body := benchMessage(10 << 20)
	wire := stuffed(body)
	for _, bc := range []struct {
		name    string
		bufSize int
		writeTo bool
	}{
		{"Read/4KiB", 4096, false},
		{"WriteTo/4KiB", 4096, true},
		{"Read/64KiB", 64 << 10, false},
		{"WriteTo/64KiB", 64 << 10, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := bytes.NewReader(wire)
			br := bufio.NewReaderSize(src, bc.bufSize)
			r := NewReader(br, 0)
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				src.Reset(wire)
				br.Reset(src)
				var n int64
				var err error
				if bc.writeTo {
					n, err = io.Copy(io.Discard, r.DotReader())
				} else {
					n, err = io.CopyBuffer(io.Discard, struct{ io.Reader }{r.DotReader()}, buf)
				}
				if err != nil || n != int64(len(body)) {
					b.Fatalf("got (%d, %v), want %d bytes", n, err, len(body))
				}
			}
		})
	}
}

func BenchmarkDotWriter10MiB(b *testing.B) {
	body := benchMessage(10 << 20)
	wireLen := len(stuffed(body))
	for _, bc := range []struct {
		name  string
		chunk int
	}{
		{"OneWrite", len(body)},
		{"Writes4KiB", 4096},
		{"Writes32KiB", 32 << 10},
	} {
		b.Run(bc.name, func(b *testing.B) {
			cw := &countWriter{}
			bw := bufio.NewWriter(cw)
			w := NewWriter(bw)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				cw.n = 0
				d := w.DotWriter()
				for p := body; len(p) > 0; {
					n := min(bc.chunk, len(p))
					if _, err := d.Write(p[:n]); err != nil {
						b.Fatal(err)
					}
					p = p[n:]
				}
				if err := d.Close(); err != nil {
					b.Fatal(err)
				}
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
				if cw.n != wireLen {
					b.Fatalf("wrote %d bytes, want %d", cw.n, wireLen)
				}
			}
		})
	}
}

// countWriter counts and drops what is written.
type countWriter struct{ n int }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

func BenchmarkReadCommand(b *testing.B) {
	cmds := "USER alice@example.org\r\nPASS correct horse battery staple\r\nSTAT\r\nLIST\r\n" +
		"UIDL 1\r\nRETR 1\r\nTOP 2 10\r\nDELE 1\r\nNOOP\r\nQUIT\r\n"
	input := strings.Repeat(cmds, 100)
	src := strings.NewReader(input)
	br := bufio.NewReader(src)
	r := NewReader(br, 0)
	b.SetBytes(int64(len(cmds)) / 10)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadCommand(); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			src.Reset(input)
			br.Reset(src)
		}
	}
}

func BenchmarkReadLine(b *testing.B) {
	input := strings.Repeat("RETR 1\r\n", 1000)
	src := strings.NewReader(input)
	br := bufio.NewReader(src)
	r := NewReader(br, 0)
	b.SetBytes(8)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.ReadLine(); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			src.Reset(input)
			br.Reset(src)
		}
	}
}
