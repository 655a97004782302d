package proxy

import (
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"net/netip"
	"testing"
	"time"
)

// TestMinterMintsALeafTheCAVerifies checks a minted certificate: ECDSA
// P-256, signed by the CA, for server authentication, naming exactly the
// server name and the destination address, valid for a short time, with
// a random serial.
func TestMinterMintsALeafTheCAVerifies(t *testing.T) {
	ca := newTestCA(t, "org CA")
	m, err := NewMinter(ca.cert, 0)
	if err != nil {
		t.Fatal(err)
	}
	ip := netip.MustParseAddr("192.0.2.7")
	a, err := m.Certificate(ip, "Pop.Example.Test.")
	if err != nil {
		t.Fatal(err)
	}
	leaf := a.Leaf
	for _, name := range []string{"pop.example.test", "192.0.2.7"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: ca.pool}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example.test", Roots: ca.pool}); err == nil {
		t.Error("the certificate names more than the destination")
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve.Params().Name != "P-256" {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if v := leaf.NotAfter.Sub(leaf.NotBefore); v > MintValidity+mintBackdate {
		t.Errorf("valid for %v, want at most %v", v, MintValidity+mintBackdate)
	}
	if len(leaf.ExtKeyUsage) != 1 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.IsCA {
		t.Errorf("usage %v, CA %v", leaf.ExtKeyUsage, leaf.IsCA)
	}
	b, _ := m.Certificate(ip, "other.example.test")
	if b.Leaf.SerialNumber.Cmp(leaf.SerialNumber) == 0 || leaf.SerialNumber.BitLen() < 64 {
		t.Errorf("serials %v and %v: not random", leaf.SerialNumber, b.Leaf.SerialNumber)
	}
	if _, err := m.Certificate(ip, "bad name/x"); err == nil {
		t.Error("a server name that is no DNS name was minted")
	}
}

// TestMinterCachesPerNameWithABound checks that a certificate is reused
// for the same names, minted again once half its validity passed, and
// that the cache never holds more than its bound.
func TestMinterCachesPerNameWithABound(t *testing.T) {
	m, err := NewMinter(newTestCA(t, "org CA").cert, 2)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	m.now = func() time.Time { return now }
	ip := netip.MustParseAddr("192.0.2.7")
	a, _ := m.Certificate(ip, "a.example.test")
	if again, _ := m.Certificate(ip, "a.example.test"); again != a {
		t.Error("the same names were minted twice")
	}
	m.Certificate(ip, "b.example.test")
	m.Certificate(ip, "c.example.test")
	if n := m.Len(); n != 2 {
		t.Errorf("cache holds %d, want the bound 2", n)
	}
	if again, _ := m.Certificate(ip, "a.example.test"); again == a {
		t.Error("the least recently used certificate was not evicted")
	}
	c, _ := m.Certificate(ip, "c.example.test")
	now = now.Add(mintRenewAfter + time.Minute)
	if again, _ := m.Certificate(ip, "c.example.test"); again == c {
		t.Error("a certificate past half its validity was reused")
	}
}

// TestNewMinterRefusesANonCA checks that a leaf cannot serve as the
// intercept CA.
func TestNewMinterRefusesANonCA(t *testing.T) {
	ca := newTestCA(t, "org CA")
	leaf := ca.leaf(t, "pop.example.test")
	if _, err := NewMinter(&leaf, 0); err == nil {
		t.Error("a leaf certificate was taken as a CA")
	}
	if _, err := NewMinter(&tls.Certificate{}, 0); err == nil {
		t.Error("an empty certificate was taken as a CA")
	}
}
