package main

import (
	"fmt"
	"strings"
)

// idleHold is the idle sessions the concurrent scenario keeps open through
// a target while its active sessions run (-idle): each read its greeting
// and then sits in the AUTHORIZATION state, as a client that connected
// and waits would. The round owns it: open before the logins, probe
// after the measured time, close at the end.
type idleHold struct {
	conns []*conn
}

// openIdle opens n idle sessions to addr, par at a time.
func openIdle(d *dialer, addr string, n, par int) (*idleHold, error) {
	h := &idleHold{conns: make([]*conn, n)}
	if err := forEach(n, par, func(k int) error {
		c, err := d.dial(addr)
		if err != nil {
			return err
		}
		h.conns[k] = c
		return nil
	}); err != nil {
		h.close()
		return nil, fmt.Errorf("opening %d idle sessions: %w", n, err)
	}
	return h, nil
}

// probe sends CAPA (RFC 2449, valid in every state) on every idle session
// and reads the answer, proving that each is still open and answered.
func (h *idleHold) probe(par int) error {
	if err := forEach(len(h.conns), par, func(k int) error { return probeCAPA(h.conns[k]) }); err != nil {
		return fmt.Errorf("probing idle sessions: %w", err)
	}
	return nil
}

// close closes every idle session; a nil hold is valid.
func (h *idleHold) close() {
	if h == nil {
		return
	}
	for _, c := range h.conns {
		if c != nil {
			c.close()
		}
	}
}

// idleTargets parses -idle-targets: the comma-separated target names that
// get idle sessions; "" means every target.
func idleTargets(list string, targets []target) (map[string]bool, error) {
	m := map[string]bool{}
	if list == "" {
		for _, t := range targets {
			m[t.Name] = true
		}
		return m, nil
	}
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, t := range targets {
			found = found || t.Name == name
		}
		if !found {
			return nil, fmt.Errorf("-idle-targets names %q, which is no -target", name)
		}
		m[name] = true
	}
	return m, nil
}
