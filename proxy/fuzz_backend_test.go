package proxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The scripted backend of FuzzSession (fuzz_session_test.go).

// fuzzLineKind is how the backend read a line: as a command, or as the
// answer to its own SASL continuation. (Which commands are popgate's own
// after-auth login, checkFuzzSession works out.)
type fuzzLineKind string

const (
	kindCommand fuzzLineKind = "cmd"
	kindSASL    fuzzLineKind = "sasl"
)

type fuzzLine struct {
	conn, idx int // connection number (in accept order) and line number in it
	kind      fuzzLineKind
	raw       string // without CRLF
	framing   string // what is wrong with the line's framing, if anything
}

// fuzzBackend is a scripted POP3 server that records, in arrival order,
// every line popgate sends it. It accepts any login whose password or user
// does not start with "bad" and any SASL exchange not cancelled with "*".
type fuzzBackend struct {
	ln        net.Listener
	timestamp string
	wg        sync.WaitGroup

	mu    sync.Mutex
	lines []fuzzLine
	conns []net.Conn
}

func newFuzzBackend(t *testing.T) *fuzzBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fb := &fuzzBackend{ln: ln, timestamp: "<1.2@fuzz>"}
	fb.wg.Add(1)
	go func() {
		defer fb.wg.Done()
		for n := 0; ; n++ {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fb.mu.Lock()
			fb.conns = append(fb.conns, c)
			fb.mu.Unlock()
			fb.wg.Add(1)
			go func() {
				defer fb.wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				fb.serve(n, c)
			}()
		}
	}()
	return fb
}

func (fb *fuzzBackend) count() int {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return len(fb.lines)
}

// close stops the backend once popgate is done with it and returns what
// it read.
func (fb *fuzzBackend) close(t *testing.T) []fuzzLine {
	fb.ln.Close()
	done := make(chan struct{})
	go func() { fb.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		fb.mu.Lock()
		for _, c := range fb.conns {
			c.Close()
		}
		fb.mu.Unlock()
		<-done
		t.Fatal("popgate kept a backend connection open after its session ended")
	}
	return fb.lines
}

var fuzzMessages = []string{
	"Subject: one\r\n\r\nhello\r\n",
	"Subject: two\r\n\r\n..leading dot\r\n.\r\nnot the end\r\n",
	"Subject: three\r\n\r\n" + strings.Repeat("x", 2000) + "\r\n",
}

func (fb *fuzzBackend) serve(n int, c net.Conn) {
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	fmt.Fprintf(w, "+OK fuzz backend ready %s\r\n", fb.timestamp)
	w.Flush()
	sasl := 0 // continuation answers still expected
	for idx := 0; ; idx++ {
		line, err := r.ReadString('\n')
		if err != nil && line == "" {
			return
		}
		l := fuzzLine{conn: n, idx: idx, kind: kindCommand, raw: strings.TrimSuffix(line, "\r\n")}
		if sasl > 0 {
			l.kind = kindSASL
		}
		switch {
		case err != nil:
			l.framing = "line cut off without CRLF"
		case !strings.HasSuffix(line, "\r\n"):
			l.framing = "line ends in a bare LF"
		case strings.ContainsAny(l.raw, "\r\n\x00"):
			l.framing = "line holds a bare CR, LF or NUL"
		}
		fb.mu.Lock()
		fb.lines = append(fb.lines, l)
		fb.mu.Unlock()
		if err != nil {
			return
		}
		if sasl > 0 {
			switch sasl--; {
			case l.raw == "*":
				sasl = 0
				io.WriteString(w, "-ERR cancelled\r\n")
			case sasl > 0:
				io.WriteString(w, "+ UGFzc3dvcmQ6\r\n")
			default:
				io.WriteString(w, "+OK sasl ok\r\n")
			}
			w.Flush()
			continue
		}
		verb, arg, _ := strings.Cut(l.raw, " ")
		args := strings.Fields(arg)
		msg := func() (string, bool) {
			if len(args) == 0 {
				return "", false
			}
			i, err := strconv.Atoi(args[0])
			if err != nil || i < 1 || i > len(fuzzMessages) {
				return "", false
			}
			return fuzzMessages[i-1], true
		}
		switch strings.ToUpper(verb) {
		case "USER":
			io.WriteString(w, "+OK\r\n")
		case "PASS":
			if strings.HasPrefix(arg, "bad") {
				io.WriteString(w, "-ERR [AUTH] bad password\r\n")
			} else {
				io.WriteString(w, "+OK logged in\r\n")
			}
		case "APOP":
			if strings.HasPrefix(arg, "bad") {
				io.WriteString(w, "-ERR [AUTH] bad digest\r\n")
			} else {
				io.WriteString(w, "+OK logged in\r\n")
			}
		case "AUTH":
			switch {
			case len(args) == 0:
				io.WriteString(w, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n")
			case strings.EqualFold(args[0], "LOGIN") && len(args) == 1:
				sasl = 2
				io.WriteString(w, "+ VXNlcm5hbWU6\r\n")
			case len(args) == 1 || strings.EqualFold(args[0], "LOGIN"):
				sasl = 1
				io.WriteString(w, "+ \r\n")
			default:
				io.WriteString(w, "+OK sasl ok\r\n")
			}
		case "CAPA":
			io.WriteString(w, "+OK\r\nTOP\r\nUSER\r\nUIDL\r\nPIPELINING\r\nSASL PLAIN LOGIN\r\n.\r\n")
		case "STAT":
			io.WriteString(w, "+OK 3 2100\r\n")
		case "LIST", "UIDL":
			if len(args) == 0 {
				io.WriteString(w, "+OK\r\n1 20\r\n2 50\r\n3 2030\r\n.\r\n")
			} else if _, ok := msg(); ok {
				fmt.Fprintf(w, "+OK %s 20\r\n", args[0])
			} else {
				io.WriteString(w, "-ERR no such message\r\n")
			}
		case "RETR", "TOP":
			if m, ok := msg(); ok {
				fmt.Fprintf(w, "+OK message follows\r\n%s.\r\n", m)
			} else {
				io.WriteString(w, "-ERR no such message\r\n")
			}
		case "DELE":
			if _, ok := msg(); ok {
				io.WriteString(w, "+OK marked\r\n")
			} else {
				io.WriteString(w, "-ERR no such message\r\n")
			}
		case "NOOP", "RSET":
			io.WriteString(w, "+OK\r\n")
		case "QUIT":
			io.WriteString(w, "+OK bye\r\n")
			w.Flush()
			return
		default:
			io.WriteString(w, "-ERR unknown command\r\n")
		}
		w.Flush()
	}
}
