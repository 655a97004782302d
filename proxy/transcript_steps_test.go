package proxy

// The steps of a transcript's scripts (transcript_test.go), shared by
// the client's and the backend's.

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
)

// peer is one end of a conversation a script drives: the client, or the
// backend on its current connection.
type peer struct {
	actor byte
	conn  net.Conn
	r     *bufio.Reader
	out   bytes.Buffer // sends not written yet: one burst
	maybe []string     // lines of C? or B? before their eof
}

// flush writes the pending burst. A failed write does not fail the
// transcript: a peer that closed shows in the next expectation.
func (r *transcriptRun) flush(p *peer) {
	if p.out.Len() == 0 || p.conn == nil {
		return
	}
	if _, err := p.conn.Write(p.out.Bytes()); err != nil {
		r.note("%c! (write failed: %v)", p.actor, err)
	}
	p.out.Reset()
}

// do runs the steps both peers share; it returns false for a step it
// does not know.
func (r *transcriptRun) do(p *peer, s step) (bool, error) {
	if s.op[1] != ':' && s.op[1] != '~' {
		r.flush(p)
	}
	switch s.op[1] {
	case ':', '~':
		text, err := r.expand(s.text)
		if err != nil {
			return true, r.stepErr(s, "%v", err)
		}
		if s.op[1] == '~' {
			if text, err = unescape(text); err != nil {
				return true, r.stepErr(s, "%v", err)
			}
		} else {
			text += "\r\n"
		}
		shown := strings.TrimSuffix(text, "\r\n")
		if s.op[1] == '~' {
			shown = strconv.Quote(text)
		}
		for range s.count {
			p.out.WriteString(text)
			r.note("%c%c %s", p.actor, s.op[1], shown)
		}
		return true, nil
	case '<':
		want, err := r.expand(s.text)
		if err != nil {
			return true, r.stepErr(s, "%v", err)
		}
		for i := range s.count {
			got, err := r.readLine(p)
			if err != nil {
				return true, r.stepErr(s, "(%d of %d) %v", i+1, s.count, err)
			}
			if !matchLine(want, got) {
				return true, r.stepErr(s, "(%d of %d) got %q", i+1, s.count, got)
			}
		}
		return true, nil
	case '?':
		text, err := r.expand(s.text)
		if err != nil {
			return true, r.stepErr(s, "%v", err)
		}
		for range s.count {
			p.maybe = append(p.maybe, text)
		}
		return true, nil
	}
	verb, arg, _ := strings.Cut(s.text, " ")
	switch verb {
	case "eof":
		err := r.expectEOF(p)
		p.maybe = nil
		if err != nil {
			return true, r.stepErr(s, "%v", err)
		}
		r.note("%c! eof", p.actor)
	case "close":
		r.note("%c! close", p.actor)
		p.conn.Close()
	case "reset":
		r.note("%c! reset", p.actor)
		if tc, ok := tcpConn(p.conn); ok {
			tc.SetLinger(0)
		}
		p.conn.Close()
	case "quiet":
		if n, err := pending(p.r, p.conn); err != nil || n {
			line, _ := p.r.Peek(p.r.Buffered())
			return true, r.stepErr(s, "popgate already sent more (%q), or the check failed: %v", line, err)
		}
	case "mark":
		r.note("%c! mark %s", p.actor, arg)
		close(r.marks[arg])
	case "wait":
		if err := r.wait(r.marks[arg]); err != nil {
			return true, r.stepErr(s, "%v", err)
		}
	default:
		return false, nil
	}
	return true, nil
}

// readLine reads one CRLF-terminated line from p.
func (r *transcriptRun) readLine(p *peer) (string, error) {
	line, err := p.r.ReadString('\n')
	if err != nil {
		if line != "" {
			r.note("%c< %q (then %v)", p.actor, line, err)
		}
		if isTimeout(err) {
			return "", fmt.Errorf("nothing came before the transcript's deadline (after %q)", line)
		}
		return "", fmt.Errorf("read: %v (after %q)", err, line)
	}
	if !strings.HasSuffix(line, "\r\n") {
		return "", fmt.Errorf("line without CRLF: %q", line)
	}
	line = line[:len(line)-2]
	r.note("%c< %s", p.actor, line)
	if ts := timestampRE.FindString(line); ts != "" && p.actor == 'C' {
		r.mu.Lock()
		r.timestamp = ts
		r.mu.Unlock()
	}
	return line, nil
}

// expectEOF reads until the connection closes: what arrives must be a
// prefix of p.maybe.
func (r *transcriptRun) expectEOF(p *peer) error {
	var allowed strings.Builder
	for _, l := range p.maybe {
		allowed.WriteString(l + "\r\n")
	}
	got, err := io.ReadAll(p.r)
	if len(got) > 0 {
		r.note("%c< %q (before the end)", p.actor, got)
	}
	if isTimeout(err) {
		return fmt.Errorf("the connection did not close before the transcript's deadline (got %q)", got)
	}
	if err != nil && !isReset(err) {
		return fmt.Errorf("the connection did not close: %v", err)
	}
	if !strings.HasPrefix(allowed.String(), string(got)) {
		return fmt.Errorf("got %q before the end, want at most a prefix of %q", got, allowed.String())
	}
	return nil
}

// isReset reports a connection closed by a reset.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, net.ErrClosed)
}

// tcpConn returns the TCP connection under c.
func tcpConn(c net.Conn) (*net.TCPConn, bool) {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	tc, ok := c.(*net.TCPConn)
	return tc, ok
}

// pending reports whether bytes from the peer are waiting, in r's buffer
// or in the kernel's, without waiting for any. Over TLS only r's buffer
// counts: the kernel's may hold TLS records that are no data (a session
// ticket, a close_notify).
func pending(r *bufio.Reader, c net.Conn) (bool, error) {
	if r.Buffered() > 0 {
		return true, nil
	}
	if _, isTLS := c.(*tls.Conn); isTLS {
		return false, nil
	}
	tc, ok := tcpConn(c)
	if !ok {
		return false, errors.New("not a TCP connection")
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return false, err
	}
	var n int
	var rerr error
	buf := make([]byte, 1)
	err = raw.Read(func(fd uintptr) bool {
		n, _, rerr = syscall.Recvfrom(int(fd), buf, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return true
	})
	if err != nil {
		return false, err
	}
	if errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK) {
		return false, nil
	}
	return n > 0, rerr
}

// matchLine reports whether got is the line want describes.
func matchLine(want, got string) bool {
	if prefix, ok := strings.CutSuffix(want, "..."); ok {
		return strings.HasPrefix(got, prefix)
	}
	return got == want
}

// expand replaces the ${...} of text.
func (r *transcriptRun) expand(text string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(text, "${")
		if i < 0 {
			b.WriteString(text)
			return b.String(), nil
		}
		j := strings.IndexByte(text[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unterminated ${ in %q", text)
		}
		b.WriteString(text[:i])
		fn, arg, _ := strings.Cut(text[i+2:i+j], ":")
		switch fn {
		case "b64":
			raw, err := unescape(arg)
			if err != nil {
				return "", err
			}
			b.WriteString(base64.StdEncoding.EncodeToString([]byte(raw)))
		case "repeat":
			ns, s, _ := strings.Cut(arg, ":")
			n, err := strconv.Atoi(ns)
			if err != nil {
				return "", fmt.Errorf("${repeat:N:TEXT}: %v", err)
			}
			if s, err = unescape(s); err != nil {
				return "", err
			}
			b.WriteString(strings.Repeat(s, n))
		case "apop":
			r.mu.Lock()
			ts := r.timestamp
			r.mu.Unlock()
			if ts == "" {
				return "", errors.New("${apop:...}: the client has read no timestamp")
			}
			sum := md5.Sum([]byte(ts + arg))
			b.WriteString(hex.EncodeToString(sum[:]))
		default:
			return "", fmt.Errorf("unknown ${%s:...}", fn)
		}
		text = text[i+j+1:]
	}
}

// unescape decodes Go escapes in s (\r, \n, \x00, \\, ...); other text
// stays as it is.
func unescape(s string) (string, error) {
	var b strings.Builder
	for s != "" {
		v, multibyte, tail, err := strconv.UnquoteChar(s, 0)
		if err != nil {
			return "", fmt.Errorf("bad escape in %q: %v", s, err)
		}
		if v < 256 && !multibyte {
			b.WriteByte(byte(v))
		} else {
			b.WriteRune(v)
		}
		s = tail
	}
	return b.String(), nil
}
