package metrics

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestReadyzFollowsReadinessNotHealth checks that /readyz answers 503
// while starting, 200 once ready even with a degraded part (which makes
// /healthz 503), and 503 from the moment a drain starts, and that
// /healthz names the readiness without changing its own status.
func TestReadyzFollowsReadinessNotHealth(t *testing.T) {
	s := New(hclog.NewNullLogger())
	ready := func(method string) (int, readyReport) {
		t.Helper()
		rec := httptest.NewRecorder()
		s.serveReady(rec, httptest.NewRequest(method, "/readyz", nil))
		var rep readyReport
		if method == http.MethodGet {
			if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
				t.Fatalf("%s: %v", rec.Body, err)
			}
		} else if rec.Body.Len() != 0 {
			t.Errorf("HEAD /readyz has a body: %q", rec.Body)
		}
		return rec.Code, rep
	}
	health := func() (int, healthReport) {
		t.Helper()
		rec := httptest.NewRecorder()
		s.serveHealth(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		var rep healthReport
		if err := json.Unmarshal(rec.Body.Bytes(), &rep); err != nil {
			t.Fatalf("%s: %v", rec.Body, err)
		}
		return rec.Code, rep
	}
	if code, rep := ready(http.MethodGet); code != http.StatusServiceUnavailable || rep.Status != "starting" {
		t.Errorf("before the listeners are up: HTTP %d, %+v; want 503 starting", code, rep)
	}
	s.SetReadiness(Ready)
	if code, rep := ready(http.MethodGet); code != http.StatusOK || rep.Status != "ready" {
		t.Errorf("ready: HTTP %d, %+v; want 200 ready", code, rep)
	}
	if code, _ := ready(http.MethodHead); code != http.StatusOK {
		t.Errorf("HEAD while ready: HTTP %d", code)
	}
	s.SetHealthPart("cluster", func() HealthPart { return HealthPart{OK: false, Detail: "redis down"} })
	if code, rep := health(); code != http.StatusServiceUnavailable || rep.Status != "degraded" || rep.Readiness != "ready" {
		t.Errorf("/healthz with a degraded part: HTTP %d, %+v; want 503 degraded, readiness ready", code, rep)
	}
	if code, rep := ready(http.MethodGet); code != http.StatusOK || rep.Status != "ready" {
		t.Errorf("/readyz with a degraded part: HTTP %d, %+v; want 200: a degraded part must not take the instance out", code, rep)
	}
	s.SetHealthPart("cluster", nil)
	s.SetReadiness(Draining)
	if code, rep := ready(http.MethodGet); code != http.StatusServiceUnavailable || rep.Status != "draining" {
		t.Errorf("draining: HTTP %d, %+v; want 503 draining", code, rep)
	}
	if code, _ := ready(http.MethodHead); code != http.StatusServiceUnavailable {
		t.Errorf("HEAD while draining: HTTP %d", code)
	}
	if code, rep := health(); code != http.StatusOK || rep.Status != "ok" || rep.Readiness != "draining" {
		t.Errorf("/healthz while draining: HTTP %d, %+v; want 200 ok, readiness draining", code, rep)
	}
}

// TestReadyzNilServer checks that a nil Server's readiness is Starting
// and SetReadiness on it does nothing.
func TestReadyzNilServer(t *testing.T) {
	var s *Server
	s.SetReadiness(Ready)
	if r := s.Readiness(); r != Starting {
		t.Errorf("nil server readiness %v", r)
	}
}
