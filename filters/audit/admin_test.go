package audit

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// An admin record encodes as encoding/json would, and joins the chain.
func TestRecordAdmin(t *testing.T) {
	now := time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, s := range awkward {
		rec := newAdminRecord(AdminAction{Action: "block", User: s, Addr: "192.0.2.0/24", Session: s,
			Until: now.Add(time.Hour), Sessions: 2, Via: "unix"}, now)
		if got, want := rec.appendJSON(nil), stdJSON(t, rec); !bytes.Equal(got, want) {
			t.Errorf("appendJSON = %s, want %s", got, want)
		}
	}

	path := filepath.Join(t.TempDir(), "audit.jsonl")
	f, err := New(Config{Path: path, Chain: true, Sync: SyncRecord}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.RecordAdmin(AdminAction{Action: "kick", User: "alice", Sessions: 1, Via: "unix"})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"event":"admin"`) || !strings.Contains(string(data), `"action":"kick","user":"alice"`) {
		t.Fatalf("trail = %s", data)
	}
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	if _, err := Check(fh, "", false); err != nil {
		t.Fatalf("chain with an admin record does not verify: %v", err)
	}
}
