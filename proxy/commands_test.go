package proxy

import (
	"context"
	"sync"
	"testing"

	"github.com/popgate/popgate/filters"
)

// verbRecorder is a filter that records the verb of every client command
// it is asked to serve.
type verbRecorder struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (v *verbRecorder) Name() string { return "verb-recorder" }
func (v *verbRecorder) Command(ctx context.Context, ex *filters.Exchange) error {
	v.mu.Lock()
	v.seen[ex.Command.Verb] = true
	v.mu.Unlock()
	return nil
}

// TestReachesFiltersMatchesSession checks ReachesFilters against what a
// session really passes to its filter chain: STLS and unknown keywords
// never reach a filter, the commands the session relays do.
func TestReachesFiltersMatchesSession(t *testing.T) {
	fb := newFakeBackend(t, "Subject: one\r\n\r\nbody\r\n")
	rec := &verbRecorder{seen: map[string]bool{}}
	_, addr := startProxy(t, fb.addr(), func(cfg *Config) { cfg.Listeners[0].Filters = []filters.Filter{rec} })
	c := dialClient(t, addr)
	c.expect("+OK")
	script := []struct{ line, verb, answer string }{
		{"CAPA", "CAPA", "+OK"},
		{"STLS", "STLS", "-ERR"},
		{"UTF8", "UTF8", "-ERR"},
		{"XFOO", "XFOO", "-ERR"},
		{"USER alice", "USER", "+OK"},
		{"PASS secret", "PASS", "+OK"},
		{"STAT", "STAT", "+OK"},
		{"NOOP", "NOOP", "+OK"},
		{"QUIT", "QUIT", "+OK"},
	}
	for _, s := range script {
		c.send(s.line + "\r\n")
		c.expect(s.answer)
		if s.verb == "CAPA" {
			c.body()
		}
	}
	fb.waitEnd()
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range script {
		if rec.seen[s.verb] != ReachesFilters(s.verb) {
			t.Errorf("%s: the filter saw it: %v; ReachesFilters says %v", s.verb, rec.seen[s.verb], ReachesFilters(s.verb))
		}
	}
	for _, v := range []string{"RETR", "TOP", "DELE", "LIST", "UIDL", "RSET", "APOP", "AUTH"} {
		if !ReachesFilters(v) {
			t.Errorf("ReachesFilters(%q) = false", v)
		}
	}
	for _, v := range []string{"STLS", "LANG", "XCLIENT", "retr", ""} {
		if ReachesFilters(v) {
			t.Errorf("ReachesFilters(%q) = true", v)
		}
	}
}
