package config

import (
	"bytes"
	"encoding/json"
	"regexp"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"
)

func TestWriteDiagnosticsShowsSource(t *testing.T) {
	dir := testFiles(t)
	src := base + "backend \"b\" {\n  address = \"127.0.0.1:99999\"\n}\nroute_map {\n  file = \"{{dir}}/routes-3\"\n}\n"
	_, files, diags := parseTest(t, src, dir)
	var out bytes.Buffer
	if err := WriteDiagnostics(&out, files, diags); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, want := range []string{
		"Error: Invalid address",
		"on test.hcl line 8, in backend \"b\":",
		`   8:   address = "127.0.0.1:99999"`,
		`port "99999" of "127.0.0.1:99999" must be a number from 1 to 65535.`,
		"Error: Invalid route map line",
		"on " + dir + "/routes-3 line 2:",
		"   2: bob local extra",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("diagnostics lack %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "\x1b[") {
		t.Errorf("colour escapes written to a buffer:\n%q", text)
	}
	out.Reset()
	if err := WriteDiagnostics(&out, files, nil); err != nil || out.Len() != 0 {
		t.Errorf("no diagnostics wrote %q, %v", out.String(), err)
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	l := NewLogger(Log{Level: hclog.Info, JSON: true}, &buf)
	l.Debug("hidden")
	l.Info("shown", "listener", "pop3")
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatalf("want one JSON record, got %q: %v", buf.String(), err)
	}
	if rec["@message"] != "shown" || rec["@level"] != "info" || rec["@module"] != "popgate" || rec["listener"] != "pop3" {
		t.Errorf("record %v", rec)
	}
	ts, _ := rec["@timestamp"].(string)
	if !regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)$`).MatchString(ts) {
		t.Errorf("timestamp %q is not RFC 3339 with milliseconds", ts)
	}
	if _, ok := rec["@caller"]; ok {
		t.Error("caller location included")
	}

	buf.Reset()
	l = NewLogger(Log{Level: hclog.Debug}, &buf)
	l.Debug("detail", "n", 1)
	if !regexp.MustCompile(`^\S+ \[DEBUG\] popgate: detail: n=1\n$`).MatchString(buf.String()) {
		t.Errorf("text record %q", buf.String())
	}
}
