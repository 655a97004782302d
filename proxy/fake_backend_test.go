package proxy

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeBackend is a scripted POP3 server on loopback for protocol edge
// cases. It records every line it receives.
type fakeBackend struct {
	t        testing.TB
	ln       net.Listener
	messages []string // message bodies, already dot-stuffed, each ending in CRLF
	cut      map[int]bool
	greeting string

	mu    sync.Mutex
	lines []string
	quits int
	conns int
	done  chan string // receives "quit" or "closed" per connection end
}

func newFakeBackend(t testing.TB, messages ...string) *fakeBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fakeBackend{t: t, ln: ln, messages: messages, cut: map[int]bool{},
		greeting: "+OK fake ready <1.2@fake>", done: make(chan string, 100)}
	t.Cleanup(func() { ln.Close() })
	go fb.serve()
	return fb
}

func (fb *fakeBackend) addr() string { return fb.ln.Addr().String() }

func (fb *fakeBackend) received() []string {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return append([]string(nil), fb.lines...)
}

func (fb *fakeBackend) serve() {
	for {
		c, err := fb.ln.Accept()
		if err != nil {
			return
		}
		fb.mu.Lock()
		fb.conns++
		fb.mu.Unlock()
		go fb.handle(c)
	}
}

func (fb *fakeBackend) handle(c net.Conn) {
	defer c.Close()
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "%s\r\n", fb.greeting)
	w.Flush()
	authed := false
	for {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, err := r.ReadString('\n')
		if err != nil {
			fb.done <- "closed"
			return
		}
		line = strings.TrimSuffix(line, "\r\n")
		fb.mu.Lock()
		fb.lines = append(fb.lines, line)
		fb.mu.Unlock()
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "USER":
			fmt.Fprintf(w, "+OK\r\n")
		case "PASS":
			if arg == "secret" || arg == "pass word" {
				authed = true
				fmt.Fprintf(w, "+OK logged in\r\n")
			} else {
				fmt.Fprintf(w, "-ERR [AUTH] bad\r\n")
			}
		case "AUTH":
			fmt.Fprintf(w, "+ \r\n")
			w.Flush()
			resp, _ := r.ReadString('\n')
			fb.mu.Lock()
			fb.lines = append(fb.lines, strings.TrimSuffix(resp, "\r\n"))
			fb.mu.Unlock()
			if strings.TrimSpace(resp) == "*" {
				fmt.Fprintf(w, "-ERR cancelled\r\n")
			} else {
				authed = true
				fmt.Fprintf(w, "+OK sasl ok\r\n")
			}
		case "CAPA":
			fmt.Fprintf(w, "+OK\r\nTOP\r\nUSER\r\nSTLS\r\nXCLIENT\r\nPIPELINING\r\nSASL PLAIN\r\n.\r\n")
		case "STAT":
			fmt.Fprintf(w, "+OK %d 100\r\n", len(fb.messages))
		case "NOOP":
			fmt.Fprintf(w, "+OK\r\n")
		case "DELE":
			fmt.Fprintf(w, "+OK marked\r\n")
		case "RETR":
			var n int
			fmt.Sscanf(arg, "%d", &n)
			if n < 1 || n > len(fb.messages) {
				fmt.Fprintf(w, "-ERR no such message\r\n")
				break
			}
			fmt.Fprintf(w, "+OK message follows\r\n%s", fb.messages[n-1])
			if fb.cut[n] {
				w.Flush()
				fb.done <- "closed"
				return
			}
			fmt.Fprintf(w, ".\r\n")
		case "QUIT":
			fb.mu.Lock()
			fb.quits++
			fb.mu.Unlock()
			fmt.Fprintf(w, "+OK bye\r\n")
			w.Flush()
			fb.done <- "quit"
			return
		default:
			fmt.Fprintf(w, "-ERR unknown\r\n")
		}
		_ = authed
		w.Flush()
	}
}
