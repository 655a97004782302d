package config

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/proxy"
)

// interceptConfig is an intercept listener in front of an
// original_destination backend; LISTENER and BACKEND are replaced by the
// extra attributes of a case, and EXTRA by extra blocks.
const interceptConfig = `listener "icpt" {
  address   = "0.0.0.0:1110"
  intercept = "redirect"
  backend   = "original"
LISTENER}
backend "original" {
  original_destination = true
  allowed_destinations = ["0.0.0.0/0:110", "[::]/0:110"]
BACKEND}
EXTRA`

// interceptSrc fills interceptConfig.
func interceptSrc(listener, backend, extra string) string {
	return strings.NewReplacer("LISTENER", listener, "BACKEND", backend, "EXTRA", extra).Replace(interceptConfig)
}

// valueAt returns the position (test.hcl:line:column) of the value of the
// first line of src containing attr, an attribute written "NAME = VALUE"
// (plus index into a list value, when elem is not empty).
func valueAt(t *testing.T, src, attr, elem string) string {
	t.Helper()
	i := strings.Index(src, attr)
	if i < 0 {
		t.Fatalf("%q not in the source", attr)
	}
	i += strings.Index(src[i:], "= ") + 2
	if elem != "" {
		i += strings.Index(src[i:], elem)
	}
	line := strings.Count(src[:i], "\n") + 1
	col := i - strings.LastIndex(src[:i], "\n")
	return fmt.Sprintf("test.hcl:%d:%d", line, col)
}

// caFiles writes a CA and a leaf certificate, each with its key, to dir.
func caFiles(t *testing.T, dir string) {
	t.Helper()
	write := func(name string, isCA bool) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			IsCA: isCA, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageDigitalSignature,
		}
		if isCA {
			tmpl.KeyUsage |= x509.KeyUsageCertSign
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, name+".crt"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
		os.WriteFile(filepath.Join(dir, name+".key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	}
	write("ca", true)
	write("leaf", false)
}

func TestInterceptConfig(t *testing.T) {
	src := interceptSrc(`  intercept_stls = "tunnel"
`, `  denied_destinations  = ["10.0.0.0/8", "[2001:db8::/32]:110"]
`, `listener "tp" {
  address   = "[::]:1111"
  intercept = "tproxy"
  backend   = "spoofing"
}
backend "spoofing" {
  original_destination = true
  allowed_destinations = ["192.0.2.0/24:110"]
  spoof_source         = true
}
`)
	cfg, _, diags := parseTest(t, src, t.TempDir())
	if len(diags) > 0 || cfg == nil {
		t.Fatalf("want a Config without diagnostics, got:%s", diagText(diags))
	}
	l := cfg.Listeners[0]
	if l.Intercept != proxy.InterceptRedirect || l.InterceptSTLS != proxy.InterceptSTLSTunnel || l.Connect != proxy.ConnectOnAccept {
		t.Errorf("listener icpt: intercept %v, intercept_stls %v, connect %v", l.Intercept, l.InterceptSTLS, l.Connect)
	}
	if cfg.Listeners[1].Intercept != proxy.InterceptTProxy {
		t.Errorf("listener tp: intercept %v, want tproxy", cfg.Listeners[1].Intercept)
	}
	be := cfg.Backend("original")
	if !be.OriginalDestination || be.Address != "" || be.SpoofSource {
		t.Errorf("backend original: %+v", be.Backend)
	}
	if got := fmt.Sprint(be.Allowed, be.Denied); got != "[0.0.0.0/0:110 [::/0]:110] [10.0.0.0/8 [2001:db8::/32]:110]" {
		t.Errorf("backend original: allowed and denied %s", got)
	}
	if sp := cfg.Backend("spoofing"); !sp.SpoofSource || fmt.Sprint(sp.Allowed) != "[192.0.2.0/24:110]" {
		t.Errorf("backend spoofing: %+v", sp.Backend)
	}
}

func TestInterceptValidation(t *testing.T) {
	dir := t.TempDir()
	caFiles(t, dir)
	os.WriteFile(filepath.Join(dir, "secrets"), []byte("alice secret\n"), 0o600)
	type tc struct {
		name, listener, backend, extra string
		sev                            hcl.DiagnosticSeverity
		summary                        string
		attr, elem                     string // where: the value of attr (its element elem) ...
		label                          string // ... or, when set, this label
	}
	cases := []tc{
		{name: "after-auth", listener: "  connect = \"after-auth\"\n", sev: hcl.DiagError,
			summary: "Intercept listener is on-accept only", attr: "connect ="},
		{name: "proxy_protocol", listener: "  proxy_protocol = true\n  trusted_proxies = [\"10.0.0.1\"]\n", sev: hcl.DiagError,
			summary: "PROXY protocol on an intercept listener", attr: "proxy_protocol ="},
		{name: "require_tls", listener: "  require_tls = false\n", sev: hcl.DiagError,
			summary: "require_tls on an intercept listener", attr: "require_tls ="},
		{name: "starttls", listener: "  tls = \"starttls\"\n", sev: hcl.DiagError,
			summary: "STLS on an intercept listener", attr: "tls ="},
		{name: "implicit without inspect", listener: "  tls = \"implicit\"\n", sev: hcl.DiagError,
			summary: "Implicit TLS interception needs inspect", attr: "tls ="},
		{name: "apop filter", listener: "  filters = [\"audit\", \"apop\"]\n", sev: hcl.DiagError,
			extra:   "filter \"audit\" {\n  path = \"{{dir}}/audit.log\"\n}\nfilter \"apop\" {\n  secrets_file = \"{{dir}}/secrets\"\n}\n",
			summary: "Login filter on an intercept listener", attr: "filters =", elem: `"apop"`},
		{name: "inspect without CA", listener: "  intercept_stls = \"inspect\"\n", sev: hcl.DiagError,
			summary: "Missing intercept_ca_cert", attr: "intercept_stls ="},
		{name: "inspect with a leaf", listener: "  intercept_stls = \"inspect\"\n  intercept_ca_cert = \"{{dir}}/leaf.crt\"\n  intercept_ca_key = \"{{dir}}/leaf.key\"\n",
			sev: hcl.DiagError, summary: "Not a CA certificate", attr: "intercept_ca_cert ="},
		{name: "inspect with mismatched key", listener: "  intercept_stls = \"inspect\"\n  intercept_ca_cert = \"{{dir}}/ca.crt\"\n  intercept_ca_key = \"{{dir}}/leaf.key\"\n",
			sev: hcl.DiagError, summary: "Invalid intercept CA", attr: "intercept_ca_key ="},
		{name: "intercept mode", listener: "", sev: hcl.DiagError, summary: "Invalid intercept", attr: "intercept ="},
		{name: "spoof_source with redirect", backend: "  spoof_source = true\n", sev: hcl.DiagError,
			summary: "spoof_source needs tproxy", attr: "spoof_source ="},
		{name: "address", backend: "  address = \"192.0.2.1:110\"\n", sev: hcl.DiagError,
			summary: "Address on an original_destination backend", attr: "address = \"192"},
		{name: "forward_client", backend: "  forward_client = \"proxy-v2\"\n", sev: hcl.DiagError,
			summary: "forward_client on an original_destination backend", attr: "forward_client ="},
		{name: "bad destination", backend: "  denied_destinations = [\"10.0.0.0/8\", \"pop.example.com:110\"]\n", sev: hcl.DiagError,
			summary: "Invalid denied_destinations", attr: "denied_destinations =", elem: `"pop.example.com`},
		{name: "ordinary listener", extra: "listener \"plain\" {\n  address = \":1\"\n  backend = \"original\"\n}\n", sev: hcl.DiagError,
			summary: "original_destination backend on an ordinary listener", attr: "backend = \"original\"\n}\n"},
		{name: "route", listener: "", extra: "listener \"aa\" {\n  address = \":1\"\n  backend = \"local\"\n  connect = \"after-auth\"\n}\nbackend \"local\" {\n  address = \"127.0.0.1:110\"\n}\nroute {\n  user = \"*\"\n  backend = \"original\"\n}\n",
			sev: hcl.DiagError, summary: "Route to an original_destination backend", attr: "backend = \"original\"\n}\n"},
		{name: "no address at all", extra: "backend \"empty\" {\n}\nlistener \"x\" {\n  address = \":1\"\n  backend = \"empty\"\n}\n", sev: hcl.DiagError,
			summary: "Missing address", label: `"empty" {`},
		{name: "refuse", listener: "  intercept_stls = \"refuse\"\n", sev: hcl.DiagWarning,
			summary: "STLS downgrade", attr: "intercept_stls ="},
		{name: "CA without inspect", listener: "  intercept_ca_cert = \"{{dir}}/ca.crt\"\n", sev: hcl.DiagWarning,
			summary: "Unused intercept_ca_cert", attr: "intercept_ca_cert ="},
		{name: "intercept_stls without intercept", extra: "listener \"plain\" {\n  address = \":1\"\n  backend = \"local\"\n  intercept_stls = \"tunnel\"\n}\nbackend \"local\" {\n  address = \"h:1\"\n}\n",
			sev: hcl.DiagWarning, summary: "Unused intercept_stls", attr: "intercept_stls ="},
		{name: "destinations without original_destination", extra: "listener \"plain\" {\n  address = \":1\"\n  backend = \"local\"\n}\nbackend \"local\" {\n  address = \"h:1\"\n  allowed_destinations = [\"0.0.0.0/0\"]\n}\n",
			sev: hcl.DiagWarning, summary: "Unused allowed_destinations", attr: "allowed_destinations = [\"0.0.0.0/0\"]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := interceptSrc(c.listener, c.backend, c.extra)
			if c.name == "intercept mode" {
				src = strings.Replace(src, `"redirect"`, `"nat"`, 1)
			}
			src = strings.ReplaceAll(src, "{{dir}}", filepath.ToSlash(dir))
			cfg, _, diags := parseTest(t, src, dir)
			d := findDiag(diags, c.sev, c.summary)
			if d == nil {
				t.Fatalf("no diagnostic %q; got:%s", c.summary, diagText(diags))
			}
			var want string
			if c.label != "" {
				i := strings.Index(src, c.label)
				want = fmt.Sprintf("test.hcl:%d:%d", strings.Count(src[:i], "\n")+1, i-strings.LastIndex(src[:i], "\n"))
			} else {
				want = valueAt(t, src, c.attr, c.elem)
			}
			if got := pos(d); got != want {
				t.Errorf("%q at %s, want %s; all:%s", c.summary, got, want, diagText(diags))
			}
			if c.sev == hcl.DiagWarning && (diags.HasErrors() || cfg == nil) {
				t.Errorf("want only warnings, got:%s", diagText(diags))
			}
			if c.sev == hcl.DiagError && cfg != nil {
				t.Error("got a Config despite the error")
			}
		})
	}
}

// An original_destination backend needs an allow-list: without one it
// would connect nowhere, and the error says so where it is declared.
func TestOriginalDestinationNeedsAllowList(t *testing.T) {
	src := strings.Replace(interceptSrc("", "", ""), "  allowed_destinations = [\"0.0.0.0/0:110\", \"[::]/0:110\"]\n", "", 1)
	_, _, diags := parseTest(t, src, t.TempDir())
	d := findDiag(diags, hcl.DiagError, "Missing allowed_destinations")
	if d == nil {
		t.Fatalf("no error; got:%s", diagText(diags))
	}
	if got, want := pos(d), valueAt(t, src, "original_destination =", ""); got != want {
		t.Errorf("at %s, want %s", got, want)
	}
}
