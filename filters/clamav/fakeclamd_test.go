package clamav

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// testMarker stands for a virus in unit tests: the fake clamd reports
// testVirus for any stream containing it.
const (
	testMarker = "POPGATE-TEST-MARKER-7f3a"
	testVirus  = "Popgate.Test.Marker.UNOFFICIAL"
)

// fakeMode is how the fake clamd behaves.
type fakeMode int

const (
	// modeScan answers FOUND for streams holding testMarker, else OK.
	modeScan fakeMode = iota
	// modeError answers an ERROR reply after the stream.
	modeError
	// modeSizeLimit answers "INSTREAM size limit exceeded. ERROR" and
	// closes as soon as the stream passes limit, as clamd does past
	// StreamMaxLength.
	modeSizeLimit
	// modeSilent reads the whole stream and never answers.
	modeSilent
	// modeStall reads the command and then nothing.
	modeStall
)

// scanRecord is what the fake clamd saw on one INSTREAM connection.
type scanRecord struct {
	bytes    int64
	sum      [32]byte // SHA-256 of the octets received
	chunks   int      // data chunks, without the terminator
	maxChunk int
	ended    bool // the zero-length chunk arrived
}

// fakeClamd is an in-process clamd speaking the real INSTREAM protocol on
// a loopback TCP port or a unix socket.
type fakeClamd struct {
	addr  string // clamd address: tcp://... or unix://...
	mode  fakeMode
	limit int64

	ln   net.Listener
	done chan struct{}
	wg   sync.WaitGroup

	// ended receives a value each time a stream's zero-length chunk
	// arrives, before the reply; recorded each time a scanRecord is
	// added.
	ended    chan struct{}
	recorded chan struct{}

	mu      sync.Mutex
	conns   []net.Conn
	records []scanRecord
	errs    []error
	// active counts the connections being served, maxActive the most
	// at once.
	active, maxActive int
}

// startFake starts a fake clamd on network "tcp" or "unix"; it stops when
// the test ends, and the test fails if a client broke the protocol.
func startFake(t *testing.T, network string, mode fakeMode) *fakeClamd {
	t.Helper()
	f := &fakeClamd{mode: mode, limit: 100 << 10, done: make(chan struct{}),
		ended: make(chan struct{}, 100), recorded: make(chan struct{}, 100)}
	var err error
	switch network {
	case "tcp":
		f.ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err == nil {
			f.addr = "tcp://" + f.ln.Addr().String()
		}
	case "unix":
		// Short directory: socket paths are limited to about 100 octets.
		dir, derr := os.MkdirTemp("", "pgclam")
		if derr != nil {
			t.Fatal(derr)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		path := filepath.Join(dir, "clamd.sock")
		f.ln, err = net.Listen("unix", path)
		f.addr = "unix://" + path
	}
	if err != nil {
		t.Fatalf("fake clamd: %v", err)
	}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(func() {
		close(f.done)
		f.ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		for _, err := range f.errs {
			t.Errorf("fake clamd: %v", err)
		}
	})
	return f
}

func (f *fakeClamd) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.active++
		f.maxActive = max(f.maxActive, f.active)
		f.mu.Unlock()
		f.wg.Add(1)
		// leave ends the connection's count before the reply goes out,
		// so a client that starts its next scan on the reply never
		// sees two counted.
		var once sync.Once
		leave := func() {
			once.Do(func() {
				f.mu.Lock()
				f.active--
				f.mu.Unlock()
			})
		}
		go func() {
			defer f.wg.Done()
			defer leave()
			defer c.Close()
			if err := f.serve(c, leave); err != nil {
				f.mu.Lock()
				f.errs = append(f.errs, err)
				f.mu.Unlock()
			}
		}()
	}
}

// scans returns the records of the INSTREAM connections so far.
func (f *fakeClamd) scans() []scanRecord {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]scanRecord(nil), f.records...)
}

// mostAtOnce returns the most connections the fake served at once.
func (f *fakeClamd) mostAtOnce() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxActive
}

// waitScans waits until n INSTREAM connections have been recorded and
// returns their records; it fails the test after 10 seconds.
func (f *fakeClamd) waitScans(t *testing.T, n int) []scanRecord {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for len(f.scans()) < n {
		select {
		case <-f.recorded:
		case <-timeout:
			t.Fatalf("fake clamd recorded %d scans, want %d", len(f.scans()), n)
		}
	}
	return f.scans()
}

// serve handles one connection. It returns protocol violations only;
// the client going away is not one.
func (f *fakeClamd) serve(c net.Conn, leave func()) error {
	cmd := make([]byte, len(cmdInstream))
	if _, err := io.ReadFull(c, cmd[:len(cmdPing)]); err != nil {
		return nil
	}
	if string(cmd[:len(cmdPing)]) == cmdPing {
		_, err := c.Write([]byte("PONG\x00"))
		return err
	}
	if _, err := io.ReadFull(c, cmd[len(cmdPing):]); err != nil {
		return nil
	}
	if string(cmd) != cmdInstream {
		return fmt.Errorf("unexpected command %q", cmd)
	}
	if f.mode == modeStall {
		<-f.done
		return nil
	}
	var rec scanRecord
	h := sha256.New()
	found := false
	var tail []byte             // last octets of the previous read, for the marker
	buf := make([]byte, 32<<10) // reused: the fake allocates nothing per chunk
	win := make([]byte, 0, len(buf)+len(testMarker))
	recorded := false
	record := func() {
		if !recorded {
			recorded = true
			rec.sum = [32]byte(h.Sum(nil))
			f.mu.Lock()
			f.records = append(f.records, rec)
			f.mu.Unlock()
			select {
			case f.recorded <- struct{}{}:
			default: // a full buffer has wake-ups enough
			}
		}
	}
	defer record()
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return nil
		}
		n := int64(binary.BigEndian.Uint32(hdr[:]))
		if n == 0 {
			rec.ended = true
			record()
			select {
			case f.ended <- struct{}{}:
			default:
			}
			break
		}
		if n > ChunkSize {
			return fmt.Errorf("chunk of %d octets exceeds ChunkSize", n)
		}
		if f.mode == modeSizeLimit && rec.bytes+n > f.limit {
			// clamd answers and closes with the rest unread, which
			// resets the connection under a client still writing.
			c.Write([]byte("INSTREAM size limit exceeded. ERROR\x00"))
			return nil
		}
		rec.chunks++
		rec.maxChunk = max(rec.maxChunk, int(n))
		for n > 0 {
			m, err := c.Read(buf[:min(int64(len(buf)), n)])
			if err != nil {
				return nil
			}
			n -= int64(m)
			rec.bytes += int64(m)
			h.Write(buf[:m])
			win = append(append(win[:0], tail...), buf[:m]...)
			if bytes.Contains(win, []byte(testMarker)) {
				found = true
			}
			tail = append(tail[:0], win[max(0, len(win)-len(testMarker)+1):]...)
		}
	}
	var reply string
	switch f.mode {
	case modeSilent:
		<-f.done
		return nil
	case modeError:
		reply = "stream: Can't create temporary file ERROR"
	case modeScan, modeSizeLimit:
		reply = "stream: OK"
		if found {
			reply = "stream: " + testVirus + " FOUND"
		}
	}
	leave()
	_, err := c.Write([]byte(reply + "\x00"))
	return err
}
