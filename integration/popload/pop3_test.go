package main

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"math"
	"net"
	"testing"
	"time"
)

// pipeConn returns a conn whose server side writes wire and then closes.
// bufSize small forces terminators and stuffed dots across buffer edges.
func pipeConn(t *testing.T, wire string, bufSize int) *conn {
	t.Helper()
	client, server := net.Pipe()
	t.Cleanup(func() { client.Close() })
	go func() {
		io.WriteString(server, wire)
		server.Close()
	}()
	return &conn{nc: client, r: bufio.NewReaderSize(client, bufSize), w: bufio.NewWriter(client), timeout: 5 * time.Second}
}

func TestBodyUnstuffsAndStopsAtTerminator(t *testing.T) {
	cases := []struct{ name, wire, want string }{
		{"plain", "a\r\nb\r\n.\r\n", "a\r\nb\r\n"},
		{"empty", ".\r\n", ""},
		{"stuffed", "..one\r\n...two\r\nx.y\r\n.\r\n", ".one\r\n..two\r\nx.y\r\n"},
		{"lone dot line", "before\r\n..\r\nafter\r\n.\r\n", "before\r\n.\r\nafter\r\n"},
	}
	for _, tc := range cases {
		for _, size := range []int{16, 4096} {
			t.Run(tc.name, func(t *testing.T) {
				c := pipeConn(t, tc.wire+"+OK next\r\n", size)
				var got bytes.Buffer
				n, err := c.body(&got)
				if err != nil {
					t.Fatalf("body: %v", err)
				}
				if got.String() != tc.want || n != int64(len(tc.want)) {
					t.Fatalf("body %q (%d octets), want %q", got.String(), n, tc.want)
				}
				if l, err := c.line(); err != nil || l != "+OK next" {
					t.Fatalf("line after the body: %q, %v", l, err)
				}
			})
		}
	}
}

func TestBodyWithoutTerminatorFails(t *testing.T) {
	c := pipeConn(t, "a\r\nb\r\n", 16)
	if _, err := c.body(nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("body without terminator: %v, want io.ErrUnexpectedEOF", err)
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:110": true, "127.1.2.3:1": true, "[::1]:995": true,
		"10.0.0.1:110": false, "[::ffff:8.8.8.8]:53": false, "localhost:110": false, "example.org:110": false,
	} {
		if err := checkLoopback(addr); (err == nil) != ok {
			t.Errorf("checkLoopback(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

func TestMedianAndPercentile(t *testing.T) {
	if m := median([]float64{3, 1, 2}); m != 2 {
		t.Errorf("median odd = %v", m)
	}
	if m := median([]float64{4, 1, 3, 2}); m != 2.5 {
		t.Errorf("median even = %v", m)
	}
	if !math.IsNaN(median(nil)) {
		t.Error("median of nothing is not NaN")
	}
	sorted := []float64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(sorted, 90); p != 9 {
		t.Errorf("p90 = %v", p)
	}
	if p := percentile(sorted, 99); p != 10 {
		t.Errorf("p99 = %v", p)
	}
}

func TestScanMessageFlag(t *testing.T) {
	var l scanMessages
	if err := l.Set("big=big:pw:with:colons:3"); err != nil {
		t.Fatal(err)
	}
	if m := l[0]; m.label != "big" || m.user != "big" || m.pass != "pw:with:colons" || m.number != 3 {
		t.Fatalf("parsed %+v", m)
	}
	for _, bad := range []string{"x", "x=user:pw", "x=user:pw:0", "x=:pw:1"} {
		if err := l.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}
