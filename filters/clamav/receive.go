package clamav

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/popgate/popgate/filters/spool"
)

// ErrTooBig is the cause recorded when a body is larger than
// Config.MaxSize and so is not scanned. It has an Oversize method that
// returns true, so that the audit filter records "skipped-oversize" for
// it without importing this package.
var ErrTooBig error = tooBigError{}

// tooBigError is the type of ErrTooBig.
type tooBigError struct{}

func (tooBigError) Error() string { return "clamav: message larger than max_size, not scanned" }

// Oversize reports that the message was not scanned for its size.
func (tooBigError) Oversize() bool { return true }

// readSize is the size of the reads from the backend's body.
const readSize = 64 << 10

// readPool recycles the buffers bodies are read through.
var readPool = sync.Pool{New: func() any { b := make([]byte, readSize); return &b }}

// receipt is what receiving one body produced.
type receipt struct {
	// sp holds the octets received, nil once they are known to be
	// undeliverable (they are then discarded as they arrive).
	sp *spool.Spool
	// rest, when not nil, is the unread remainder of a body larger than
	// MaxSize, passed unscanned: it follows sp's octets.
	rest io.Reader
	// size counts the octets read from the backend.
	size int64
	// verdict is clamd's answer when scanErr and spoolErr are nil.
	verdict Verdict
	// scanErr is why there is no verdict.
	scanErr error
	// spoolErr is an I/O error of the spool: the message is lost.
	spoolErr error
	// src is the backend's body, read to its end unless rest reads on
	// from it; closeSrc closes it.
	src io.Reader
}

// closeSrc closes the backend's body, unless a delivered body took it.
func (rc *receipt) closeSrc() {
	closeBody(rc.src)
	rc.src = nil
}

// dropSpool closes and forgets the spool.
func (rc *receipt) dropSpool() {
	if rc.sp != nil {
		rc.sp.Close()
		rc.sp = nil
	}
}

// handOver ends receiving a message that passes unscanned: what is
// spooled, then chunk (not spooled), then the rest of body straight from
// the backend. A read error rerr of body other than io.EOF is returned,
// and nothing is kept.
func (rc *receipt) handOver(chunk []byte, body io.Reader, rerr error) (*receipt, error) {
	if rerr != nil && rerr != io.EOF {
		rc.dropSpool()
		return nil, fmt.Errorf("clamav: reading message body: %w", rerr)
	}
	rc.rest = bytes.NewReader(bytes.Clone(chunk))
	if rerr == nil {
		rc.rest = io.MultiReader(rc.rest, body)
	}
	rc.size += int64(len(chunk))
	return rc, nil
}

// receive reads body to its end, writing every octet both into a spool and
// into a clamd stream, so the verdict is ready when the last octet arrives.
// The stream waits for one of the filter's scan slots first. It always
// drains body unless it hands the remainder over in rest. A read error of
// body (a truncated message) is returned, and nothing is kept.
func (f *Filter) receive(ctx context.Context, body io.Reader) (*receipt, error) {
	pass := f.cfg.OnError == OnErrorPass
	rc := &receipt{sp: f.cfg.Spool.New(f.cfg.SpoolDir, f.cfg.SpoolMemory, f.cfg.MaxSize), src: body}
	var st *Stream
	release, err := f.slots.acquire(ctx, f.cfg.ScanWait)
	if err == nil {
		defer release()
		st, err = f.client.Stream(ctx)
	}
	// stopScan ends the scan with cause. Unless failed scans pass, the
	// message will not be delivered: spooling stops too.
	stopScan := func(cause error) {
		if rc.scanErr == nil {
			rc.scanErr = cause
		}
		if st != nil {
			st.Abort()
			st = nil
		}
		if !pass {
			rc.dropSpool()
		}
	}
	if err != nil {
		stopScan(err)
	}
	bufp := readPool.Get().(*[]byte)
	defer readPool.Put(bufp)
	buf := *bufp
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if rc.size+int64(n) > f.cfg.MaxSize && (st != nil || rc.sp != nil) {
				stopScan(ErrTooBig)
				if rc.sp != nil {
					return rc.handOver(chunk, body, rerr)
				}
			}
			if rc.sp != nil {
				_, err := rc.sp.Write(chunk)
				switch {
				case errors.Is(err, spool.ErrBudget):
					// No room left in the spool budget: not
					// scanned, like a message larger than MaxSize.
					stopScan(err)
					if rc.sp != nil {
						return rc.handOver(chunk, body, rerr)
					}
				case err != nil:
					rc.spoolErr = err
					rc.dropSpool()
					stopScan(err)
				}
			}
			rc.size += int64(n)
			if st != nil {
				if _, err := st.Write(chunk); err != nil {
					stopScan(err)
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			stopScan(rerr)
			rc.dropSpool()
			return nil, fmt.Errorf("clamav: reading message body: %w", rerr)
		}
	}
	if st != nil {
		v, err := st.Close()
		st = nil
		if err != nil {
			stopScan(err)
		} else {
			rc.verdict = v
		}
	}
	return rc, nil
}
