package proxy

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/popgate/popgate/parser"
)

// FuzzSession's oracle: what the client's bytes allow the backend to read.

// fuzzClientLine is one CRLF-terminated line of the client's bytes, as
// the parser frames it.
type fuzzClientLine struct {
	raw    string          // the line without CRLF; "" with ok false when refused
	ok     bool            // the parser returned the line (not ErrBadLine or ErrLineTooLong)
	cmd    *parser.Command // the line parsed as a command, if it does
	logins []fuzzCreds     // credentials a login that completes on this line gives
}

type fuzzCreds struct{ user, pass string }

// fuzzClientLines frames the client's bytes with parser.Reader, as the
// session does (with the larger bound of SASL continuation lines), and
// works out which lines complete a login and with what credentials. The
// credentials are a superset of what the session may use: any earlier
// USER with any later PASS, and every SASL reading of the lines after an
// AUTH.
func fuzzClientLines(client []byte) []fuzzClientLine {
	r := parser.NewReader(bufio.NewReader(bytes.NewReader(client)), maxSASLLine)
	var lines []fuzzClientLine
	for {
		b, err := r.ReadLine()
		if errors.Is(err, parser.ErrBadLine) || errors.Is(err, parser.ErrLineTooLong) {
			lines = append(lines, fuzzClientLine{})
			continue
		}
		if err != nil {
			break // io.EOF, or io.ErrUnexpectedEOF: a last line without CRLF is no line
		}
		l := fuzzClientLine{raw: string(b), ok: true}
		if c, err := parser.ParseCommand(b); err == nil {
			l.cmd = &c
		}
		lines = append(lines, l)
	}
	decode := func(v string) (string, bool) {
		if v == "=" {
			return "", true
		}
		b, err := base64.StdEncoding.DecodeString(v)
		return string(b), err == nil
	}
	// answer returns the SASL response on client line k, decoded.
	answer := func(k int) (string, bool) {
		if k >= len(lines) || !lines[k].ok {
			return "", false
		}
		return decode(lines[k].raw)
	}
	var users []string
	for i := range lines {
		c := lines[i].cmd
		if c == nil {
			continue
		}
		switch {
		case c.Verb == "USER" && len(c.Args) == 1:
			users = append(users, c.Args[0])
		case c.Verb == "PASS" && len(c.Args) == 1:
			for _, u := range users {
				lines[i].logins = append(lines[i].logins, fuzzCreds{u, c.Args[0]})
			}
		case c.Verb == "AUTH" && (len(c.Args) == 1 || len(c.Args) == 2):
			// first is the mechanism's first answer: the initial response
			// on the AUTH line itself, else the next line.
			first, at := "", i+1
			ok := false
			if len(c.Args) == 2 {
				first, ok = decode(c.Args[1])
				at = i
			} else {
				first, ok = answer(i + 1)
			}
			if !ok {
				continue
			}
			switch strings.ToUpper(c.Args[0]) {
			case "PLAIN":
				// Only the authentication identity: a login as another
				// (authorization) identity is never the client's own.
				if p := strings.Split(first, "\x00"); len(p) == 3 {
					lines[at].logins = append(lines[at].logins, fuzzCreds{p[1], p[2]})
				}
			case "LOGIN":
				if p, ok := answer(at + 1); ok {
					lines[at+1].logins = append(lines[at+1].logins, fuzzCreds{first, p})
				}
			}
		}
	}
	return lines
}

// checkFuzzSession returns what is wrong with the backend's view of the
// session, or "".
func checkFuzzSession(mode fuzzMode, client []byte, got []fuzzLine, stlsAt int, timestamp string) string {
	cl := fuzzClientLines(client)
	next := 0 // the first client line the next backend line may come from
	quit := false
	conn := -1
	loginLeft := false // after-auth: this connection's login is still to come
	skip := 0          // login lines already checked
	for i, l := range got {
		if l.framing != "" {
			return fmt.Sprintf("backend line %d %q: %s", i, l.raw, l.framing)
		}
		if quit {
			return fmt.Sprintf("backend line %d %q arrived after QUIT", i, l.raw)
		}
		if stlsAt >= 0 && i >= stlsAt {
			return fmt.Sprintf("backend line %d %q arrived after the client was told to begin TLS", i, l.raw)
		}
		if l.conn != conn {
			conn = l.conn
			loginLeft, skip = mode&fuzzAfterAuth != 0, 0
		}
		switch {
		case skip > 0:
			skip-- // the PASS of a USER+PASS login, checked with its USER
		case loginLeft:
			loginLeft = false
			j, n, msg := matchFuzzLogin(mode, cl, next, got, i, timestamp)
			if msg != "" {
				return fmt.Sprintf("backend line %d %q: %s", i, l.raw, msg)
			}
			skip = n - 1
			next = j + 1
		case l.kind == kindSASL:
			if l.raw == "*" {
				continue // popgate cancels a SASL exchange with "*"
			}
			j := next
			for j < len(cl) && !(cl[j].ok && cl[j].raw == l.raw) {
				j++
			}
			if j == len(cl) {
				return fmt.Sprintf("backend SASL line %d %q is no client line at or after client line %d", i, l.raw, next)
			}
			next = j + 1
		default:
			j := next
			for j < len(cl) && !(cl[j].cmd != nil && cl[j].cmd.String() == l.raw) {
				j++
			}
			if j == len(cl) {
				if l.raw == "QUIT" {
					return fmt.Sprintf("backend line %d: QUIT reached the backend without a client QUIT at or after client line %d", i, next)
				}
				return fmt.Sprintf("backend line %d %q is not a command parsed from a client line at or after client line %d (in order)", i, l.raw, next)
			}
			next = j + 1
			quit = l.raw == "QUIT"
		}
	}
	return ""
}

// matchFuzzLogin checks that backend line i opens an after-auth connection
// with the login popgate is documented to send, for credentials the client
// gave on a line at or after client line next. It returns that client line
// and how many backend lines the login took.
func matchFuzzLogin(mode fuzzMode, cl []fuzzClientLine, next int, got []fuzzLine, i int, timestamp string) (int, int, string) {
	l := got[i]
	var ok func(c fuzzCreds) bool
	n := 1
	verb, arg, _ := strings.Cut(l.raw, " ")
	switch {
	case mode&(fuzzMaster|fuzzLoginPlain) != 0:
		v, isPlain := strings.CutPrefix(l.raw, "AUTH PLAIN ")
		raw, err := base64.StdEncoding.DecodeString(v)
		p := strings.Split(string(raw), "\x00")
		if !isPlain || err != nil || len(p) != 3 {
			return 0, 0, "want AUTH PLAIN with an initial response as the backend login"
		}
		if mode&fuzzMaster != 0 {
			if p[1] != fuzzMasterUser || p[2] != fuzzMasterPassword {
				return 0, 0, "master login with the wrong master credentials"
			}
			ok = func(c fuzzCreds) bool { return c.user == p[0] && c.pass == fuzzVerifiedPass }
		} else {
			if p[0] != "" {
				return 0, 0, "AUTH PLAIN login with an authorization identity"
			}
			ok = func(c fuzzCreds) bool { return c.user == p[1] && c.pass == p[2] }
		}
	case mode&fuzzLoginAPOP != 0:
		user, digest, _ := strings.Cut(arg, " ")
		if verb != "APOP" {
			return 0, 0, "want APOP as the backend login"
		}
		ok = func(c fuzzCreds) bool {
			sum := md5.Sum([]byte(timestamp + c.pass))
			return c.user == user && hex.EncodeToString(sum[:]) == digest
		}
	default:
		user, hasUser := strings.CutPrefix(l.raw, "USER ")
		if !hasUser {
			return 0, 0, "want USER as the backend login"
		}
		pass, hasPass := "", false
		if i+1 < len(got) && got[i+1].conn == l.conn {
			pass, hasPass = strings.CutPrefix(got[i+1].raw, "PASS ")
			if !hasPass {
				return 0, 0, "want PASS after the login's USER"
			}
			n = 2
		}
		ok = func(c fuzzCreds) bool { return c.user == user && (!hasPass || c.pass == pass) }
	}
	for j := next; j < len(cl); j++ {
		for _, c := range cl[j].logins {
			if ok(c) {
				return j, n, ""
			}
		}
	}
	if mode&fuzzMaster != 0 {
		return 0, 0, fmt.Sprintf("master login for a client whose password was not verified (no verified credentials at or after client line %d)", next)
	}
	return 0, 0, fmt.Sprintf("backend login with credentials no client PASS or AUTH gave at or after client line %d", next)
}

// TestFuzzSessionOracle checks FuzzSession's own checks: they pass real
// sessions and catch each violation they are meant to catch.
func TestFuzzSessionOracle(t *testing.T) {
	raws := func(ls []fuzzLine) []string {
		var out []string
		for _, l := range ls {
			out = append(out, l.raw)
		}
		return out
	}
	plain := func(authz, authc, pw string) string {
		return "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte(authz+"\x00"+authc+"\x00"+pw))
	}
	t.Run("live", func(t *testing.T) {
		for _, tc := range []struct {
			mode   fuzzMode
			client string
			want   []string
		}{
			{0, "user a\r\nPASS secret\r\nNOOP\nDELE 1\r\nDELE 2\r\nQUIT\r\n", []string{"USER a", "PASS secret", "DELE 2", "QUIT"}},
			{fuzzFilter, "USER a\r\nPASS secret\r\nRETR 1\r\nDELE 1\r\n", []string{"USER a", "PASS secret", "RETR 1", "DELE 1"}},
			{fuzzAfterAuth, "USER a\r\nPASS secret\r\nDELE 1\r\nQUIT\r\n", []string{"USER a", "PASS secret", "DELE 1", "QUIT"}},
			{fuzzAfterAuth | fuzzLoginPlain, "AUTH LOGIN YWxpY2U=\r\nc2VjcmV0\r\nQUIT\r\n", []string{plain("", "alice", "secret"), "QUIT"}},
			{fuzzMaster, "USER alice\r\nPASS wrong\r\nUSER alice\r\nPASS secret\r\nSTAT\r\n",
				[]string{plain("alice", fuzzMasterUser, fuzzMasterPassword), "STAT"}},
			{0, "AUTH PLAIN\r\nnot base64!\r\nAUTH PLAIN\r\nAGFsaWNlAHNlY3JldA==\r\nQUIT\r\n",
				[]string{"AUTH PLAIN", "*", "AUTH PLAIN", "AGFsaWNlAHNlY3JldA==", "QUIT"}},
		} {
			got := raws(runFuzzSession(t, tc.mode, []byte(tc.client)))
			if strings.Join(got, "|") != strings.Join(tc.want, "|") {
				t.Errorf("mode %v, client %q: backend read %q, want %q", tc.mode, tc.client, got, tc.want)
			}
		}
	})
	cmd := func(conn int, raw string) fuzzLine { return fuzzLine{conn: conn, kind: kindCommand, raw: raw} }
	for _, tc := range []struct {
		name   string
		mode   fuzzMode
		client string
		got    []fuzzLine
		stlsAt int
	}{
		{"not sent", 0, "USER a\r\nPASS secret\r\n", []fuzzLine{cmd(0, "USER a"), cmd(0, "PASS secret"), cmd(0, "DELE 1")}, -1},
		{"smuggled", 0, "NOOP\nDELE 1\r\n", []fuzzLine{cmd(0, "DELE 1")}, -1},
		{"out of order", 0, "DELE 1\r\nDELE 2\r\n", []fuzzLine{cmd(0, "DELE 2"), cmd(0, "DELE 1")}, -1},
		{"quit without client quit", 0, "DELE 1\r\nQUIT", []fuzzLine{cmd(0, "DELE 1"), cmd(0, "QUIT")}, -1},
		{"after quit", 0, "QUIT\r\nDELE 1\r\n", []fuzzLine{cmd(0, "QUIT"), cmd(1, "DELE 1")}, -1},
		{"bare LF", 0, "NOOP\r\n", []fuzzLine{{kind: kindCommand, raw: "NOOP", framing: "line ends in a bare LF"}}, -1},
		{"after STLS", 0, "NOOP\r\nSTLS\r\nNOOP\r\n", []fuzzLine{cmd(0, "NOOP"), cmd(0, "NOOP")}, 1},
		{"SASL line not sent", 0, "AUTH PLAIN\r\n", []fuzzLine{cmd(0, "AUTH PLAIN"), {kind: kindSASL, raw: "AGFsaWNlAHNlY3JldA=="}}, -1},
		{"invented login", fuzzAfterAuth, "USER a\r\nPASS secret\r\n", []fuzzLine{cmd(0, "USER b"), cmd(0, "PASS secret")}, -1},
		{"login before PASS", fuzzAfterAuth, "USER a\r\nNOOP\r\n", []fuzzLine{cmd(0, "USER a"), cmd(0, "PASS x")}, -1},
		{"unverified master", fuzzMaster, "USER alice\r\nPASS wrong\r\n",
			[]fuzzLine{cmd(0, plain("alice", fuzzMasterUser, fuzzMasterPassword))}, -1},
		{"foreign authzid", fuzzMaster, "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("bob\x00alice\x00secret")) + "\r\n",
			[]fuzzLine{cmd(0, plain("bob", fuzzMasterUser, fuzzMasterPassword))}, -1},
	} {
		if msg := checkFuzzSession(tc.mode, []byte(tc.client), tc.got, tc.stlsAt, "<1.2@fuzz>"); msg == "" {
			t.Errorf("%s: not caught", tc.name)
		}
	}
}
