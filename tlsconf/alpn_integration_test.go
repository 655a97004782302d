//go:build integration

package tlsconf_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/miekg/dns"

	"github.com/popgate/popgate/tlsconf"
)

// serveDNS answers every A query with 127.0.0.1 and everything else
// (AAAA, CAA) with an empty answer, over TCP as Pebble's VA asks.
func serveDNS(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &dns.Server{Listener: ln, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		resp := new(dns.Msg).SetReply(req)
		for _, q := range req.Question {
			if q.Qtype == dns.TypeA {
				resp.Answer = append(resp.Answer, &dns.A{
					Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60},
					A:   net.IPv4(127, 0, 0, 1),
				})
			}
		}
		_ = w.WriteMsg(resp)
	})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown(); <-done })
	return ln.Addr().String()
}

// strictPebble is a Pebble instance of the test's own whose VA really
// validates challenges: names resolve to 127.0.0.1 through dnsAddr, HTTP-01
// goes to httpPort and TLS-ALPN-01 to tlsPort.
type strictPebble struct {
	dir, mgmt, apiCA string
}

// startStrictPebble starts Pebble from bin and waits for its "ACME
// directory available" line.
func startStrictPebble(t *testing.T, bin, dnsAddr string, httpPort, tlsPort int) *strictPebble {
	t.Helper()
	work := t.TempDir()
	// Pebble's HTTPS API certificate: a tlsconf self-signed fallback.
	apiState := filepath.Join(work, "api")
	m, err := tlsconf.New(context.Background(), tlsconf.Options{StateDir: apiState, SelfSignedNames: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	m.Close()
	apiCert := filepath.Join(apiState, "selfsigned", "cert.pem")
	apiKey := filepath.Join(apiState, "selfsigned", "key.pem")

	acmeAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	mgmtAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress":           acmeAddr,
		"managementListenAddress": mgmtAddr,
		"certificate":             apiCert,
		"privateKey":              apiKey,
		"httpPort":                httpPort,
		"tlsPort":                 tlsPort,
		"ocspResponderURL":        "",
		"retryAfter":              map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{
			"default": map[string]any{"description": "90 days", "validityPeriod": 7776000},
		},
	}}
	data, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(work, "pebble-config.json")
	if err := os.WriteFile(cfgFile, data, 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PEBBLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", bin, err)
	}
	logs := &syncBuffer{}
	ready := make(chan struct{})
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		signalled := false
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			if !signalled && strings.Contains(sc.Text(), "ACME directory available at") {
				signalled = true
				close(ready)
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-drained
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("strict Pebble log:\n%s", logs.String())
		}
	})
	select {
	case <-ready:
	case <-drained:
		t.Fatalf("Pebble exited during start-up:\n%s", logs.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("Pebble not ready after 20 s:\n%s", logs.String())
	}
	// The line is printed just before Pebble binds its sockets, and nothing
	// announces the binding itself: poll, boundedly, until both accept.
	for _, addr := range []string{acmeAddr, mgmtAddr} {
		waitListening(t, addr)
	}
	return &strictPebble{dir: "https://" + acmeAddr + "/dir", mgmt: "https://" + mgmtAddr, apiCA: apiCert}
}

// waitListening polls addr until it accepts a TCP connection, for at
// most five seconds.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	var err error
	for range 100 {
		var c net.Conn
		if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not accepting connections: %v", addr, err)
}

// logHas reports whether one line of log holds every part.
func logHas(log string, parts ...string) bool {
	for line := range strings.Lines(log) {
		found := true
		for _, p := range parts {
			found = found && strings.Contains(line, p)
		}
		if found {
			return true
		}
	}
	return false
}

// TestACMETLSALPNOnServerListener has a Pebble that really validates
// challenges (HTTP-01 is pointed at a closed port, so TLS-ALPN-01 is what
// succeeds). Manager A obtains its certificate through certmagic's own
// TLS-ALPN solver on the challenge port; then popgate's listener takes that
// port with A's ServerConfig, and Manager B's TLS-ALPN-01 validation is
// answered by that listener, proving RFC 8737 handshakes reach certmagic
// through ServerConfig.
func TestACMETLSALPNOnServerListener(t *testing.T) {
	env := pebbleEnv(t, "PEBBLE_BIN")
	closedHTTP := freePort(t)
	alpnPort := freePort(t)
	pebble := startStrictPebble(t, env["PEBBLE_BIN"], serveDNS(t), closedHTTP, alpnPort)
	roots := pebbleRoot(t, pebble.mgmt, pebble.apiCA)

	newManager := func(domain string, logs *syncBuffer) *tlsconf.Manager {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		m, err := tlsconf.New(ctx, tlsconf.Options{
			ACME: &tlsconf.ACME{
				Domains:     []string{domain},
				Email:       "postmaster@popgate.test",
				Directory:   pebble.dir,
				CAFile:      pebble.apiCA,
				Storage:     t.TempDir(),
				HTTPPort:    freePort(t),
				TLSALPNPort: alpnPort,
				ListenHost:  "127.0.0.1",
				Profile:     "default",
			},
			Logger: hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}),
		})
		if err != nil {
			t.Fatalf("New for %s: %v\nlog:\n%s", domain, err, logs.String())
		}
		t.Cleanup(func() { m.Close() })
		return m
	}

	logsA := &syncBuffer{}
	a := newManager("a.popgate.test", logsA)
	if !strings.Contains(logsA.String(), "authorization finalized") {
		t.Fatalf("A: no authorization finalized; log:\n%s", logsA.String())
	}

	// popgate's listener now owns the TLS-ALPN challenge port.
	ln, err := tls.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", alpnPort), a.ServerConfig())
	if err != nil {
		t.Fatalf("binding the challenge port after A: %v", err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	t.Cleanup(func() { ln.Close() })

	logsB := &syncBuffer{}
	b := newManager("b.popgate.test", logsB)
	if !logHas(logsA.String(), "served key authentication certificate", "server_name=b.popgate.test", "challenge=tls-alpn-01") {
		t.Errorf("B's TLS-ALPN-01 challenge was not answered by A's listener; A's log:\n%s", logsA.String())
	}

	for name, m := range map[string]*tlsconf.Manager{"a.popgate.test": a, "b.popgate.test": b} {
		addr := serveTLS(t, m.ServerConfig())
		handshake(t, addr, &tls.Config{ServerName: name, RootCAs: roots})
	}
}
