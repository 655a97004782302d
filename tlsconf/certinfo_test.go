package tlsconf

import (
	"context"
	"slices"
	"testing"
)

// TestCertificatesReportsWhatIsServed checks Certificates on a nil
// Manager, the self-signed fallback and static certificates, sorted by
// expiry, and that a reload shows at once.
func TestCertificatesReportsWhatIsServed(t *testing.T) {
	var none *Manager
	if got := none.Certificates(); got != nil {
		t.Errorf("nil Manager: %v, want none", got)
	}

	m, err := New(context.Background(), Options{StateDir: t.TempDir(), SelfSignedNames: []string{"localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	got := m.Certificates()
	if len(got) != 1 || got[0].Source != SourceSelfSigned || !slices.Equal(got[0].Names, []string{"localhost"}) ||
		!got[0].NotAfter.Equal(m.static.Load().certs[0].Leaf.NotAfter) {
		t.Errorf("self-signed fallback: %+v", got)
	}

	ca := newTestCA(t)
	one, two := ca.issue(t, "one.test"), ca.issue(t, "two.test", "127.0.0.1")
	dir := t.TempDir()
	opts := Options{StateDir: t.TempDir(), Certificates: []Certificate{one.write(t, dir, "one"), two.write(t, dir, "two")}}
	if err := m.Reload(opts); err != nil {
		t.Fatal(err)
	}
	got = m.Certificates()
	if len(got) != 2 {
		t.Fatalf("after reload: %+v, want the two static certificates", got)
	}
	for _, c := range got {
		if c.Source != SourceStatic {
			t.Errorf("%v: source %q, want %q", c.Names, c.Source, SourceStatic)
		}
	}
	if got[0].NotAfter.After(got[1].NotAfter) {
		t.Errorf("not sorted by expiry: %+v", got)
	}
	for _, p := range []testPair{one, two} {
		found := false
		for _, c := range got {
			found = found || slices.Equal(c.Names, leafNames(p.leaf)) && c.NotAfter.Equal(p.leaf.NotAfter)
		}
		if !found {
			t.Errorf("%v (expiring %v) not reported: %+v", p.leaf.DNSNames, p.leaf.NotAfter, got)
		}
	}
}
