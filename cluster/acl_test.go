package cluster

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	dto "github.com/prometheus/client_model/go"

	"github.com/popgate/popgate/proxy"
)

// TestACLUserWithDocumentedRights runs every operation as the ACL user
// docs/CLUSTER.md suggests: none may be refused.
func TestACLUserWithDocumentedRights(t *testing.T) {
	r := startRedis(t)
	out, err := exec.Command("redis-cli", "-s", r.sock, "ACL", "SETUSER", "popgate", "on", ">pw", "~popgate:*",
		"+@read", "+@write", "+@scripting", "+ping", "+time", "-@dangerous").CombinedOutput()
	if err != nil {
		t.Fatalf("ACL SETUSER: %v %s", err, out)
	}
	pf := filepath.Join(r.dir, "pw")
	os.WriteFile(pf, []byte("pw\n"), 0o600)
	c, err := New(Options{Redis: "unix://popgate@" + r.sock, PasswordFile: pf, Instance: "a"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s := NewStore(c, nil)
	defer s.Close()
	s.Fail([]string{"user:x"})
	s.Succeed([]string{"user:x"}, []string{"user:x"}, proxy.SessionLease{User: "x", ID: "1"}, 2)
	s.renew()
	s.Release(proxy.SessionLease{User: "x", ID: "1"})
	st := NewStorage(c)
	if err := st.Store(bg, "a/b", []byte("v")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.List(bg, "a", true); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Stat(bg, "a"); err != nil {
		t.Fatal(err)
	}
	if ok, err := st.TryLock(bg, "l"); !ok || err != nil {
		t.Fatal(ok, err)
	}
	if err := st.Unlock(bg, "l"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(bg, "a"); err != nil {
		t.Fatal(err)
	}
	if !c.Up() {
		t.Fatalf("an operation was refused: %+v", c.Health())
	}
	for _, op := range fallbackOps {
		var m dto.Metric
		if err := c.fallbacks.WithLabelValues(op).Write(&m); err != nil {
			t.Fatal(err)
		}
		if n := m.GetCounter().GetValue(); n != 0 {
			t.Fatalf("%v fallbacks for %s", n, op)
		}
	}
}
