//go:build integration

package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fakePassword is the one password fakePOP3 accepts.
const fakePassword = "fake-secret"

// fakePOP3 starts a minimal POP3 server for timing tests: it answers a
// wrong password at once (Dovecot delays failures by a penalty that grows
// with the failures of every test sharing 127.0.0.1), accepts
// fakePassword for any user, and answers everything else +OK. It returns
// its address; it stops at cleanup.
func fakePOP3(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(time.Minute))
				r := bufio.NewReader(c)
				fmt.Fprintf(c, "+OK fake ready\r\n")
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
					switch strings.ToUpper(verb) {
					case "PASS":
						if arg != fakePassword {
							fmt.Fprintf(c, "-ERR [AUTH] invalid login\r\n")
							continue
						}
						fmt.Fprintf(c, "+OK logged in\r\n")
					case "QUIT":
						fmt.Fprintf(c, "+OK bye\r\n")
						return
					default:
						fmt.Fprintf(c, "+OK\r\n")
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// clusterInstance is one popgate of a cluster test: its POP3 listener and
// its metrics address.
type clusterInstance struct {
	*Popgate
	Name    string
	Addr    string
	Metrics string
}

// clusterStart starts popgate instance name with a cluster block on
// redis, an on-accept listener in front of backend (host:port; "" for
// Dovecot A), a metrics listener and the extra HCL.
func clusterStart(t *testing.T, name string, redis *RedisServer, backend, extra string) *clusterInstance {
	t.Helper()
	if backend == "" {
		backend = envValue(t, "POP3_ADDR")
	}
	ci := &clusterInstance{Name: name, Addr: freePort(t), Metrics: freePort(t)}
	cfg := fmt.Sprintf(`
cluster {
  redis    = %q
  instance = %q
}
listener "pop3" {
  address = %q
  backend = "a"
}
backend "a" {
  address = %q
}
metrics {
  address = %q
}
%s`, redis.URL(), name, ci.Addr, backend, ci.Metrics, extra)
	ci.Popgate = startPopgate(t, cfg, ci.Addr, ci.Metrics)
	return ci
}

// clusterHealth is the part of /healthz the cluster tests read.
type clusterHealth struct {
	Status   string   `json:"status"`
	Degraded []string `json:"degraded"`
	Parts    struct {
		Cluster struct {
			Instance string `json:"instance"`
			Redis    string `json:"redis"`
			Fallback string `json:"fallback"`
		} `json:"cluster"`
	} `json:"parts"`
}

// health fetches the instance's /healthz.
func (ci *clusterInstance) health(t *testing.T) (int, clusterHealth) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + ci.Metrics + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	defer resp.Body.Close()
	var h clusterHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatalf("/healthz is not JSON: %v", err)
	}
	return resp.StatusCode, h
}

// waitRedis polls /healthz until the cluster part says redis is want.
func (ci *clusterInstance) waitRedis(t *testing.T, want string) clusterHealth {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, h := ci.health(t)
		if h.Parts.Cluster.Redis == want {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: /healthz still says redis %q, want %q", ci.Name, h.Parts.Cluster.Redis, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// failLogin tries a wrong password for user through addr on a connection
// of its own and returns how long the -ERR took after PASS.
func failLogin(t *testing.T, addr, user string) time.Duration {
	t.Helper()
	c := dialPOP(t, addr)
	defer c.Close()
	if _, err := c.Cmd("USER " + user); err != nil {
		t.Fatalf("USER: %v", err)
	}
	start := time.Now()
	if _, err := c.Cmd("PASS wrong-password"); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	return time.Since(start)
}

// okLogin logs user in through addr with password pass and quits.
func okLogin(t *testing.T, addr, user, pass string) {
	t.Helper()
	c := dialPOP(t, addr)
	defer c.Close()
	if err := c.Login(user, pass); err != nil {
		t.Fatalf("login %s through %s: %v", user, addr, err)
	}
	if _, err := c.Cmd("QUIT"); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
}
