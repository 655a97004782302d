package authhttp

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingService starts an auth service answering with h that counts the
// TCP connections clients open to it; it is closed when the test ends.
func countingService(t *testing.T, h http.HandlerFunc) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

// answerOK answers every request "Auth-Status: OK".
func answerOK(w http.ResponseWriter, _ *http.Request) { w.Header().Set("Auth-Status", "OK") }

// TestPoolRetriesAConnectionTheServiceClosed: a kept-alive connection the
// service closed while it was idle costs the login nothing.
func TestPoolRetriesAConnectionTheServiceClosed(t *testing.T) {
	srv, conns := countingService(t, answerOK)
	c := newClient(t, Options{URL: srv.URL})
	r := &Request{User: "u", Pass: "p"}
	if _, err := c.Authenticate(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	srv.CloseClientConnections() // the service drops its idle connections
	if _, err := c.Authenticate(context.Background(), r); err != nil {
		t.Fatalf("after the service closed the idle connection: %v", err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
}

func TestPoolBasicAuthFromURLAndLargeBody(t *testing.T) {
	srv, conns := countingService(t, func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "svc" || p != "k3y" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Auth-Status", "OK")
		w.Write([]byte(strings.Repeat("x", 10000))) // more than the client reads
	})
	c := newClient(t, Options{URL: "http://svc:k3y@" + strings.TrimPrefix(srv.URL, "http://")})
	for i := 0; i < 2; i++ {
		a, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"})
		if err != nil || !a.OK {
			t.Fatalf("%+v %v", a, err)
		}
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: a connection with an unread body is not reused", n)
	}
}

func TestPoolHTTPS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Auth-Status", "OK")
	}))
	defer srv.Close()
	c := newClient(t, Options{URL: srv.URL})
	if _, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"}); err == nil {
		t.Fatal("a certificate no root signs was accepted")
	}
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	c.pool.tlsConf.RootCAs = roots
	if a, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"}); err != nil || !a.OK {
		t.Fatalf("%+v %v", a, err)
	}
}

func TestPoolIdleConnectionsExpire(t *testing.T) {
	srv, conns := countingService(t, answerOK)
	c := newClient(t, Options{URL: srv.URL})
	c.pool.idleFor = time.Nanosecond
	for i := 0; i < 3; i++ {
		if _, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // older than idleFor: a clock, not a synchronisation
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3 (idle ones expire)", n)
	}
}

// TestPoolBoundsTheAnswerHeader: a service (hostile or broken) that sends
// an endless header gets ErrService once the bound is passed, not a
// login that reads megabytes into memory.
func TestPoolBoundsTheAnswerHeader(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 4096)
		c.Read(buf) // the GET
		io.WriteString(c, "HTTP/1.1 200 OK\r\nAuth-Status: OK\r\nX-Big: ")
		chunk := []byte(strings.Repeat("a", 64<<10))
		for i := 0; i < 256; i++ { // 16 MiB
			if _, err := c.Write(chunk); err != nil {
				return
			}
		}
		io.WriteString(c, "\r\n\r\n")
	}()
	c := newClient(t, Options{URL: "http://" + ln.Addr().String() + "/auth", Timeout: 5 * time.Second})
	a, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"})
	if !errors.Is(err, ErrService) {
		t.Fatalf("an answer with a 16 MiB header: %+v, %v; want ErrService", a, err)
	}
}
