package audit

import (
	"errors"
	"io"
	"sync"
	"time"
)

// tap wraps an exchange's Body. It counts the octets the session reads from
// it (and so delivers to the client), lets the scanners look at them as
// they pass, and writes the exchange's records once the body ends: at EOF,
// at a read error, at Close, at the exchange's Finish, or when the session
// ends with the body unread. It never holds back or copies the stream
// beyond one scanner line.
type tap struct {
	r     io.Reader
	f     *Filter
	start time.Time

	mu       sync.Mutex // guards what follows; Read and finish may race
	n        int64
	finished bool
	cmd      commandRecord
	// retrieving is set for RETR and TOP answered +OK: retrieve is then
	// the record to write and msgid looks for its Message-ID.
	retrieving bool
	retrieve   retrieveRecord
	msgid      messageIDScanner
	uidl       *uidlScanner // nil unless a UIDL listing
}

// Read reads from the wrapped body.
func (t *tap) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	if n > 0 {
		t.mu.Lock()
		if !t.finished {
			t.n += int64(n)
			if t.retrieving {
				t.msgid.write(p[:n])
			}
			if t.uidl != nil {
				t.uidl.write(p[:n])
			}
		}
		t.mu.Unlock()
	}
	if err != nil {
		t.finish(err)
	}
	return n, err
}

// Close finishes the records if the body was not read to its end (the
// session closes a body it abandons) and closes the wrapped body when it is
// an io.Closer, so that its resources (a spool file) are released.
func (t *tap) Close() error {
	t.finish(errNotRead)
	if c, ok := t.r.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// finish writes the exchange's records, once, and reports whether it
// did. err is io.EOF for a body read to its end.
func (t *tap) finish(err error) bool {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return false
	}
	t.finished = true
	complete := errors.Is(err, io.EOF)
	now := time.Now()
	cmd := t.cmd
	cmd.Time = now.UTC()
	cmd.Bytes = t.n
	cmd.DurationUS = now.Sub(t.start).Microseconds()
	cmd.Complete = complete
	if !complete {
		cmd.Error = err.Error()
	}
	ret := t.retrieve
	if t.retrieving {
		t.msgid.close()
		ret.Time = cmd.Time
		ret.Size = t.n
		ret.MessageID = t.msgid.id
		ret.Complete = complete
	}
	t.mu.Unlock()

	t.f.recordCommand(&cmd)
	if t.retrieving {
		t.f.recordRetrieve(&ret)
	}
	return true
}
