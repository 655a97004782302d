package main

import (
	"os"
	"testing"

	"github.com/hashicorp/go-hclog"
	dto "github.com/prometheus/client_model/go"

	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/metrics"
)

// closeCounter is a filter that counts its Close calls.
type closeCounter struct{ closed int }

func (c *closeCounter) Name() string { return "counter" }
func (c *closeCounter) Close() error { c.closed++; return nil }

func inst(c *closeCounter) *filterInstance { return &filterInstance{filter: c} }

// TestFilterRefsCloseWhenUnheld: an instance two generations share closes
// only when both let go; a refused generation closes only what it alone
// held; a discarded build closes only instances no generation holds.
func TestFilterRefsCloseWhenUnheld(t *testing.T) {
	shared, old, fresh, refused := &closeCounter{}, &closeCounter{}, &closeCounter{}, &closeCounter{}
	iShared := inst(shared)
	g1 := &generation{insts: map[string]*filterInstance{"a": iShared, "b": inst(old)}}
	g2 := &generation{insts: map[string]*filterInstance{"a": iShared, "c": inst(fresh)}}
	g3 := &generation{insts: map[string]*filterInstance{"a": iShared, "d": inst(refused)}}
	var r filterRefs
	r.hold(g1)
	r.hold(g2) // a reload: g1's sessions still run
	r.hold(g3) // a reload the server refuses
	r.release(g3)
	if refused.closed != 1 || shared.closed != 0 {
		t.Fatalf("refused generation: its own instance closed %d times, the shared one %d", refused.closed, shared.closed)
	}
	r.release(g1) // g1's last session ended
	if old.closed != 1 || shared.closed != 0 || fresh.closed != 0 {
		t.Fatalf("after g1: old %d, shared %d, fresh %d closes", old.closed, shared.closed, fresh.closed)
	}
	built := &closeCounter{}
	r.discard(&generation{insts: map[string]*filterInstance{"a": iShared, "e": inst(built)}})
	if built.closed != 1 || shared.closed != 0 {
		t.Fatalf("discard: built %d, shared %d closes", built.closed, shared.closed)
	}
	r.release(g2) // shutdown
	if shared.closed != 1 || fresh.closed != 1 {
		t.Fatalf("after shutdown: shared %d, fresh %d closes", shared.closed, fresh.closed)
	}
}

// TestAuditWriteErrorsCounted: a record the audit filter cannot write is
// counted in popgate_audit_write_errors_total under the filter's name.
func TestAuditWriteErrorsCounted(t *testing.T) {
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("no /dev/full")
	}
	a := &app{logger: hclog.NewNullLogger(), metrics: metrics.New(nil)}
	f, err := a.newFilter(config.Filter{Type: "audit", Name: "trail", Settings: &audit.Config{Path: "/dev/full", Chain: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer closeFilter(f)
	s := &filters.Session{ID: "s1"}
	f.(filters.Observer).SessionStarted(s)
	f.(filters.Observer).SessionEnded(s, filters.SessionEnd{})
	var m dto.Metric
	if err := a.metrics.AuditWriteErrors("trail").Write(&m); err != nil {
		t.Fatal(err)
	}
	if n := m.GetCounter().GetValue(); n != 2 {
		t.Errorf("popgate_audit_write_errors_total{filter=\"trail\"} = %v, want 2", n)
	}
}

// TestUnchangedFiltersKeptAcrossReload: a reload that leaves a filter
// block as it was keeps its instance (an audit chain never forks), and a
// changed block gets a new one. The decoded settings stay comparable
// because the run-time wiring (the spool budget, the lost-record counter)
// goes on a copy.
func TestUnchangedFiltersKeptAcrossReload(t *testing.T) {
	dir := t.TempDir()
	src := func(deny string) []byte {
		return []byte(`listener "pop3" {
  address = "127.0.0.1:1110"
}
backend "local" {
  address = "127.0.0.1:110"
}
filter "audit" {
  path  = "` + dir + `/audit.jsonl"
  chain = true
}
filter "clamav" {}
filter "policy" {
  deny = ["` + deny + `"]
}
`)
	}
	parse := func(deny string) *config.Config {
		cfg, _, diags := config.Parse(src(deny), "test.hcl")
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return cfg
	}
	a := &app{logger: hclog.NewNullLogger(), metrics: metrics.New(nil), filters: map[string]*filterInstance{}}
	first, err := a.buildFilters(parse("DELE"))
	if err != nil {
		t.Fatal(err)
	}
	a.filters = first
	second, err := a.buildFilters(parse("TOP"))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"audit", "clamav"} {
		if second[name] != first[name] {
			t.Errorf("unchanged filter %q got a new instance", name)
		}
	}
	if second["policy"] == first["policy"] {
		t.Error("changed filter \"policy\" kept its old instance")
	}
	closeFilter(first["audit"].filter)
	closeFilter(first["clamav"].filter)
}
