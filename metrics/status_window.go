package metrics

import (
	"sort"
	"sync"
	"time"
)

// windowMinutes is how far back the status page's activity counters
// reach, in one-minute buckets.
const windowMinutes = 15

// activityKind is one thing the status page counts per listener.
type activityKind int

const (
	actSessions  activityKind = iota // sessions started
	actLoginsOK                      // logins the backend accepted
	actLoginsBad                     // logins refused
	actThrottled                     // connections refused or answers delayed by limits
	actClean                         // scanner verdicts: clean
	actInfected                      // scanner verdicts: infected
	actScanError                     // scanner verdicts: no verdict (error, timeout)
	numActivityKinds
)

// verdictActivity maps the verdict label of popgate_scan_verdicts_total
// to the kind the status page counts.
var verdictActivity = map[string]activityKind{"clean": actClean, "infected": actInfected, "error": actScanError}

// activity is a count of each activityKind.
type activity [numActivityKinds]uint64

// add adds b to a.
func (a *activity) add(b *activity) {
	for i := range a {
		a[i] += b[i]
	}
}

// Sessions and the other accessors name activity's counts for the page's
// template.
func (a activity) Sessions() uint64   { return a[actSessions] }
func (a activity) LoginsOK() uint64   { return a[actLoginsOK] }
func (a activity) LoginsBad() uint64  { return a[actLoginsBad] }
func (a activity) Throttled() uint64  { return a[actThrottled] }
func (a activity) Clean() uint64      { return a[actClean] }
func (a activity) Infected() uint64   { return a[actInfected] }
func (a activity) ScanErrors() uint64 { return a[actScanError] }

// minuteRing holds one listener's counts for the last windowMinutes
// minutes; slot i holds the minute whose number (Unix time / 60) is
// minute[i], modulo windowMinutes.
type minuteRing struct {
	minute [windowMinutes]int64
	counts [windowMinutes]activity
}

// activityWindow keeps small rolling counters per listener, fed by the
// proxy's hooks: per-minute buckets over the last windowMinutes minutes.
// Its memory is bounded by the listeners ever configured. It is safe for
// concurrent use; the hooks are its only writers.
type activityWindow struct {
	now func() time.Time // time.Now, or a test's clock

	mu    sync.Mutex
	rings map[string]*minuteRing // by listener
}

func newActivityWindow(now func() time.Time) *activityWindow {
	if now == nil {
		now = time.Now
	}
	return &activityWindow{now: now, rings: map[string]*minuteRing{}}
}

// count adds one event of kind k on listener.
func (w *activityWindow) count(listener string, k activityKind) {
	m := w.now().Unix() / 60
	i := m % windowMinutes
	w.mu.Lock()
	defer w.mu.Unlock()
	r := w.rings[listener]
	if r == nil {
		r = &minuteRing{}
		w.rings[listener] = r
	}
	if r.minute[i] != m {
		r.minute[i] = m
		r.counts[i] = activity{}
	}
	r.counts[i][k]++
}

// listenerActivity is one listener's counts over the last 1, 5 and
// windowMinutes minutes (the current, partial minute included).
type listenerActivity struct {
	Listener                 string
	Last1, Last5, LastWindow activity
}

// sums returns every listener's counts, by name.
func (w *activityWindow) sums() []listenerActivity {
	now := w.now().Unix() / 60
	w.mu.Lock()
	out := make([]listenerActivity, 0, len(w.rings))
	for name, r := range w.rings {
		la := listenerActivity{Listener: name}
		for i := range r.minute {
			age := now - r.minute[i]
			if age < 0 || age >= windowMinutes {
				continue
			}
			c := &r.counts[i]
			if age < 1 {
				la.Last1.add(c)
			}
			if age < 5 {
				la.Last5.add(c)
			}
			la.LastWindow.add(c)
		}
		out = append(out, la)
	}
	w.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Listener < out[j].Listener })
	return out
}
