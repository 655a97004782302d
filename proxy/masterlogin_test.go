package proxy

import (
	"strings"
	"sync"
	"testing"

	"github.com/popgate/popgate/filters"
)

// masterBackend is a backend that accepts any AUTH PLAIN and records the
// decoded PLAIN responses; its scriptBackend counts the connections.
type masterBackend struct {
	be     *scriptBackend
	mu     sync.Mutex
	plains []string
}

func (mb *masterBackend) start(t *testing.T) string {
	mb.be = newScriptBackend(t, func(bc *scriptConn) {
		bc.send("+OK master-capable backend ready")
		for {
			line, err := bc.readLine()
			if err != nil {
				return
			}
			verb, arg, _ := strings.Cut(line, " ")
			switch strings.ToUpper(verb) {
			case "AUTH":
				_, ir, _ := strings.Cut(arg, " ")
				raw, _ := b64decode(ir)
				mb.mu.Lock()
				mb.plains = append(mb.plains, raw)
				mb.mu.Unlock()
				bc.send("+OK logged in")
			case "STAT":
				bc.send("+OK 1 10")
			case "QUIT":
				bc.send("+OK bye")
				return
			default:
				bc.send("-ERR unknown")
			}
		}
	})
	return mb.be.addr()
}

func (mb *masterBackend) seen() (conns int, plains []string) {
	mb.mu.Lock()
	defer mb.mu.Unlock()
	return mb.be.connections(), append([]string(nil), mb.plains...)
}

// startMasterProxy runs an after-auth listener in front of a master-login
// backend, with the given filters.
func startMasterProxy(t *testing.T, backend string, fs ...filters.Filter) string {
	_, addr := startProxy(t, backend, func(c *Config) {
		c.Listeners[0].Connect = ConnectAfterAuth
		c.Listeners[0].Filters = fs
		b := c.Backends["b"]
		b.Login, b.MasterUser, b.MasterPassword = LoginSASLPlain, "master", "mpw"
	})
	return addr
}

func TestMasterLoginNeedsVerifiedPassword(t *testing.T) {
	verifier := secretsVerifier{"alice": "right", "bob": "bobpw"}
	for _, tc := range []struct {
		name   string
		script []string // client lines after the greeting
		want   []string // answer prefixes, in order
		plain  string   // PLAIN the backend must see, "" for no login at all
	}{
		{"user/pass right", []string{"USER alice", "PASS right"}, []string{"+OK", "+OK logged in"}, "alice\x00master\x00mpw"},
		{"user/pass wrong", []string{"USER alice", "PASS totally-wrong"}, []string{"+OK", "-ERR [AUTH]"}, ""},
		{"user/pass missing", []string{"USER alice", "PASS "}, []string{"+OK", "-ERR"}, ""},
		{"unknown user", []string{"USER mallory", "PASS right"}, []string{"+OK", "-ERR [AUTH]"}, ""},
		{"plain empty authzid wrong password", []string{"AUTH PLAIN " + b64("\x00bob\x00x")}, []string{"-ERR [AUTH]"}, ""},
		{"plain foreign authzid", []string{"AUTH PLAIN " + b64("bob\x00alice\x00right")}, []string{"-ERR [AUTH]"}, ""},
		{"plain right", []string{"AUTH PLAIN " + b64("\x00bob\x00bobpw")}, []string{"+OK logged in"}, "bob\x00master\x00mpw"},
		{"login wrong", []string{"AUTH LOGIN", b64("alice"), b64("nope")}, []string{"+ ", "+ ", "-ERR [AUTH]"}, ""},
		{"login right", []string{"AUTH LOGIN", b64("alice"), b64("right")}, []string{"+ ", "+ ", "+OK logged in"}, "alice\x00master\x00mpw"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mb := &masterBackend{}
			c := dialClient(t, startMasterProxy(t, mb.start(t), verifier))
			c.expect("+OK")
			for i, line := range tc.script {
				c.send(line + "\r\n")
				c.expect(tc.want[i])
			}
			conns, plains := mb.seen()
			if tc.plain == "" {
				if conns != 0 || len(plains) != 0 {
					t.Fatalf("backend contacted for an unverified login: %d connections, PLAIN %q", conns, plains)
				}
				return
			}
			if len(plains) != 1 || plains[0] != tc.plain {
				t.Fatalf("backend PLAIN logins %q, want [%q]", plains, tc.plain)
			}
			c.send("STAT\r\n")
			c.expect("+OK 1 10")
		})
	}
}

func TestMasterLoginWithoutVerifierIsRefused(t *testing.T) {
	mb := &masterBackend{}
	c := dialClient(t, startMasterProxy(t, mb.start(t)))
	c.expect("+OK")
	c.send("USER alice\r\nPASS anything\r\n")
	c.expect("+OK")
	c.expect("-ERR [AUTH]")
	if conns, plains := mb.seen(); conns != 0 || len(plains) != 0 {
		t.Fatalf("master login without a verifier reached the backend: %d connections, %q", conns, plains)
	}
}

func TestBackendLoginRefusesMasterForUnprovenClient(t *testing.T) {
	be := &Backend{Login: LoginSASLPlain, MasterUser: "master", MasterPassword: "mpw"}
	for _, pf := range []proof{unproven, byBackend} {
		bc := &backendConn{} // never written to: the refusal comes first
		if _, err := bc.login(be, "alice", "x", pf); err != errUnproven {
			t.Fatalf("login with proof %v: error %v, want errUnproven", pf, err)
		}
	}
}
