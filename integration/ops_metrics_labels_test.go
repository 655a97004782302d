//go:build integration

package integration

// Label values of /metrics: nothing a client types may become a label
// value. Every label is a configured name or comes from the fixed set that
// docs/CONFIG.md documents.

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	opsDocLabelRow   = regexp.MustCompile("(?m)^\\| `(popgate_[a-z_]+)` \\| `([a-z_]+)` \\| (.*) \\|$")
	opsDocLabelValue = regexp.MustCompile("`([^`]*)`")
)

// opsDocumentedLabels reads the table of label values in docs/CONFIG.md:
// metric and label to the set of values.
func opsDocumentedLabels(t *testing.T) map[[2]string]map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]string]map[string]bool{}
	for _, m := range opsDocLabelRow.FindAllStringSubmatch(string(doc), -1) {
		set := map[string]bool{}
		for _, v := range opsDocLabelValue.FindAllStringSubmatch(m[3], -1) {
			set[v[1]] = true
		}
		out[[2]string{m[1], m[2]}] = set
	}
	if len(out) == 0 {
		t.Fatal("docs/CONFIG.md has no table of label values")
	}
	return out
}

// TestOpsMetricLabelsFixed sends AUTH with a random mechanism name from
// twelve sessions and twelve client addresses, on an on-accept and an
// after-auth listener, then AUTH "\xff\xfe" and an unknown command, and
// checks that every label value of every popgate_* series is a configured
// name or in its documented set; the random names are counted as "other".
func TestOpsMetricLabelsFixed(t *testing.T) {
	accept, after, metricsAddr := freePort(t), freePort(t), freePort(t)
	opsStart(t, fmt.Sprintf(`
listener "accept" {
  address = %q
  backend = "main"
}
listener "after" {
  address = %q
  backend = "main"
  connect = "after-auth"
}
%s
metrics {
  address = %q
}
`, accept, after, opsBackendA(t), metricsAddr))

	random := make([]byte, 6)
	rand.Read(random)
	prefix := "x" + hex.EncodeToString(random)
	sessions := 0
	session := func(listener, addr, local string, lines ...string) {
		c, greeting := opsDialFrom(t, addr, local)
		if !strings.HasPrefix(greeting, "+OK") {
			t.Fatalf("greeting on %s: %q", listener, greeting)
		}
		for _, l := range lines {
			if err := c.Write([]byte(l + "\r\n")); err != nil {
				t.Fatal(err)
			}
			if line, err := c.ReadLine(); err != nil || !strings.HasPrefix(line, "-ERR") {
				t.Fatalf("%s on %s: %q %v, want -ERR", strings.ToValidUTF8(l, "?"), listener, line, err)
			}
		}
		opsCmdOK(t, c, "QUIT")
		opsReadToEOF(t, c, 10*time.Second)
		sessions++
	}
	for i := 0; i < 12; i++ {
		listener, addr := "accept", accept
		if i%2 == 1 {
			listener, addr = "after", after
		}
		session(listener, addr, fmt.Sprintf("127.0.0.%d", 2+i), fmt.Sprintf("AUTH %s%d", prefix, i))
	}
	session("accept", accept, "127.0.0.20", "AUTH \xff\xfe", "XYZZY\xff")
	session("after", after, "127.0.0.21", "AUTH \xff\xfe", "XYZZY\xff")

	// A session is counted when it has ended, after its logins and
	// commands: poll (bounded) until all of them are.
	var samples []opsSample
	for deadline := time.Now().Add(10 * time.Second); ; {
		samples = opsScrape(t, metricsAddr)
		if n, _ := opsValue(samples, "popgate_sessions_total", nil); n >= float64(sessions) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fewer than %d sessions counted after 10 s", sessions)
		}
		time.Sleep(50 * time.Millisecond)
	}

	docs := opsDocumentedLabels(t)
	configured := map[string]map[string]bool{
		"listener": {"accept": true, "after": true},
		"backend":  {"main": true},
		"server":   {envValue(t, "POP3_ADDR"): true}, // the backend's address, as configured
	}
	for _, s := range samples {
		if !strings.HasPrefix(s.Name, "popgate_") {
			continue
		}
		family := s.Name
		for _, suf := range []string{"_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(s.Name, suf); ok && strings.HasSuffix(base, "_seconds") {
				family = base
			}
		}
		for label, value := range s.Labels {
			if strings.Contains(value, prefix) || strings.ContainsRune(value, '\uFFFD') {
				t.Errorf("%s{%s=%q}: a client's string became a label value", s.Name, label, value)
			}
			switch {
			case label == "le" && family != s.Name:
				continue
			case configured[label] != nil:
				if !configured[label][value] {
					t.Errorf("%s{%s=%q}: not a configured name", s.Name, label, value)
				}
				continue
			}
			set, ok := docs[[2]string{family, label}]
			if !ok {
				t.Errorf("%s{%s=%q}: label without a documented set of values", s.Name, label, value)
			} else if !set[value] {
				t.Errorf("%s{%s=%q}: value outside the documented set", s.Name, label, value)
			}
		}
	}
	if v, _ := opsValue(samples, "popgate_logins_total", map[string]string{"listener": "accept", "mechanism": "other"}); v < 7 {
		t.Errorf("popgate_logins_total{listener=accept,mechanism=other} = %v, want the 7 AUTHs with made-up mechanisms", v)
	}
	if t.Failed() {
		var lines []string
		for _, s := range samples {
			if strings.HasPrefix(s.Name, "popgate_") && !strings.HasSuffix(s.Name, "_bucket") {
				lines = append(lines, fmt.Sprintf("%s%q %v", s.Name, s.Labels, s.Value))
			}
		}
		t.Logf("popgate samples:\n%s", strings.Join(lines, "\n"))
	}
}
