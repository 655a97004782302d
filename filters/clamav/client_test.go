package clamav

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseAddress(t *testing.T) {
	for _, tc := range []struct {
		in, network, addr string
	}{
		{"tcp://127.0.0.1:3310", "tcp", "127.0.0.1:3310"},
		{"tcp://[::1]:3310", "tcp", "[::1]:3310"},
		{"tcp://clamd.example:3310", "tcp", "clamd.example:3310"},
		{"unix:///run/clamav/clamd.ctl", "unix", "/run/clamav/clamd.ctl"},
		{"127.0.0.1:3310", "", ""},
		{"tcp://127.0.0.1", "", ""},
		{"tcp://:3310", "", ""},
		{"tcp://host:3310/x", "", ""},
		{"unix://relative/path", "", ""},
		{"unix://", "", ""},
		{"unix:///", "", ""},
		{"udp://127.0.0.1:3310", "", ""},
		{"", "", ""},
	} {
		network, addr, err := ParseAddress(tc.in)
		if tc.network == "" {
			if !errors.Is(err, ErrBadAddress) {
				t.Errorf("ParseAddress(%q) = %q, %q, %v; want ErrBadAddress", tc.in, network, addr, err)
			}
			continue
		}
		if err != nil || network != tc.network || addr != tc.addr {
			t.Errorf("ParseAddress(%q) = %q, %q, %v; want %q, %q", tc.in, network, addr, err, tc.network, tc.addr)
		}
	}
}

func TestParseReply(t *testing.T) {
	for _, tc := range []struct {
		reply string
		clean bool
		virus string
		err   error // nil, ErrSizeLimit, or errReplyError for any *ReplyError
	}{
		{"stream: OK", true, "", nil},
		{"stream: Eicar-Test-Signature FOUND", false, "Eicar-Test-Signature", nil},
		{"stream: Popgate.Eicar.UNOFFICIAL FOUND", false, "Popgate.Eicar.UNOFFICIAL", nil},
		{"INSTREAM size limit exceeded. ERROR", false, "", ErrSizeLimit},
		{"stream: Can't allocate memory ERROR", false, "", errReplyError},
		{"COMMAND READ TIMED OUT", false, "", errUnexpected},
		{"stream: FOUND", false, "", errUnexpected},
		{"", false, "", errUnexpected},
	} {
		v, err := parseReply(tc.reply)
		switch tc.err {
		case nil:
			if err != nil || v.Clean != tc.clean || v.Virus != tc.virus {
				t.Errorf("parseReply(%q) = %+v, %v", tc.reply, v, err)
			}
		case errReplyError:
			var re *ReplyError
			if !errors.As(err, &re) || re.Reply != tc.reply || errors.Is(err, ErrSizeLimit) {
				t.Errorf("parseReply(%q) error = %v, want a ReplyError", tc.reply, err)
			}
		case errUnexpected:
			if err == nil || v.Clean {
				t.Errorf("parseReply(%q) = %+v, %v; want an error", tc.reply, v, err)
			}
		default:
			if !errors.Is(err, tc.err) {
				t.Errorf("parseReply(%q) error = %v, want %v", tc.reply, err, tc.err)
			}
		}
		if err != nil && v.Clean {
			t.Errorf("parseReply(%q): clean verdict with an error", tc.reply)
		}
	}
}

// Markers for TestParseReply's table.
var (
	errReplyError = errors.New("any ReplyError")
	errUnexpected = errors.New("any error")
)

// newTestClient returns a client of fc with a short timeout.
func newTestClient(t testing.TB, addr string, timeout time.Duration) *Client {
	t.Helper()
	c, err := NewClient(addr, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestScan(t *testing.T) {
	for _, network := range []string{"tcp", "unix"} {
		t.Run(network, func(t *testing.T) {
			fc := startFake(t, network, modeScan)
			c := newTestClient(t, fc.addr, 5*time.Second)
			ctx := context.Background()

			clean := bytes.Repeat([]byte("harmless line\r\n"), 20000) // 300000 octets
			v, err := c.Scan(ctx, bytes.NewReader(clean))
			if err != nil || !v.Clean || v.Virus != "" {
				t.Fatalf("clean Scan = %+v, %v", v, err)
			}
			if v.Bytes != int64(len(clean)) || v.Duration <= 0 || v.Wait <= 0 || v.Wait > v.Duration {
				t.Errorf("verdict accounting = %+v", v)
			}
			rec := fc.scans()[0]
			if !rec.ended || rec.bytes != int64(len(clean)) || rec.sum != sha256.Sum256(clean) {
				t.Errorf("clamd received %+v, want the %d octets sent", rec, len(clean))
			}
			if want := (len(clean) + ChunkSize - 1) / ChunkSize; rec.chunks != want || rec.maxChunk != ChunkSize {
				t.Errorf("clamd received %d chunks of at most %d, want %d of %d", rec.chunks, rec.maxChunk, want, ChunkSize)
			}

			// The marker straddles a chunk boundary.
			infected := append(bytes.Repeat([]byte{'a'}, ChunkSize-5), testMarker...)
			v, err = c.Scan(ctx, bytes.NewReader(infected))
			if err != nil || v.Clean || v.Virus != testVirus {
				t.Fatalf("infected Scan = %+v, %v", v, err)
			}
			if s := v.String(); s != "infected: "+testVirus {
				t.Errorf("String = %q", s)
			}

			// An empty stream is legal.
			if v, err := c.Scan(ctx, strings.NewReader("")); err != nil || !v.Clean {
				t.Fatalf("empty Scan = %+v, %v", v, err)
			}
			if err := c.Ping(ctx); err != nil {
				t.Fatalf("Ping: %v", err)
			}
		})
	}
}

func TestStreamSmallWritesAreChunked(t *testing.T) {
	fc := startFake(t, "tcp", modeScan)
	s, err := Dial(context.Background(), fc.addr)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("0123456789"), 15000)
	for i := range data {
		if _, err := s.Write(data[i : i+1]); err != nil {
			t.Fatal(err)
		}
	}
	if v, err := s.Close(); err != nil || !v.Clean || v.Bytes != int64(len(data)) {
		t.Fatalf("Close = %+v, %v", v, err)
	}
	if rec := fc.scans()[0]; rec.chunks != 3 || rec.sum != sha256.Sum256(data) {
		t.Fatalf("clamd received %d chunks (want 3), content ok %v", rec.chunks, rec.sum == sha256.Sum256(data))
	}
	if _, err := s.Write([]byte("x")); err == nil {
		t.Error("Write after Close succeeded")
	}
	if _, err := s.Close(); err == nil {
		t.Error("second Close succeeded")
	}
	s.Abort() // harmless after Close
}

func TestScanErrors(t *testing.T) {
	big := bytes.Repeat([]byte("x"), 4<<20)
	t.Run("error-reply", func(t *testing.T) {
		fc := startFake(t, "tcp", modeError)
		_, err := newTestClient(t, fc.addr, 5*time.Second).Scan(context.Background(), bytes.NewReader(big[:1000]))
		var re *ReplyError
		if !errors.As(err, &re) || !strings.HasSuffix(re.Reply, "ERROR") {
			t.Fatalf("Scan error = %v, want a ReplyError", err)
		}
	})
	t.Run("size-limit-mid-stream", func(t *testing.T) {
		// The fake closes after 100 KiB while 4 MiB are on their way: the
		// writer sees a reset, and must report clamd's reply instead.
		fc := startFake(t, "tcp", modeSizeLimit)
		_, err := newTestClient(t, fc.addr, 5*time.Second).Scan(context.Background(), bytes.NewReader(big))
		if !errors.Is(err, ErrSizeLimit) {
			t.Fatalf("Scan error = %v, want ErrSizeLimit", err)
		}
	})
	t.Run("size-limit-at-end", func(t *testing.T) {
		// The stream is small enough to sit in socket buffers: the reply
		// is read after the terminator.
		fc := startFake(t, "unix", modeSizeLimit)
		_, err := newTestClient(t, fc.addr, 5*time.Second).Scan(context.Background(), bytes.NewReader(big[:150<<10]))
		if !errors.Is(err, ErrSizeLimit) {
			t.Fatalf("Scan error = %v, want ErrSizeLimit", err)
		}
	})
	t.Run("silent-past-timeout", func(t *testing.T) {
		fc := startFake(t, "tcp", modeSilent)
		start := time.Now()
		_, err := newTestClient(t, fc.addr, 200*time.Millisecond).Scan(context.Background(), bytes.NewReader(big[:1000]))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Scan error = %v, want a timeout", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("timeout took %v", d)
		}
	})
	t.Run("stalled-writes-time-out", func(t *testing.T) {
		fc := startFake(t, "unix", modeStall)
		_, err := newTestClient(t, fc.addr, 200*time.Millisecond).Scan(context.Background(), bytes.NewReader(big))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Scan error = %v, want a timeout", err)
		}
	})
	t.Run("context-deadline-sooner", func(t *testing.T) {
		fc := startFake(t, "tcp", modeSilent)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := newTestClient(t, fc.addr, time.Hour).Scan(ctx, bytes.NewReader(big[:1000]))
		if !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Scan error = %v, want a deadline error", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		fc := startFake(t, "tcp", modeSilent)
		ctx, cancel := context.WithCancel(context.Background())
		s, err := newTestClient(t, fc.addr, time.Hour).Stream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("data")); err != nil {
			t.Fatal(err)
		}
		// Cancel once the fake has the whole stream and waits silently.
		go func() {
			<-fc.ended
			cancel()
		}()
		if _, err := s.Close(); !errors.Is(err, context.Canceled) {
			t.Fatalf("Close error = %v, want context.Canceled", err)
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := "tcp://" + ln.Addr().String()
		ln.Close()
		for _, a := range []string{addr, "unix://" + t.TempDir() + "/absent.sock"} {
			if _, err := Dial(context.Background(), a); err == nil || !strings.Contains(err.Error(), "connecting") {
				t.Errorf("Dial(%s) error = %v", a, err)
			}
			if err := newTestClient(t, a, time.Second).Ping(context.Background()); err == nil {
				t.Errorf("Ping(%s) succeeded", a)
			}
		}
	})
}
