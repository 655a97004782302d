package metrics

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/clamav"
)

// configuredLabels name configured things; the configuration bounds them.
var configuredLabels = map[string]bool{"listener": true, "backend": true, "filter": true, "auth": true}

var (
	docLabelRow   = regexp.MustCompile("(?m)^\\| `(popgate_[a-z_]+)` \\| `([a-z_]+)` \\| (.*) \\|$")
	docLabelValue = regexp.MustCompile("`([^`]*)`")
)

// documentedLabels reads the label value table of docs/CONFIG.md: for
// each metric and label, its fixed set of values.
func documentedLabels(t *testing.T) map[[2]string]map[string]bool {
	t.Helper()
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[[2]string]map[string]bool{}
	for _, m := range docLabelRow.FindAllStringSubmatch(string(doc), -1) {
		set := map[string]bool{}
		for _, v := range docLabelValue.FindAllStringSubmatch(m[3], -1) {
			set[v[1]] = true
		}
		out[[2]string{m[1], m[2]}] = set
	}
	if len(out) == 0 {
		t.Fatal("docs/CONFIG.md has no table of label values")
	}
	return out
}

// TestMetricLabelDocsMatchCode checks that docs/CONFIG.md documents exactly
// the label sets labels.go enforces.
func TestMetricLabelDocsMatchCode(t *testing.T) {
	docs := documentedLabels(t)
	for key, set := range clientLabels {
		if !equalSets(docs[key], set) {
			t.Errorf("%s{%s}: docs list %v, code allows %v", key[0], key[1], sortedKeys(docs[key]), sortedKeys(set))
		}
	}
	for key := range docs {
		if _, ok := clientLabels[key]; !ok {
			t.Errorf("%s{%s} is documented but labels.go has no set for it", key[0], key[1])
		}
	}
}

// hostileValues are label values a client could make popgate pass to a
// hook: random strings, invalid UTF-8, and 1000 distinct names.
func hostileValues() []string {
	r := rand.New(rand.NewPCG(1, 2))
	vs := []string{"\xff\xfe", "", "PLAIN\r\nX", "other", "user\x00", strings.Repeat("A", 5000), "{}\"=,"}
	for i := 0; i < 1000; i++ {
		b := make([]byte, 1+r.IntN(20))
		for j := range b {
			b[j] = byte(r.UintN(256))
		}
		vs = append(vs, fmt.Sprintf("%s%d", b, i))
	}
	return vs
}

// TestMetricLabelsFromFixedSets feeds every hook hostile values where a
// client-influenced label goes, and checks that each label value in the
// registry is a configured name or in the documented set.
func TestMetricLabelsFromFixedSets(t *testing.T) {
	m := New(hclog.NewNullLogger())
	h := m.Hooks()
	legit := []string{"user", "PLAIN", "cram-md5", "ok", "fail", "RETR", "+OK", "-ERR", "quit", "auth-delay"}
	for _, v := range append(legit, hostileValues()...) {
		h.SessionStarted("l1", true)
		h.SessionEnded("l1", true, filters.SessionEnd{Reason: v, BytesIn: 1, BytesOut: 2})
		h.Login("l1", v, "ok")
		h.Login("l1", "user", v)
		h.Command(v, "+OK")
		h.Command("RETR", v)
		h.BackendDial("b1", time.Millisecond, nil)
		h.AuthService("b1", v, time.Millisecond)
		h.Throttled("l1", v)
		h.Verdict("l1", &filters.Verdict{Scanned: true, Clean: true, Action: v})
		h.Verdict("l1", &filters.Verdict{Action: clamav.ActionTempFail, Err: errors.New(v)})
	}
	h.Verdict("l1", &filters.Verdict{Scanned: true, Virus: "Eicar", Action: clamav.ActionReplace})
	h.BackendDial("b1", time.Millisecond, errors.New("refused"))
	m.Reloaded(true)
	m.Reloaded(false)

	docs := documentedLabels(t)
	families, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[[2]string]map[string]bool{}
	for _, fam := range families {
		name := fam.GetName()
		if !strings.HasPrefix(name, "popgate_") {
			continue
		}
		for _, metric := range fam.GetMetric() {
			for _, lp := range metric.GetLabel() {
				label, value := lp.GetName(), lp.GetValue()
				if configuredLabels[label] {
					if value != "l1" && value != "b1" {
						t.Errorf("%s{%s=%q}: not a configured name", name, label, value)
					}
					continue
				}
				key := [2]string{name, label}
				if seen[key] == nil {
					seen[key] = map[string]bool{}
				}
				seen[key][value] = true
			}
		}
	}
	for key, values := range seen {
		set, ok := docs[key]
		if !ok {
			t.Errorf("%s{%s}: label has no documented set of values", key[0], key[1])
			continue
		}
		for v := range values {
			if !set[v] {
				t.Errorf("%s{%s}: value %q is not in the documented set %v", key[0], key[1], v, sortedKeys(set))
			}
		}
	}
	// The hostile values were counted, as "other", and legitimate ones
	// kept their names.
	for _, want := range []struct{ metric, label, value string }{
		{"popgate_logins_total", "mechanism", "other"},
		{"popgate_logins_total", "mechanism", "plain"},
		{"popgate_logins_total", "mechanism", "cram-md5"},
		{"popgate_commands_total", "verb", "other"},
		{"popgate_commands_total", "verb", "RETR"},
		{"popgate_sessions_total", "reason", "quit"},
		{"popgate_throttled_total", "reason", "auth-delay"},
		{"popgate_scan_verdicts_total", "verdict", "infected"},
		{"popgate_scan_verdicts_total", "verdict", "error"},
		{"popgate_scan_verdicts_total", "action", "replace"},
		{"popgate_scan_verdicts_total", "action", "other"},
	} {
		if !seen[[2]string{want.metric, want.label}][want.value] {
			t.Errorf("%s{%s=%q} missing", want.metric, want.label, want.value)
		}
	}
}

func equalSets(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
