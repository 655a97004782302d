package metrics

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestHealthPartsNameWhatIsDegraded checks that registered parts appear
// under their names, that a part not OK makes /healthz degraded (503) and
// is named in "degraded", and that removing it restores "ok".
func TestHealthPartsNameWhatIsDegraded(t *testing.T) {
	s := New(hclog.NewNullLogger())
	get := func() (int, healthReport) {
		t.Helper()
		rec := httptest.NewRecorder()
		s.serveHealth(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var rep healthReport
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatalf("%s: %v", rec.Body, err)
		}
		return rec.Code, rep
	}
	s.SetHealthPart("cluster", func() HealthPart { return HealthPart{OK: true, Detail: map[string]string{"redis": "up"}} })
	code, rep := get()
	if code != http.StatusOK || rep.Status != "ok" || len(rep.Degraded) != 0 {
		t.Fatalf("all parts OK: HTTP %d, %+v", code, rep)
	}
	if d, _ := rep.Parts["cluster"].(map[string]any); d["redis"] != "up" {
		t.Errorf("cluster detail %v", rep.Parts["cluster"])
	}
	s.SetHealthPart("pool", func() HealthPart { return HealthPart{OK: false, Detail: "one server down"} })
	s.SetHealthPart("cluster", func() HealthPart { return HealthPart{OK: false} })
	code, rep = get()
	if code != http.StatusServiceUnavailable || rep.Status != "degraded" || !reflect.DeepEqual(rep.Degraded, []string{"cluster", "pool"}) {
		t.Fatalf("two parts degraded: HTTP %d, %+v", code, rep)
	}
	s.SetHealthPart("pool", nil)
	s.SetHealthPart("cluster", nil)
	if code, rep = get(); code != http.StatusOK || rep.Parts != nil {
		t.Fatalf("parts removed: HTTP %d, %+v", code, rep)
	}
}
