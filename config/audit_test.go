package config

import (
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/filters/audit"
)

// TestDuplicateAuditPathRefused: two audit blocks on one file would keep
// two chains in it, and neither would verify. The diagnostic points at the
// second block's path.
func TestDuplicateAuditPathRefused(t *testing.T) {
	dir := testFiles(t)
	for name, src := range map[string]string{
		"same path": `filter "audit" {
  path = "{{dir}}/audit.jsonl"
}
filter "audit" {
  name = "second"
  path = "{{dir}}/audit.jsonl"
}
`,
		"same file, other spelling": `filter "audit" {
  path = "{{dir}}/audit.jsonl"
}
filter "audit" {
  name = "second"
  path = "{{dir}}/sub/../audit.jsonl"
}
`,
	} {
		_, _, diags := parseTest(t, base+src, dir)
		d := findDiag(diags, hcl.DiagError, "Duplicate audit path")
		if d == nil {
			t.Errorf("%s: not refused:%s", name, diagText(diags))
			continue
		}
		if got := pos(d); got != "test.hcl:12:10" {
			t.Errorf("%s: diagnostic at %s, want the second block's path (test.hcl:12:10)", name, got)
		}
	}
	_, _, diags := parseTest(t, base+`filter "audit" {
  path = "{{dir}}/a.jsonl"
}
filter "audit" {
  name = "second"
  path = "{{dir}}/b.jsonl"
}
`, dir)
	if diags.HasErrors() {
		t.Errorf("two audit blocks on two paths refused:%s", diagText(diags))
	}
}

func TestAuditSyncSettings(t *testing.T) {
	cfg, _, diags := parseTest(t, base+`filter "audit" {
  path          = "-"
  sync          = "record"
}
filter "audit" {
  name          = "b"
  path          = "{{dir}}/b.jsonl"
  sync_interval = "250ms"
}
`, t.TempDir())
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	a, b := cfg.Filters[0].Settings.(*audit.Config), cfg.Filters[1].Settings.(*audit.Config)
	if a.Sync != audit.SyncRecord || b.Sync != audit.SyncInterval || b.SyncInterval != 250*time.Millisecond {
		t.Errorf("got %+v and %+v", a, b)
	}
	_, _, diags = parseTest(t, base+`filter "audit" {
  sync = "always"
}
`, "")
	if findDiag(diags, hcl.DiagError, "Invalid sync") == nil {
		t.Errorf("sync = \"always\" accepted:%s", diagText(diags))
	}
	_, _, diags = parseTest(t, base+`filter "audit" {
  sync          = "none"
  sync_interval = "5s"
}
`, "")
	if findDiag(diags, hcl.DiagWarning, "sync_interval has no effect") == nil {
		t.Errorf("sync_interval without sync = \"interval\" not warned about:%s", diagText(diags))
	}
}
