package main

import (
	"testing"

	"github.com/popgate/popgate/proxy"
)

// TestPoolHealth: the "pools" part of /healthz lists only backends with
// servers, says ok, degraded or down per pool, and is not OK as soon as
// one server is down.
func TestPoolHealth(t *testing.T) {
	up := func(b, s string) proxy.ServerStatus {
		return proxy.ServerStatus{Backend: b, Pool: true, Server: s, Up: true}
	}
	down := func(b, s string) proxy.ServerStatus { return proxy.ServerStatus{Backend: b, Pool: true, Server: s} }
	single := proxy.ServerStatus{Backend: "local", Server: "127.0.0.1:110"} // down, but not a pool

	p := poolHealth([]proxy.ServerStatus{up("mail", "a:1"), up("mail", "b:1"), single})
	pools := p.Detail.(map[string]*poolReport)
	if !p.OK || len(pools) != 1 || pools["mail"].Status != "ok" || pools["mail"].Up != 2 {
		t.Errorf("all up: %+v %+v", p, pools["mail"])
	}
	p = poolHealth([]proxy.ServerStatus{up("mail", "a:1"), down("mail", "b:1"), down("old", "c:1")})
	pools = p.Detail.(map[string]*poolReport)
	if p.OK || pools["mail"].Status != "degraded" || pools["old"].Status != "down" || pools["old"].Up != 0 {
		t.Errorf("some down: %+v mail %+v old %+v", p, pools["mail"], pools["old"])
	}
}
