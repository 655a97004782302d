package proxy

import (
	"net"
	"testing"
	"time"
)

// retiredSignal returns a Retired func and a channel closed when it runs;
// a second call fails the test.
func retiredSignal(t *testing.T) (func(), chan struct{}) {
	ch := make(chan struct{})
	return func() {
		select {
		case <-ch:
			t.Error("Retired called twice")
		default:
			close(ch)
		}
	}, ch
}

func waitRetired(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s not retired", what)
	}
}

func notRetired(t *testing.T, ch chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
		t.Fatalf("%s retired while still in use", what)
	default:
	}
}

// TestReloadRetiresAfterLastSession: a configuration replaced by Reload is
// retired (its filters may close) only when its last session has ended; a
// refused Reload retires nothing and keeps the running configuration.
func TestReloadRetiresAfterLastSession(t *testing.T) {
	fb := newFakeBackend(t)
	ret1, ch1 := retiredSignal(t)
	srv, addr := startProxy(t, fb.addr(), func(c *Config) { c.Retired = ret1 })
	cfg1 := srv.cfg.Load()

	old := dialClient(t, addr)
	old.expect("+OK")

	cfg2 := *cfg1
	ret2, ch2 := retiredSignal(t)
	cfg2.Retired = ret2
	if err := srv.Reload(&cfg2); err != nil {
		t.Fatal(err)
	}
	notRetired(t, ch1, "the configuration of an open session")
	newer := dialClient(t, addr)
	newer.expect("+OK")

	old.send("QUIT\r\n")
	old.expect("+OK")
	waitRetired(t, ch1, "the replaced configuration after its last session")

	// Refused: a new listener on a port already in use.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg3 := cfg2
	ret3, ch3 := retiredSignal(t)
	cfg3.Retired = ret3
	cfg3.Listeners = append(append([]Listener{}, cfg2.Listeners...), Listener{Name: "busy", Address: busy.Addr().String(), Backend: "b"})
	if err := srv.Reload(&cfg3); err == nil {
		t.Fatal("Reload onto a port in use succeeded")
	}
	newer.send("QUIT\r\n")
	newer.expect("+OK")
	fb.waitEnd()
	fb.waitEnd()
	notRetired(t, ch2, "the configuration still in force after a refused reload")
	notRetired(t, ch3, "a refused configuration")
	if srv.cfg.Load() != &cfg2 {
		t.Fatal("a refused reload changed the running configuration")
	}

	// A replaced configuration with no sessions is retired at once.
	cfg4 := cfg2
	cfg4.Retired = nil
	if err := srv.Reload(&cfg4); err != nil {
		t.Fatal(err)
	}
	waitRetired(t, ch2, "an unused replaced configuration")
}
