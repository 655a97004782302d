//go:build integration

package integration

// ACME with the certificates in Redis, against a Pebble that really
// validates: two instances started at once place one order and serve one
// certificate, and a challenge is answered by the instance that did not
// place the order.

import (
	"net"
	"strings"
	"testing"
)

func TestClusterACMEOneOrderSameCertificate(t *testing.T) {
	r := startRedis(t)
	p := startValidatingPebble(t)
	fake := fakePOP3(t) // the TLS listeners need a backend; Dovecot plays no part
	const domain = "pop.cluster.test"
	pointDNS(t, domain, clusterAddrTwo)
	addrs := []string{net.JoinHostPort(clusterAddrOne, cpPOPSPort), net.JoinHostPort(clusterAddrTwo, cpPOPSPort)}
	startTogether(t, []string{
		acmeInstanceConfig(t, p, r, "pg-a", clusterAddrOne, domain, fake),
		acmeInstanceConfig(t, p, r, "pg-b", clusterAddrTwo, domain, fake),
	}, addrs)
	if n := p.orders(); n != 1 {
		t.Fatalf("Pebble received %d orders from two instances sharing Redis, want 1", n)
	}
	roots := p.roots(t)
	one, two := servedLeaf(t, addrs[0], domain, roots), servedLeaf(t, addrs[1], domain, roots)
	if one.SerialNumber.Cmp(two.SerialNumber) != 0 {
		t.Fatalf("the instances serve different certificates: serials %x and %x", one.SerialNumber, two.SerialNumber)
	}
	if keys := r.Cli("ZCOUNT", "popgate:acme:index", "-inf", "+inf"); keys == "0" {
		t.Fatal("no ACME keys in Redis")
	}
	// Redis gone: the certificates already loaded keep being served.
	r.Kill()
	for _, addr := range addrs {
		if leaf := servedLeaf(t, addr, domain, roots); leaf.SerialNumber.Cmp(one.SerialNumber) != 0 {
			t.Fatalf("%s serves serial %x with Redis down, want %x", addr, leaf.SerialNumber, one.SerialNumber)
		}
	}
}

func TestClusterACMEChallengeAnsweredByTheOtherInstance(t *testing.T) {
	r := startRedis(t)
	p := startValidatingPebble(t)
	fake := fakePOP3(t) // the TLS listeners need a backend; Dovecot plays no part
	// Both names resolve to the second instance only: the first
	// instance's order for its own name can only be validated through the
	// second one, from the challenge token in Redis.
	const first, second = "one.cluster.test", "two.cluster.test"
	pointDNS(t, first, clusterAddrTwo)
	pointDNS(t, second, clusterAddrTwo)
	addrTwo := net.JoinHostPort(clusterAddrTwo, cpPOPSPort)
	b := startPopgate(t, acmeInstanceConfig(t, p, r, "pg-b", clusterAddrTwo, second, fake), addrTwo)
	addrOne := net.JoinHostPort(clusterAddrOne, cpPOPSPort)
	a := startPopgate(t, acmeInstanceConfig(t, p, r, "pg-a", clusterAddrOne, first, fake), addrOne)
	if n := p.orders(); n != 2 {
		t.Fatalf("Pebble received %d orders, want 2 (one per name)", n)
	}
	leaf := servedLeaf(t, addrOne, first, p.roots(t))
	if len(leaf.DNSNames) != 1 || leaf.DNSNames[0] != first {
		t.Fatalf("the first instance serves a certificate for %v, want %s", leaf.DNSNames, first)
	}
	if !strings.Contains(a.Logs(), "certificate obtained successfully") {
		t.Fatalf("the first instance did not obtain its certificate itself:\n%s", a.Logs())
	}
	// certmagic logs each validation it answers: http-01 with
	// identifier=NAME, tls-alpn-01 with server_name=NAME; the CA picks.
	served := grepLines(grepLines(b.Logs(), "served key authentication"), "distributed=true")
	if !strings.Contains(served, "identifier="+first) && !strings.Contains(served, "server_name="+first) {
		t.Fatalf("the second instance's log does not show it answering the challenge for %s from the shared storage:\n%s", first, b.Logs())
	}
}

// grepLines returns the lines of s that contain substr.
func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
