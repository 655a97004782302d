package proxy

import (
	"strings"
	"testing"
)

// TestBackendLoginSendsPassOnlyAfterUser checks that the USER/PASS login
// to a backend waits for USER's answer before PASS: a backend that
// refuses the user never receives the password, and the client gets
// [AUTH]. (Sending both at once also made Dovecot's two small answers
// meet Nagle's algorithm and a delayed ACK: 40 ms per login.)
func TestBackendLoginSendsPassOnlyAfterUser(t *testing.T) {
	be := newScriptBackend(t, func(bc *scriptConn) {
		bc.send("+OK ready")
		for {
			l, err := bc.readLine()
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(l, "USER nobody"):
				bc.send("-ERR no such user")
			case strings.HasPrefix(l, "USER"), strings.HasPrefix(l, "PASS"):
				bc.send("+OK")
			case l == "QUIT":
				bc.send("+OK bye")
				return
			}
		}
	})
	_, addr := startProxy(t, be.addr(), func(c *Config) { c.Listeners[0].Connect = ConnectAfterAuth })
	c := dialClient(t, addr)
	c.expect("+OK")
	c.send("USER nobody\r\nPASS secret-one\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH]")
	c.send("USER alice\r\nPASS secret-two\r\nQUIT\r\n")
	c.expect("+OK")
	c.expect("+OK")
	c.expect("+OK")
	be.waitEnd()
	be.waitEnd()
	for _, l := range be.received() {
		if strings.Contains(l, "secret-one") {
			t.Errorf("the backend that refused the user got %q", l)
		}
	}
	if got := strings.Join(be.received(), "|"); !strings.Contains(got, "USER alice|PASS secret-two") {
		t.Errorf("backend lines %q, want alice's USER then PASS", got)
	}
}
