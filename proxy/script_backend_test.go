package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"
)

// scriptBackend is the one POP3 backend of proxy's tests and benchmarks: a
// loopback listener whose connections are either run by a Go function
// (serve: a mailbox, or a test's own few lines of script), or, when serve
// is nil, handed in the order they arrive to a transcript's backend script
// (transcript_test.go). It records every line popgate sends it, and how
// each connection ended: "quit" when popgate sent QUIT on it, "closed"
// otherwise.
type scriptBackend struct {
	t      testing.TB
	ln     net.Listener
	serve  func(*scriptConn) // nil: connections wait in accepted
	record bool              // keep every line read (off for benchmarks)
	life   time.Duration     // each connection's deadline; 0 for benchmarks

	accepted chan *scriptConn // for a transcript's script (serve is nil)

	mu    sync.Mutex
	lines []string // every line read, on every connection, in order
	conns int
	ends  []string      // "quit" or "closed", per connection, as they end
	taken int           // ends already returned by waitEnd
	ended chan struct{} // signalled (never closed) when an end is added
	open  map[net.Conn]bool
	wg    sync.WaitGroup
}

// newScriptBackend starts a backend on loopback whose connections are run
// by serve, or, with a nil serve, queued for a transcript. Everything it
// holds is released when the test ends.
func newScriptBackend(t testing.TB, serve func(*scriptConn)) *scriptBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &scriptBackend{
		t: t, ln: ln, serve: serve, record: true, life: 20 * time.Second,
		accepted: make(chan *scriptConn, 16),
		ended:    make(chan struct{}, 1),
		open:     map[net.Conn]bool{},
	}
	if _, ok := t.(*testing.B); ok {
		b.record, b.life = false, 0
	}
	t.Cleanup(b.close)
	b.wg.Add(1)
	go b.acceptLoop()
	return b
}

func (b *scriptBackend) addr() string { return b.ln.Addr().String() }

// close stops the listener, closes every connection still open and waits
// for their goroutines.
func (b *scriptBackend) close() {
	b.ln.Close()
	b.mu.Lock()
	for c := range b.open {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *scriptBackend) acceptLoop() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		if b.life > 0 {
			c.SetDeadline(time.Now().Add(b.life))
		}
		bc := &scriptConn{b: b, c: c, r: bufio.NewReaderSize(c, 4096), w: bufio.NewWriterSize(c, 4096)}
		b.mu.Lock()
		b.conns++
		b.open[c] = true
		b.mu.Unlock()
		if b.serve == nil {
			select {
			case b.accepted <- bc:
			default:
				b.t.Errorf("scriptBackend: more than %d connections nobody takes", cap(b.accepted))
				c.Close()
			}
			continue
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			defer bc.end()
			b.serve(bc)
		}()
	}
}

// received returns every line read so far, on every connection.
func (b *scriptBackend) received() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.lines...)
}

// connections returns how many connections popgate made.
func (b *scriptBackend) connections() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.conns
}

// waitEnd waits for the next connection to end and returns how: "quit"
// or "closed".
func (b *scriptBackend) waitEnd() string {
	b.t.Helper()
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		b.mu.Lock()
		if b.taken < len(b.ends) {
			end := b.ends[b.taken]
			b.taken++
			b.mu.Unlock()
			return end
		}
		b.mu.Unlock()
		select {
		case <-b.ended:
		case <-timeout.C:
			b.t.Fatal("no backend connection ended within 10s")
			return ""
		}
	}
}

// scriptConn is one connection popgate made to a scriptBackend, with the
// line-level steps a script needs.
type scriptConn struct {
	b    *scriptBackend
	c    net.Conn
	r    *bufio.Reader
	w    *bufio.Writer
	quit bool // popgate sent QUIT
	done bool // end ran
}

// end closes the connection and records how it ended.
func (bc *scriptConn) end() {
	if bc.done {
		return
	}
	bc.done = true
	bc.c.Close()
	how := "closed"
	if bc.quit {
		how = "quit"
	}
	b := bc.b
	b.mu.Lock()
	delete(b.open, bc.c)
	b.ends = append(b.ends, how)
	b.mu.Unlock()
	select {
	case b.ended <- struct{}{}:
	default:
	}
}

// errNoCRLF is a line from popgate that did not end in CRLF.
var errNoCRLF = errors.New("line does not end in CRLF")

// readLine reads one line from popgate, without its CRLF. A line that
// ends otherwise (a bare LF, or EOF midway) is an error: popgate must
// never send one.
func (bc *scriptConn) readLine() (string, error) {
	line, err := bc.next()
	return string(line), err
}

// next is readLine without a copy: the line is valid until the next read.
// It allocates only to record the line, so the mailbox costs no more
// than a server must.
func (bc *scriptConn) next() ([]byte, error) {
	line, err := bc.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		long := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = bc.r.ReadSlice('\n')
			long = append(long, line...)
		}
		line = long
	}
	if err != nil {
		if len(line) > 0 {
			return line, fmt.Errorf("%w: %q before %v", errNoCRLF, line, err)
		}
		return nil, err
	}
	if !bytes.HasSuffix(line, []byte("\r\n")) {
		return line, fmt.Errorf("%w: %q", errNoCRLF, line)
	}
	line = line[:len(line)-2]
	if string(line) == "QUIT" {
		bc.quit = true
	}
	if bc.b.record {
		bc.b.mu.Lock()
		bc.b.lines = append(bc.b.lines, string(line))
		bc.b.mu.Unlock()
	}
	return line, nil
}

// send writes lines, each with CRLF, and flushes.
func (bc *scriptConn) send(lines ...string) error {
	for _, l := range lines {
		bc.w.WriteString(l)
		bc.w.WriteString("\r\n")
	}
	return bc.w.Flush()
}

// mailbox is a POP3 server over fixed messages, for tests that need a
// backend that simply works, and for the benchmarks, which need one that
// costs as little as a server can. It answers USER, PASS, AUTH (any
// mechanism: one empty continuation, then "+OK sasl ok", or "-ERR
// cancelled" for "*"), CAPA, STAT, NOOP, DELE, RETR and QUIT, and "-ERR
// unknown" to anything else. Answers to a pipelined burst go out in one
// write.
type mailbox struct {
	greeting  string
	passwords []string // PASS accepts these; nil accepts any
	wire      [][]byte // per message: status line, stuffed body, terminator
	cut       map[int]bool
}

// newMailbox returns a mailbox of messages given as they are on the wire:
// dot-stuffed, each line ending in CRLF. It takes the passwords "secret"
// and "pass word".
func newMailbox(stuffed ...string) *mailbox {
	m := &mailbox{greeting: "+OK fake ready <1.2@fake>", passwords: []string{"secret", "pass word"}, cut: map[int]bool{}}
	for _, s := range stuffed {
		m.wire = append(m.wire, []byte("+OK message follows\r\n"+s+".\r\n"))
	}
	return m
}

// newFakeBackend starts a mailbox backend of stuffed messages.
func newFakeBackend(t testing.TB, stuffed ...string) *scriptBackend {
	t.Helper()
	return newScriptBackend(t, newMailbox(stuffed...).serve)
}

// stuff returns a message's wire form (RFC 1939 section 3): every line
// that starts with a dot gets one more.
func stuff(msg []byte) string {
	var w bytes.Buffer
	for _, line := range bytes.SplitAfter(msg, []byte("\r\n")) {
		if len(line) > 0 && line[0] == '.' {
			w.WriteByte('.')
		}
		w.Write(line)
	}
	return w.String()
}

// serve runs one connection.
func (m *mailbox) serve(bc *scriptConn) {
	w := bc.w
	w.WriteString(m.greeting + "\r\n")
	if w.Flush() != nil {
		return
	}
	for {
		line, err := bc.next()
		if err != nil {
			return
		}
		verb, arg, _ := bytes.Cut(line, []byte(" "))
		switch string(verb) { // popgate sends verbs in upper case
		case "USER":
			w.WriteString("+OK\r\n")
		case "PASS":
			if m.passwords == nil || contains(m.passwords, string(arg)) {
				w.WriteString("+OK logged in\r\n")
			} else {
				w.WriteString("-ERR [AUTH] bad\r\n")
			}
		case "AUTH":
			if bc.send("+ ") != nil {
				return
			}
			resp, err := bc.readLine()
			if err != nil {
				return
			}
			if resp == "*" {
				w.WriteString("-ERR cancelled\r\n")
			} else {
				w.WriteString("+OK sasl ok\r\n")
			}
		case "CAPA":
			w.WriteString("+OK\r\nTOP\r\nUSER\r\nSTLS\r\nXCLIENT\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n")
		case "STAT":
			fmt.Fprintf(w, "+OK %d 100\r\n", len(m.wire))
		case "NOOP":
			w.WriteString("+OK\r\n")
		case "DELE":
			w.WriteString("+OK marked\r\n")
		case "RETR":
			n, _ := strconv.Atoi(string(arg))
			if n < 1 || n > len(m.wire) {
				w.WriteString("-ERR no such message\r\n")
				break
			}
			msg := m.wire[n-1]
			if m.cut[n] {
				w.Write(msg[:len(msg)-len(".\r\n")])
				w.Flush()
				return // the backend dies mid-body
			}
			w.Write(msg)
		case "QUIT":
			w.WriteString("+OK bye\r\n")
			w.Flush()
			return
		default:
			w.WriteString("-ERR unknown\r\n")
		}
		if bc.r.Buffered() == 0 { // the end of a burst
			if w.Flush() != nil {
				return
			}
		}
	}
}
