package authhttp

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// service is an httptest auth_http service: answer decides the headers of
// each answer; every request's headers are recorded.
type service struct {
	*httptest.Server
	mu     sync.Mutex
	seen   []http.Header
	answer func(h http.Header) map[string]string
}

func newService(t *testing.T, answer func(h http.Header) map[string]string) *service {
	t.Helper()
	s := &service{answer: answer}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, r.Header.Clone())
		s.mu.Unlock()
		for k, v := range s.answer(r.Header) {
			w.Header().Set(k, v)
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *service) requests() []http.Header {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]http.Header(nil), s.seen...)
}

func okAnswer(http.Header) map[string]string {
	return map[string]string{"Auth-Status": "OK", "Auth-Server": "127.0.0.1", "Auth-Port": "110"}
}

func newClient(t *testing.T, o Options) *Client {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

func TestRequestHeaders(t *testing.T) {
	svc := newService(t, okAnswer)
	c := newClient(t, Options{URL: svc.URL + "/auth", Headers: map[string]string{"X-Auth-Key": "k3y", "Auth-Method": "forged"}})
	_, err := c.Authenticate(context.Background(), &Request{
		Method: MethodPlain, User: "alice smith@example.com", Pass: "p%ss w+rd\x01é",
		Attempt: 2, ClientIP: netip.MustParseAddr("192.0.2.7"), TLS: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := svc.requests()[0]
	want := map[string]string{
		"Auth-Method":        "plain",
		"Auth-User":          "alice%20smith@example.com",
		"Auth-Pass":          "p%25ss%20w+rd%01%C3%A9",
		"Auth-Protocol":      "pop3",
		"Auth-Login-Attempt": "2",
		"Client-Ip":          "192.0.2.7",
		"Client-Host":        "[UNAVAILABLE]",
		"Auth-Ssl":           "on",
		"X-Auth-Key":         "k3y",
	}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	if h.Get("Auth-Salt") != "" {
		t.Errorf("Auth-Salt sent for plain: %q", h.Get("Auth-Salt"))
	}
}

func TestRequestSaltForDigests(t *testing.T) {
	svc := newService(t, func(http.Header) map[string]string {
		return map[string]string{"Auth-Status": "OK", "Auth-Server": "127.0.0.1", "Auth-Port": "110", "Auth-Pass": "secret"}
	})
	c := newClient(t, Options{URL: svc.URL})
	for _, m := range []Method{MethodAPOP, MethodCRAMMD5} {
		a, err := c.Authenticate(context.Background(), &Request{Method: m, User: "bob", Pass: "c4c9334bac560ecc979e58001b3e22fb",
			Salt: "<1896.697170952@dbc.mtview.ca.us>"})
		if err != nil {
			t.Fatal(err)
		}
		if !a.HasPass || a.Pass != "secret" {
			t.Errorf("%s: Auth-Pass %q %v", m, a.Pass, a.HasPass)
		}
	}
	for i, h := range svc.requests() {
		if h.Get("Auth-Salt") != "<1896.697170952@dbc.mtview.ca.us>" || h.Get("Auth-Pass") != "c4c9334bac560ecc979e58001b3e22fb" {
			t.Errorf("request %d: salt %q pass %q", i, h.Get("Auth-Salt"), h.Get("Auth-Pass"))
		}
	}
	if m := svc.requests()[1].Get("Auth-Method"); m != "cram-md5" {
		t.Errorf("Auth-Method %q", m)
	}
}

func TestEscape(t *testing.T) {
	for in, want := range map[string]string{
		"plain":     "plain",
		"a b":       "a%20b",
		"100%":      "100%25",
		"a+b=c&d?":  "a+b=c&d?",
		"\x00\x1f":  "%00%1F",
		"\x7f":      "%7F",
		"ü":         "%C3%BC",
		"tab\there": "tab%09here",
	} {
		if got := Escape(in); got != want {
			t.Errorf("Escape(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAnswerSemantics(t *testing.T) {
	for _, tc := range []struct {
		name    string
		method  Method
		headers map[string]string
		check   func(t *testing.T, a *Answer)
		wantErr bool
	}{
		{name: "ok with routing and login", headers: map[string]string{"Auth-Status": "OK", "Auth-Server": "10.0.0.5",
			"Auth-Port": "110", "Auth-User": "alice@b", "Auth-Pass": "pw with space"},
			check: func(t *testing.T, a *Answer) {
				if !a.OK || a.Server != "10.0.0.5" || a.Port != 110 || a.User != "alice@b" || a.Pass != "pw with space" || !a.HasPass {
					t.Errorf("%+v", a)
				}
			}},
		{name: "ok without server", headers: map[string]string{"Auth-Status": "OK"},
			check: func(t *testing.T, a *Answer) {
				if !a.OK || a.Server != "" || a.Port != 0 || a.HasPass {
					t.Errorf("%+v", a)
				}
			}},
		{name: "refusal with wait, SMTP error code ignored", headers: map[string]string{"Auth-Status": "Invalid login or password",
			"Auth-Wait": "3", "Auth-Error-Code": "535 5.7.8"},
			check: func(t *testing.T, a *Answer) {
				if a.OK || a.Status != "Invalid login or password" || a.Wait != 3*time.Second {
					t.Errorf("%+v", a)
				}
			}},
		{name: "bad wait ignored", headers: map[string]string{"Auth-Status": "no", "Auth-Wait": "soon"},
			check: func(t *testing.T, a *Answer) {
				if a.OK || a.Wait != 0 {
					t.Errorf("%+v", a)
				}
			}},
		{name: "huge wait capped", headers: map[string]string{"Auth-Status": "no", "Auth-Wait": "99999"},
			check: func(t *testing.T, a *Answer) {
				if a.Wait != MaxWait {
					t.Errorf("%+v", a)
				}
			}},
		{name: "no status", headers: map[string]string{"Auth-Server": "10.0.0.5", "Auth-Port": "110"}, wantErr: true},
		{name: "empty status", headers: map[string]string{"Auth-Status": " "}, wantErr: true},
		{name: "bad port", headers: map[string]string{"Auth-Status": "OK", "Auth-Server": "10.0.0.5", "Auth-Port": "70000"}, wantErr: true},
		{name: "port not a number", headers: map[string]string{"Auth-Status": "OK", "Auth-Server": "10.0.0.5", "Auth-Port": "pop3"}, wantErr: true},
		{name: "user with space", headers: map[string]string{"Auth-Status": "OK", "Auth-User": "a b"}, wantErr: true},
		{name: "apop ok without pass", method: MethodAPOP, headers: map[string]string{"Auth-Status": "OK"}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := newService(t, func(http.Header) map[string]string { return tc.headers })
			c := newClient(t, Options{URL: svc.URL})
			m := tc.method
			if m == "" {
				m = MethodPlain
			}
			a, err := c.Authenticate(context.Background(), &Request{Method: m, User: "u", Pass: "p", Salt: "<1.2@h>"})
			if tc.wantErr {
				if !errors.Is(err, ErrService) {
					t.Fatalf("err %v, want ErrService", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, a)
		})
	}
}

func TestHTTPStatusIgnoredAsNginx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Auth-Status", "Account locked")
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv.Close()
	a, err := newClient(t, Options{URL: srv.URL}).Authenticate(context.Background(), &Request{User: "u", Pass: "p"})
	if err != nil || a.OK || a.Status != "Account locked" {
		t.Fatalf("%+v %v", a, err)
	}
}

func TestServiceDownAndErrorsDoNotLeakSecrets(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	u := "http://user:urlsecret@" + strings.TrimPrefix(srv.URL, "http://") + "/auth?key=querysecret"
	srv.Close() // down
	c := newClient(t, Options{URL: u, Headers: map[string]string{"X-Key": "hdrsecret"}})
	_, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "passsecret"})
	if !errors.Is(err, ErrService) {
		t.Fatalf("err %v, want ErrService", err)
	}
	for _, s := range []string{"urlsecret", "querysecret", "hdrsecret", "passsecret"} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q leaks %s", err, s)
		}
	}
	if strings.Contains(c.URL(), "urlsecret") || strings.Contains(c.URL(), "querysecret") {
		t.Errorf("URL() %q leaks", c.URL())
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := newClient(t, Options{URL: srv.URL, Timeout: 100 * time.Millisecond})
	start := time.Now()
	_, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"})
	if !errors.Is(err, ErrService) {
		t.Fatalf("err %v, want ErrService", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("took %s with a 100ms timeout", d)
	}
}

func TestInFlightBound(t *testing.T) {
	var inflight, peak atomic.Int32
	gate := make(chan struct{})
	arrived := make(chan struct{}, 100)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inflight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-gate
		inflight.Add(-1)
		w.Header().Set("Auth-Status", "OK")
	}))
	defer srv.Close()
	c := newClient(t, Options{URL: srv.URL, MaxInFlight: 3, Timeout: 10 * time.Second})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"}); err != nil {
				t.Error(err)
			}
		}()
	}
	for i := 0; i < 3; i++ {
		<-arrived
	}
	select {
	case <-arrived:
		t.Fatal("a fourth request reached the service while 3 were in flight")
	case <-time.After(200 * time.Millisecond): // nothing more may arrive: an absence has no signal
	}
	close(gate)
	wg.Wait()
	if p := peak.Load(); p > 3 {
		t.Fatalf("peak %d requests in flight, bound 3", p)
	}
}

func TestKeepAlive(t *testing.T) {
	srv, conns := countingService(t, answerOK)
	c := newClient(t, Options{URL: srv.URL})
	for i := 0; i < 20; i++ {
		if _, err := c.Authenticate(context.Background(), &Request{User: "u", Pass: "p"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 20 sequential requests, want 1 (keep-alive)", n)
	}
}

func TestWaitStatusRetries(t *testing.T) {
	var n atomic.Int32
	svc := newService(t, func(http.Header) map[string]string {
		if n.Add(1) == 1 {
			return map[string]string{"Auth-Status": "WAIT", "Auth-Wait": "0"}
		}
		return map[string]string{"Auth-Status": "OK"}
	})
	a, err := newClient(t, Options{URL: svc.URL}).Authenticate(context.Background(), &Request{User: "u", Pass: "p"})
	if err != nil || !a.OK || n.Load() != 2 {
		t.Fatalf("%+v %v after %d requests", a, err, n.Load())
	}
	always := newService(t, func(http.Header) map[string]string { return map[string]string{"Auth-Status": "WAIT"} })
	if _, err := newClient(t, Options{URL: always.URL}).Authenticate(context.Background(), &Request{User: "u", Pass: "p"}); !errors.Is(err, ErrService) {
		t.Fatalf("endless WAIT: %v, want ErrService", err)
	}
}

func TestNewRefusesBadURL(t *testing.T) {
	for _, u := range []string{"", "ftp://h/x", "127.0.0.1:9000/auth", "http:///auth", "http://[::1/"} {
		if _, err := New(Options{URL: u}); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
}
