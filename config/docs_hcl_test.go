package config

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/hashicorp/hcl/v2/hclparse"
)

// hclFence is a fenced hcl code block of a Markdown file.
var hclFence = regexp.MustCompile("(?s)```hcl\n(.*?)```")

// TestDocsHCLExamplesParse: every ```hcl example of the README and of
// docs/*.md is valid HCL syntax (one attribute per line: a one-line block
// holds at most one attribute), so an administrator can paste it.
func TestDocsHCLExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	n := 0
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range hclFence.FindAllSubmatch(src, -1) {
			n++
			if _, diags := hclparse.NewParser().ParseHCL(m[1], f); diags.HasErrors() {
				t.Errorf("%s: hcl example %d does not parse: %s\n%s", f, i+1, diags.Error(), m[1])
			}
		}
	}
	if n < 5 {
		t.Fatalf("only %d hcl examples found: is the pattern right?", n)
	}
}
