package clamav

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// The clamd commands used, with the "z" prefix that makes clamd end its
// reply with NUL (clamd(8), COMMANDS).
const (
	cmdInstream = "zINSTREAM\x00"
	cmdPing     = "zPING\x00"
)

// ChunkSize is the size of the chunks a Stream sends. Writes are gathered
// into chunks of this size so that small writes do not each cost a system
// call and a chunk header.
const ChunkSize = 64 << 10

// maxReply bounds a clamd reply line.
const maxReply = 4096

// ErrSizeLimit is matched (errors.Is) by the error of a scan that clamd
// refused because the stream exceeded its StreamMaxLength.
var ErrSizeLimit = errors.New("clamav: clamd stream size limit exceeded")

// errStreamDone is returned when a Stream is used after Close or Abort.
var errStreamDone = errors.New("clamav: scan stream already closed")

// ReplyError is a reply of clamd that reports an error instead of a
// verdict, such as "INSTREAM size limit exceeded. ERROR".
type ReplyError struct {
	Reply string // the reply line without its terminator
}

// Error implements error.
func (e *ReplyError) Error() string { return "clamav: clamd error: " + e.Reply }

// Is makes errors.Is(err, ErrSizeLimit) true for clamd's size limit reply.
func (e *ReplyError) Is(target error) bool {
	return target == ErrSizeLimit && strings.Contains(e.Reply, "size limit exceeded")
}

// Verdict is clamd's answer for one stream.
type Verdict struct {
	// Clean is true when clamd answered OK. The zero Verdict is not clean.
	Clean bool
	// Virus is the signature name clamd reported, as given (clamd appends
	// ".UNOFFICIAL" to names from local databases); empty when clean.
	Virus string
	// Bytes is the number of octets sent to clamd.
	Bytes int64
	// Duration runs from the dial to the verdict.
	Duration time.Duration
	// Wait runs from the last octet written to the verdict: the latency a
	// scan that ran while the octets arrived adds.
	Wait time.Duration
}

// String returns "clean" or "infected: NAME".
func (v Verdict) String() string {
	if v.Clean {
		return "clean"
	}
	return "infected: " + v.Virus
}

// chunkPool recycles chunk buffers: a 4-octet length, the data and room
// for the terminating zero-length chunk.
var chunkPool = sync.Pool{New: func() any { b := make([]byte, 4+ChunkSize+4); return &b }}

// Stream is one INSTREAM scan in progress (clamd(8)): an io.Writer whose
// octets are sent to clamd in length-prefixed chunks. Close ends the
// stream and returns the verdict; Abort drops it. A Stream is not safe for
// concurrent use, except that ctx may be cancelled at any time.
type Stream struct {
	ctx     context.Context
	conn    net.Conn
	address string
	timeout time.Duration
	start   time.Time

	bufp *[]byte // pooled chunk buffer
	n    int     // data octets in the buffer
	sent int64
	err  error // sticky: the scan failed
	done bool  // Close or Abort was called

	mu       sync.Mutex // guards canceled against the AfterFunc
	canceled bool
	stop     func() bool
}

// newStream wraps conn, arranging for ctx's cancellation to interrupt
// any I/O in progress.
func newStream(ctx context.Context, conn net.Conn, address string, timeout time.Duration, start time.Time) *Stream {
	s := &Stream{ctx: ctx, conn: conn, address: address, timeout: timeout, start: start,
		bufp: chunkPool.Get().(*[]byte)}
	s.stop = context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.canceled = true
		s.conn.SetDeadline(time.Unix(1, 0))
		s.mu.Unlock()
	})
	return s
}

// setDeadline arms the deadline of the next operation: the timeout, or
// ctx's deadline if sooner. Once ctx is done it refuses.
func (s *Stream) setDeadline() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.canceled {
		return s.ctx.Err()
	}
	d := time.Now().Add(s.timeout)
	if dl, ok := s.ctx.Deadline(); ok && dl.Before(d) {
		d = dl
	}
	return s.conn.SetDeadline(d)
}

// ioErr explains an I/O error, preferring ctx's error when ctx ended it.
func (s *Stream) ioErr(op string, err error) error {
	s.mu.Lock()
	canceled := s.canceled
	s.mu.Unlock()
	if canceled {
		err = s.ctx.Err()
	} else if errors.Is(err, os.ErrDeadlineExceeded) {
		err = fmt.Errorf("timed out: %w", err)
	}
	return fmt.Errorf("clamav: %s clamd at %s: %w", op, s.address, err)
}

// Write sends p to clamd, gathering it into chunks of ChunkSize. After an
// error the scan is over: Write and Close return that error.
func (s *Stream) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	if s.done {
		return 0, errStreamDone
	}
	buf := *s.bufp
	written := 0
	for len(p) > 0 {
		c := copy(buf[4+s.n:4+ChunkSize], p)
		s.n += c
		p = p[c:]
		written += c
		if s.n == ChunkSize {
			if err := s.flush(false); err != nil {
				return written, err
			}
		}
	}
	return written, nil
}

// flush sends the buffered chunk, followed by the zero-length chunk that
// ends the stream when last is set, in one write.
func (s *Stream) flush(last bool) error {
	buf := *s.bufp
	end := 0
	if s.n > 0 {
		binary.BigEndian.PutUint32(buf[:4], uint32(s.n))
		end = 4 + s.n
	}
	if last {
		binary.BigEndian.PutUint32(buf[end:end+4], 0)
		end += 4
	}
	if end == 0 {
		return nil
	}
	if err := s.send(buf[:end]); err != nil {
		return err
	}
	s.sent += int64(s.n)
	s.n = 0
	return nil
}

// send writes b to clamd. When the write fails, clamd may have answered
// and closed the connection (it does so past StreamMaxLength), which the
// writer sees as EPIPE or ECONNRESET: send then reads the reply and reports
// it rather than the write error.
func (s *Stream) send(b []byte) error {
	if err := s.setDeadline(); err != nil {
		return s.fail(s.ioErr("writing to", err))
	}
	if _, werr := s.conn.Write(b); werr != nil {
		err := s.ioErr("writing to", werr)
		if !errors.Is(werr, os.ErrDeadlineExceeded) && s.ctx.Err() == nil {
			if reply, rerr := s.readReply(); rerr == nil {
				if _, perr := parseReply(reply); perr != nil {
					err = fmt.Errorf("%w (after %v)", perr, werr)
				}
			}
		}
		return s.fail(err)
	}
	return nil
}

// fail records err as the end of the scan.
func (s *Stream) fail(err error) error {
	if s.err == nil {
		s.err = err
	}
	return s.err
}

// readReply reads one NUL-terminated reply, without its terminator. A
// reply cut by the end of the connection is returned as it is, if any.
func (s *Stream) readReply() (string, error) {
	if err := s.setDeadline(); err != nil {
		return "", s.ioErr("reading from", err)
	}
	var reply []byte
	var b [256]byte
	for len(reply) < maxReply {
		n, err := s.conn.Read(b[:])
		reply = append(reply, b[:n]...)
		if i := bytes.IndexByte(reply, 0); i >= 0 {
			return string(bytes.TrimSpace(reply[:i])), nil
		}
		if err != nil {
			if len(reply) > 0 {
				return string(bytes.TrimSpace(reply)), nil
			}
			return "", s.ioErr("reading from", err)
		}
	}
	return "", fmt.Errorf("clamav: reply from clamd at %s longer than %d octets", s.address, maxReply)
}

// parseReply turns an INSTREAM reply into a verdict or an error.
func parseReply(reply string) (Verdict, error) {
	switch {
	case strings.HasSuffix(reply, " ERROR") || reply == "ERROR":
		return Verdict{}, &ReplyError{Reply: reply}
	case reply == "stream: OK":
		return Verdict{Clean: true}, nil
	case strings.HasPrefix(reply, "stream: "):
		name, found := strings.CutSuffix(reply[len("stream: "):], " FOUND")
		if name = strings.TrimSpace(name); found && name != "" {
			return Verdict{Virus: name}, nil
		}
	}
	return Verdict{}, fmt.Errorf("clamav: unexpected reply from clamd: %q", reply)
}

// Close sends what is buffered and the end of the stream, waits for
// clamd's reply, and returns the verdict. An error means there is no
// verdict: clamd was unreachable, too slow, refused the stream (see
// ErrSizeLimit and ReplyError), or ctx ended. Close releases the
// connection in every case.
func (s *Stream) Close() (Verdict, error) {
	if s.done {
		return Verdict{}, errStreamDone
	}
	defer s.Abort()
	if s.err != nil {
		return Verdict{}, s.err
	}
	last := time.Now()
	if err := s.flush(true); err != nil {
		return Verdict{}, err
	}
	reply, err := s.readReply()
	if err != nil {
		return Verdict{}, s.fail(err)
	}
	v, err := parseReply(reply)
	if err != nil {
		return Verdict{}, s.fail(err)
	}
	now := time.Now()
	v.Bytes, v.Duration, v.Wait = s.sent, now.Sub(s.start), now.Sub(last)
	return v, nil
}

// Abort ends the scan without a verdict and releases the connection. It
// is safe to call after Close, and more than once.
func (s *Stream) Abort() {
	if s.done {
		return
	}
	s.done = true
	s.stop()
	s.conn.Close()
	chunkPool.Put(s.bufp)
	s.bufp = nil
}
