package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/filters/audit"
)

// base is the smallest valid configuration: six lines, so text appended
// to it starts on line 7.
const base = `listener "pop3" {
  address = "127.0.0.1:1110"
}
backend "local" {
  address = "127.0.0.1:110"
}
`

// fixTestdataModes gives testdata's secrets file the mode the apop filter
// requires; git does not keep it.
func fixTestdataModes(t *testing.T) {
	t.Helper()
	if err := os.Chmod("testdata/config/apop.secrets", 0o600); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs cli with args and returns the exit status and both outputs.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := cli(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// fakeServe replaces serve for one test and records its arguments.
type fakeServe struct {
	called bool
	cfg    *config.Config
	path   string
	err    error
}

func stubServe(t *testing.T, err error) *fakeServe {
	t.Helper()
	f := &fakeServe{err: err}
	old := serve
	serve = func(cfg *config.Config, path string, logger hclog.Logger) error {
		f.called, f.cfg, f.path = true, cfg, path
		logger.Info("fake server ran")
		return f.err
	}
	t.Cleanup(func() { serve = old })
	return f
}

// writeFile writes content to name in a new temporary directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCLIValidate(t *testing.T) {
	fixTestdataModes(t)
	bad := writeFile(t, "bad.hcl", base+"log {\n  level = \"loud\"\n}\n")
	warn := writeFile(t, "warn.hcl", base+"limits {\n  idle_timeout = \"1m\"\n}\n")
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     string
		stderr     []string
		noStderrOf string
	}{
		{"valid flag", []string{"validate", "-config", "testdata/config/full.hcl"}, 0,
			"testdata/config/full.hcl: configuration OK\n", nil, "Error"},
		{"valid positional", []string{"validate", "testdata/config/full.hcl"}, 0,
			"testdata/config/full.hcl: configuration OK\n", nil, "Error"},
		{"double dash flag", []string{"validate", "--config=config.hcl"}, 0, "config.hcl: configuration OK\n", nil, "Error"},
		{"errors", []string{"validate", "-config", bad}, 1, "",
			[]string{"Error: Invalid level", "on " + bad + " line 8, in log:", `   8:   level = "loud"`, "configuration has errors"}, ""},
		{"warnings only", []string{"validate", "-config", warn}, 0, warn + ": configuration OK\n",
			[]string{"Warning: Short idle_timeout", `   8:   idle_timeout = "1m"`}, "Error"},
		{"missing file", []string{"validate", "-config", filepath.Join(t.TempDir(), "none.hcl")}, 1, "",
			[]string{"Cannot read configuration file", "no such file"}, ""},
		{"unknown flag", []string{"validate", "-verbose"}, 2, "", []string{"flag provided but not defined: -verbose"}, ""},
		{"two files", []string{"validate", "a.hcl", "b.hcl"}, 2, "", []string{`unexpected argument "a.hcl"`}, ""},
		{"flag and positional", []string{"validate", "-config", "a.hcl", "b.hcl"}, 2, "", []string{`unexpected argument "b.hcl"`}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit status %d, want %d; stderr:\n%s", code, tc.code, stderr)
			}
			if stdout != tc.stdout {
				t.Errorf("stdout %q, want %q", stdout, tc.stdout)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tc.noStderrOf != "" && strings.Contains(stderr, tc.noStderrOf) {
				t.Errorf("stderr has %q:\n%s", tc.noStderrOf, stderr)
			}
			if strings.Contains(stderr, "\x1b[") {
				t.Errorf("colour escapes in output to a non-terminal:\n%q", stderr)
			}
		})
	}
}

func TestCLIValidateDefaultFile(t *testing.T) {
	t.Chdir(t.TempDir())
	code, stdout, _ := runCLI(t, "validate")
	if code != 0 || stdout != "built-in defaults (no config.hcl): configuration OK\n" {
		t.Errorf("validate without config.hcl: %d %q; want the built-in defaults to be OK", code, stdout)
	}
	if err := os.WriteFile("config.hcl", []byte("listener {\n}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "validate")
	if code != 1 || !strings.Contains(stderr, "config.hcl line 1") {
		t.Errorf("validate with a broken ./config.hcl: %d %q; want it read and refused", code, stderr)
	}
}

func TestCLIRunBuiltin(t *testing.T) {
	t.Setenv("STATE_DIRECTORY", "")
	dir := t.TempDir()
	t.Chdir(dir)
	for _, args := range [][]string{nil, {"run"}} {
		f := stubServe(t, nil)
		code, stdout, stderr := runCLI(t, args...)
		if code != 0 || !f.called {
			t.Fatalf("%q: exit %d, server called %v; stderr:\n%s", args, code, f.called, stderr)
		}
		if f.path != "" || f.cfg.Listeners[0].Address != "127.0.0.1:1110" || f.cfg.Backends[0].Address != "127.0.0.1:110" {
			t.Errorf("%q: server got path %q and %+v; want the built-in configuration", args, f.path, f.cfg.Listeners)
		}
		if !strings.Contains(stderr, "[INFO]  popgate: no configuration file found, using built-in defaults") ||
			!strings.Contains(stderr, "fake server ran") {
			t.Errorf("%q: stderr lacks the built-in notice and server log:\n%s", args, stderr)
		}
		if stdout != "" {
			t.Errorf("%q: run printed to stdout: %q", args, stdout)
		}
	}
}

func TestCLIRunFile(t *testing.T) {
	path := writeFile(t, "p.hcl", base+"log {\n  level  = \"warn\"\n  format = \"json\"\n}\n")
	for _, args := range [][]string{{"run", "-config", path}, {"-config", path}} {
		f := stubServe(t, nil)
		code, _, stderr := runCLI(t, args...)
		if code != 0 || f.path != path {
			t.Errorf("%q: exit %d, server got path %q; stderr:\n%s", args, code, f.path, stderr)
		}
		if strings.Contains(stderr, "fake server ran") {
			t.Errorf("%q: info logged at level warn:\n%s", args, stderr)
		}
	}

	f := stubServe(t, errors.New("listen tcp: address in use"))
	code, _, stderr := runCLI(t, "run", "-config", path)
	if code != 1 || !strings.Contains(stderr, `"error":"listen tcp: address in use"`) {
		t.Errorf("a failing server: exit %d; stderr:\n%s", code, stderr)
	}
	if !f.called {
		t.Error("server not called")
	}
}

func TestCLIRunRefusesBadConfig(t *testing.T) {
	f := stubServe(t, nil)
	missing := filepath.Join(t.TempDir(), "config.hcl")
	code, _, stderr := runCLI(t, "run", "-config", missing)
	if code != 1 || f.called || !strings.Contains(stderr, "Cannot read configuration file") {
		t.Errorf("run with a missing -config file: exit %d, server called %v; stderr:\n%s", code, f.called, stderr)
	}
	bad := writeFile(t, "bad.hcl", base+"metrics {\n  address = \"nowhere\"\n}\n")
	code, _, stderr = runCLI(t, "run", "-config", bad)
	if code != 1 || f.called || !strings.Contains(stderr, "Error: Invalid address") {
		t.Errorf("run with an invalid file: exit %d, server called %v; stderr:\n%s", code, f.called, stderr)
	}
	code, _, _ = runCLI(t, "run", "extra")
	if code != 2 || f.called {
		t.Errorf("run with an argument: exit %d, want 2", code)
	}
}

func TestCLIVersion(t *testing.T) {
	code, stdout, _ := runCLI(t, "version")
	if code != 0 || !regexp.MustCompile(`^popgate \S+ \(go1\.\d+`).MatchString(stdout) {
		t.Errorf("version: %d %q", code, stdout)
	}
	old := version
	version = "v1.2.3"
	t.Cleanup(func() { version = old })
	if _, stdout, _ := runCLI(t, "version"); !strings.HasPrefix(stdout, "popgate v1.2.3 (go") {
		t.Errorf("version with -X main.version=v1.2.3: %q", stdout)
	}
	if code, _, _ := runCLI(t, "version", "x"); code != 2 {
		t.Errorf("version with an argument: exit %d, want 2", code)
	}
}

func TestCLIHelpAndUnknown(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		code, stdout, _ := runCLI(t, arg)
		if code != 0 || !strings.Contains(stdout, "validate [-config FILE]") || !strings.Contains(stdout, "audit verify FILE") {
			t.Errorf("%s: %d %q", arg, code, stdout)
		}
	}
	code, _, stderr := runCLI(t, "serve")
	if code != 2 || !strings.Contains(stderr, `unknown command "serve"`) || !strings.Contains(stderr, "Usage:") {
		t.Errorf("unknown command: %d %q", code, stderr)
	}
	code, _, stderr = runCLI(t, "run", "-h")
	if code != 0 || !strings.Contains(stderr, "-config FILE") {
		t.Errorf("run -h: %d %q", code, stderr)
	}
}

// TestCLIAuditVerifySeveralFiles: each file is verified as its own chain,
// with per-file lines and a result line each; one broken file makes the
// exit status 1 without stopping the check of the files after it.
func TestCLIAuditVerifySeveralFiles(t *testing.T) {
	var got []string
	old := verifyAudit
	t.Cleanup(func() { verifyAudit = old })
	verifyAudit = func(path string) (*audit.Report, error) {
		got = append(got, path)
		if path == "pg2.jsonl" {
			return &audit.Report{Records: 3, Segments: []audit.Segment{{FirstLine: 1, LastLine: 3, Records: 3}}},
				errors.New("record 4: hash mismatch")
		}
		return &audit.Report{Records: 42, Segments: []audit.Segment{{FirstLine: 1, LastLine: 42, Records: 42}}}, nil
	}
	code, stdout, _ := runCLI(t, "audit", "verify", "pg1.jsonl", "pg3.jsonl")
	want := "pg1.jsonl: segment 1: lines 1-42, 42 records\n" +
		"pg1.jsonl: audit chain OK (42 records)\n" +
		"pg3.jsonl: segment 1: lines 1-42, 42 records\n" +
		"pg3.jsonl: audit chain OK (42 records)\n" +
		"all 2 audit files verified: every chain OK\n"
	if code != 0 || stdout != want || !slices.Equal(got, []string{"pg1.jsonl", "pg3.jsonl"}) {
		t.Errorf("two good files: %d\n%s\nwant\n%s(verified %q)", code, stdout, want, got)
	}
	got = nil
	code, stdout, stderr := runCLI(t, "audit", "verify", "pg1.jsonl", "pg2.jsonl", "pg3.jsonl")
	want = "pg1.jsonl: segment 1: lines 1-42, 42 records\n" +
		"pg1.jsonl: audit chain OK (42 records)\n" +
		"pg2.jsonl: segment 1: lines 1-3, 3 records\n" +
		"pg2.jsonl: FAILED: record 4: hash mismatch\n" +
		"pg3.jsonl: segment 1: lines 1-42, 42 records\n" +
		"pg3.jsonl: audit chain OK (42 records)\n" +
		"1 of 3 audit files FAILED verification\n"
	if code != 1 || stdout != want || len(got) != 3 || !strings.Contains(stderr, "audit verify pg2.jsonl: record 4: hash mismatch") {
		t.Errorf("one broken file of three: %d\n%s\nwant\n%s%s", code, stdout, want, stderr)
	}
}

func TestCLIAuditVerify(t *testing.T) {
	var got string
	old := verifyAudit
	t.Cleanup(func() { verifyAudit = old })
	verifyAudit = func(path string) (*audit.Report, error) {
		got = path
		switch path {
		case "broken.jsonl":
			return &audit.Report{Records: 3, Segments: []audit.Segment{{FirstLine: 1, LastLine: 3, Records: 3}}},
				errors.New("record 4: hash mismatch")
		case "breaks.jsonl":
			return &audit.Report{Records: 9,
				Segments: []audit.Segment{{FirstLine: 1, LastLine: 4, Records: 4}, {FirstLine: 6, LastLine: 10, Records: 5, StartsWithBreak: true}},
				Breaks:   []audit.Break{{Line: 5, Offset: 1410, Bytes: 17, Lines: 1, Recorded: true, Reason: "torn tail"}},
			}, nil
		}
		return &audit.Report{Records: 42, Segments: []audit.Segment{{FirstLine: 1, LastLine: 42, Records: 42}}}, nil
	}
	code, stdout, _ := runCLI(t, "audit", "verify", "good.jsonl")
	if code != 0 || stdout != "segment 1: lines 1-42, 42 records\naudit chain OK (42 records)\n" || got != "good.jsonl" {
		t.Errorf("audit verify good: %d %q (verified %q)", code, stdout, got)
	}
	code, stdout, stderr := runCLI(t, "audit", "verify", "broken.jsonl")
	if code != 1 || strings.Contains(stdout, "OK") || !strings.Contains(stderr, "audit verify broken.jsonl: record 4: hash mismatch") {
		t.Errorf("audit verify broken: %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "audit", "verify", "breaks.jsonl")
	want := "segment 1: lines 1-4, 4 records\n" +
		"break at line 5 (offset 1410): 1 lines, 17 octets skipped; recorded by popgate: torn tail\n" +
		"segment 2: lines 6-10, 5 records, starting with popgate's chain_break record\n" +
		"audit chain OK (9 records, 2 segments, 1 breaks all recorded by popgate)\n"
	if code != 0 || stdout != want {
		t.Errorf("audit verify with a recorded break: %d\n%s\nwant\n%s", code, stdout, want)
	}
	for _, args := range [][]string{{"audit"}, {"audit", "verify"}, {"audit", "check", "x"}} {
		if code, _, _ := runCLI(t, args...); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}
