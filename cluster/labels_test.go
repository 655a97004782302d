package cluster

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// TestOpLabelsDocumented keeps the op values of the cluster metrics and
// docs/CONFIG.md's table of label values (which metrics' tests check
// against labels.go) in step.
func TestOpLabelsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/CONFIG.md")
	if err != nil {
		t.Fatal(err)
	}
	for metric, want := range map[string][]string{
		"popgate_cluster_fallbacks_total": fallbackOps,
		"popgate_cluster_redis_seconds":   append(slices.Clone(fallbackOps), "ping"),
	} {
		row := regexp.MustCompile("(?m)^\\| `" + metric + "` \\| `op` \\| (.*) \\|$").FindStringSubmatch(string(doc))
		if row == nil {
			t.Fatalf("docs/CONFIG.md has no label row for %s{op}", metric)
		}
		var got []string
		for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(row[1], -1) {
			got = append(got, m[1])
		}
		slices.Sort(got)
		w := slices.Sorted(slices.Values(want))
		if !slices.Equal(got, w) {
			t.Errorf("%s{op}: docs list %v, the code uses %v", metric, got, w)
		}
	}
}
