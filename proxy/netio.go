package proxy

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// timeoutConn moves the read or write deadline forward before every call,
// so a transfer may take as long as it keeps making progress, and counts
// the octets each way.
//
// Moving a deadline re-arms a runtime timer, which costs more than a small
// read, so a deadline is only moved once an eighth of its timeout has
// passed: the effective timeout lies between 7/8 and all of the setting.
type timeoutConn struct {
	net.Conn
	readTimeout  time.Duration // 0: leave the read deadline alone
	writeTimeout time.Duration
	in, out      *atomic.Int64
	// onRead, when set, runs before every read: the buffered reader over
	// the connection reads only when it has nothing left, so this is
	// where a read may block.
	onRead func()

	readArmed, writeArmed time.Time // when each deadline was last moved
}

func (c *timeoutConn) Read(p []byte) (int, error) {
	if c.onRead != nil {
		c.onRead()
	}
	if c.readTimeout > 0 {
		if now := time.Now(); now.Sub(c.readArmed) > c.readTimeout/8 {
			c.Conn.SetReadDeadline(now.Add(c.readTimeout))
			c.readArmed = now
		}
	}
	n, err := c.Conn.Read(p)
	if c.in != nil {
		c.in.Add(int64(n))
	}
	return n, err
}

func (c *timeoutConn) Write(p []byte) (int, error) {
	if c.writeTimeout > 0 {
		if now := time.Now(); now.Sub(c.writeArmed) > c.writeTimeout/8 {
			c.Conn.SetWriteDeadline(now.Add(c.writeTimeout))
			c.writeArmed = now
		}
	}
	n, err := c.Conn.Write(p)
	if c.out != nil {
		c.out.Add(int64(n))
	}
	return n, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// copyBufPool holds buffers for streaming bodies.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

// copyBody streams src to dst with a pooled buffer.
func copyBody(dst io.Writer, src io.Reader) (int64, error) {
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	// io.CopyBuffer uses the source's WriterTo when it has one (the
	// parser's body readers do), so the buffer serves only other sources.
	return io.CopyBuffer(dst, src, *bp)
}
