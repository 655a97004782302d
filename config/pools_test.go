package config

import (
	"reflect"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/proxy"
)

// poolSrc is a configuration with an after-auth listener in front of the
// pool "mail", whose body is backend, plus extra blocks.
func poolSrc(backend, extra string) string {
	return "listener \"pop3\" {\n  address = \"127.0.0.1:1110\"\n  connect = \"after-auth\"\n  backend = \"mail\"\n}\n" +
		"backend \"mail\" {\n" + backend + "}\n" + extra
}

func TestPoolDecode(t *testing.T) {
	src := poolSrc("  servers = [\"10.0.0.5:110\", \"mail6.example.com:995\"]\n  tls = \"implicit\"\n  balance = \"source\"\n"+
		"  health_check_interval = \"10s\"\n  fail_threshold = 5\n  down_backoff = \"1m\"\n", "")
	cfg, _, diags := parseTest(t, src, "")
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	be := cfg.Backend("mail")
	if !reflect.DeepEqual(be.Servers, []string{"10.0.0.5:110", "mail6.example.com:995"}) || be.Address != "" ||
		be.Balance != proxy.BalanceSource || be.ServerName != "" ||
		be.Health != (proxy.HealthOptions{Interval: 10 * time.Second, FailThreshold: 5, DownBackoff: time.Minute}) {
		t.Errorf("backend = %+v", be)
	}
	// The defaults: balance by listener, passive checks only.
	cfg, _, diags = parseTest(t, poolSrc("  servers = [\"10.0.0.5:110\"]\n", ""), "")
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if be := cfg.Backend("mail"); be.Balance != proxy.BalanceDefault || be.Health != defHealth {
		t.Errorf("defaults: %+v", be)
	}
}

func TestPoolValidation(t *testing.T) {
	onAccept := "listener \"direct\" {\n  address = \"127.0.0.1:1111\"\n  backend = \"mail\"\n}\n"
	for _, c := range []struct {
		name, backend, extra, summary, attr, elem string
	}{
		{name: "both", backend: "  address = \"10.0.0.5:110\"\n  servers = [\"10.0.0.6:110\"]\n",
			summary: "Both address and servers", attr: "servers ="},
		{name: "empty", backend: "  servers = []\n", summary: "Empty servers", attr: "servers ="},
		{name: "bad server", backend: "  servers = [\"10.0.0.5:110\", \"10.0.0.6\"]\n",
			summary: "Invalid servers", attr: "servers =", elem: `"10.0.0.6"`},
		{name: "duplicate", backend: "  servers = [\"10.0.0.5:110\", \"10.0.0.5:110\"]\n",
			summary: "Duplicate server", attr: "servers =", elem: `"10.0.0.5:110"]`},
		{name: "balance", backend: "  servers = [\"10.0.0.5:110\"]\n  balance = \"round-robin\"\n",
			summary: "Invalid balance", attr: "balance ="},
		{name: "user on accept", backend: "  servers = [\"10.0.0.5:110\"]\n  balance = \"user\"\n", extra: onAccept,
			summary: "balance = \"user\" on an on-accept listener", attr: "balance ="},
		{name: "threshold", backend: "  servers = [\"10.0.0.5:110\"]\n  fail_threshold = 0\n",
			summary: "Invalid fail_threshold", attr: "fail_threshold ="},
		{name: "backoff", backend: "  servers = [\"10.0.0.5:110\"]\n  down_backoff = \"soon\"\n",
			summary: "Invalid down_backoff", attr: "down_backoff ="},
		{name: "interval", backend: "  servers = [\"10.0.0.5:110\"]\n  health_check_interval = \"0s\"\n",
			summary: "Invalid health_check_interval", attr: "health_check_interval ="},
	} {
		t.Run(c.name, func(t *testing.T) {
			src := poolSrc(c.backend, c.extra)
			cfg, _, diags := parseTest(t, src, "")
			d := findDiag(diags, hcl.DiagError, c.summary)
			if d == nil {
				t.Fatalf("no error %q; got:%s", c.summary, diagText(diags))
			}
			if got, want := pos(d), valueAt(t, src, c.attr, c.elem); got != want {
				t.Errorf("%q at %s, want %s", c.summary, got, want)
			}
			if cfg != nil {
				t.Error("got a Config despite the error")
			}
		})
	}
	// user is fine for after-auth, and least-conn for on-accept.
	for _, ok := range []string{
		poolSrc("  servers = [\"10.0.0.5:110\"]\n  balance = \"user\"\n", ""),
		poolSrc("  servers = [\"10.0.0.5:110\"]\n  balance = \"least-conn\"\n", onAccept),
	} {
		if _, _, diags := parseTest(t, ok, ""); diags.HasErrors() {
			t.Errorf("%s: %s", ok, diagText(diags))
		}
	}
}

// An original_destination backend has one destination per session.
func TestPoolNotOnOriginalDestination(t *testing.T) {
	src := interceptSrc("", "  servers = [\"10.0.0.5:110\"]\n", "")
	_, _, diags := parseTest(t, src, t.TempDir())
	d := findDiag(diags, hcl.DiagError, "Servers on an original_destination backend")
	if d == nil {
		t.Fatalf("no error; got:%s", diagText(diags))
	}
	if got, want := pos(d), valueAt(t, src, "servers =", ""); got != want {
		t.Errorf("at %s, want %s", got, want)
	}
}

// Pool attributes where they cannot act are warned about, on their line.
func TestPoolUnusedAttributes(t *testing.T) {
	for _, c := range []struct{ src, summary, attr string }{
		{poolSrc("  address = \"10.0.0.5:110\"\n  balance = \"first\"\n", ""), "Unused balance", "balance ="},
		{interceptSrc("", "  fail_threshold = 2\n", ""), "Unused fail_threshold", "fail_threshold ="},
	} {
		cfg, _, diags := parseTest(t, c.src, t.TempDir())
		d := findDiag(diags, hcl.DiagWarning, c.summary)
		if d == nil || cfg == nil {
			t.Errorf("no warning %q (or errors):%s", c.summary, diagText(diags))
			continue
		}
		if got, want := pos(d), valueAt(t, c.src, c.attr, ""); got != want {
			t.Errorf("%q at %s, want %s", c.summary, got, want)
		}
	}
}
