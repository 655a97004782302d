package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Series is one measured quantity: its samples, one per round, and their
// median and range.
type Series struct {
	Name    string    `json:"name"`
	Unit    string    `json:"unit"`
	Samples []float64 `json:"samples"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
}

// newSeries summarises samples.
func newSeries(name, unit string, samples []float64) Series {
	s := Series{Name: name, Unit: unit, Samples: samples}
	if len(samples) > 0 {
		s.Median = median(samples)
		s.Min, s.Max = slices.Min(samples), slices.Max(samples)
	}
	return s
}

// Goal is a target from the issues, checked against a measured value.
type Goal struct {
	Name  string  `json:"name"`
	Op    string  `json:"op"` // ">=" or "<="
	Limit float64 `json:"limit"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
	Pass  bool    `json:"pass"`
}

// Result is what a scenario prints as its JSON line.
type Result struct {
	Scenario string   `json:"scenario"`
	Label    string   `json:"label"`
	Metric   string   `json:"metric"`
	Unit     string   `json:"unit"`
	Rounds   int      `json:"rounds"`
	Baseline string   `json:"baseline"`
	Subject  string   `json:"subject"`
	Series   []Series `json:"series"`  // the metric, one series per target
	Derived  []Series `json:"derived"` // ratios, overheads, CPU, memory
	Goals    []Goal   `json:"goals"`
	Errors   int      `json:"errors"`
	Notes    []string `json:"notes,omitempty"`
	Command  string   `json:"command"`
	Started  string   `json:"started"`
	Seconds  float64  `json:"seconds"`
	OK       bool     `json:"ok"`

	start time.Time
}

func newResult(scenario, label, metric, unit string, rounds int, baseline, subject string) *Result {
	now := time.Now()
	return &Result{
		Scenario: scenario, Label: label, Metric: metric, Unit: unit, Rounds: rounds,
		Baseline: baseline, Subject: subject,
		Command: commandLine(), Started: now.UTC().Format(time.RFC3339), start: now,
	}
}

// commandLine is how popload was invoked, for the report.
func commandLine() string {
	parts := []string{"popload"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t'\"$") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// add appends the metric's series for target name.
func (r *Result) add(name string, samples []float64) Series {
	s := newSeries(name, r.Unit, samples)
	r.Series = append(r.Series, s)
	return s
}

// derive appends a derived series.
func (r *Result) derive(name, unit string, samples []float64) Series {
	s := newSeries(name, unit, samples)
	r.Derived = append(r.Derived, s)
	return s
}

// ratio appends the per-round ratios subject/baseline of two series
// measured in the same rounds, and returns them.
func (r *Result) ratio(base, subj Series) Series {
	n := min(len(base.Samples), len(subj.Samples))
	rs := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if base.Samples[i] != 0 {
			rs = append(rs, subj.Samples[i]/base.Samples[i])
		}
	}
	return r.derive(subj.Name+" / "+base.Name, "×", rs)
}

// goal records a goal; op is ">=" or "<=".
func (r *Result) goal(name, op string, limit, value float64, unit string) {
	pass := value >= limit
	if op == "<=" {
		pass = value <= limit
	}
	if math.IsNaN(value) {
		pass = false
	}
	r.Goals = append(r.Goals, Goal{Name: name, Op: op, Limit: limit, Value: value, Unit: unit, Pass: pass})
}

// note adds a free-form remark.
func (r *Result) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// emit prints the table and the JSON line, appends the line to jsonPath
// when set, and returns an error when the run had errors.
func (r *Result) emit(jsonPath string) error {
	r.Seconds = math.Round(time.Since(r.start).Seconds()*10) / 10
	r.OK = r.Errors == 0
	r.printTable(os.Stdout)
	line, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("encoding result: %w", err)
	}
	fmt.Println(string(line))
	if jsonPath != "" {
		f, err := os.OpenFile(jsonPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("opening -json file: %w", err)
		}
		_, werr := f.Write(append(line, '\n'))
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return fmt.Errorf("writing -json file: %w", werr)
		}
	}
	if !r.OK {
		return fmt.Errorf("%s: %d errors", r.Label, r.Errors)
	}
	return nil
}

// printTable writes the human-readable summary.
func (r *Result) printTable(w *os.File) {
	fmt.Fprintf(w, "\n== %s (%s, %d rounds, %.1f s) ==\n", r.Label, r.Metric, r.Rounds, r.Seconds)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "series\tunit\tmedian\tmin\tmax\tn")
	for _, s := range append(append([]Series(nil), r.Series...), r.Derived...) {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\n", s.Name, s.Unit, num(s.Median), num(s.Min), num(s.Max), len(s.Samples))
	}
	tw.Flush()
	for _, g := range r.Goals {
		fmt.Fprintf(w, "goal %-40s %s %s %s: %s %s\n", g.Name, g.Op, num(g.Limit), g.Unit, num(g.Value), passWord(g.Pass))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
	fmt.Fprintf(w, "errors: %d\n", r.Errors)
}

func passWord(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// num formats a value with about four significant digits.
func num(v float64) string {
	switch a := math.Abs(v); {
	case math.IsNaN(v):
		return "n/a"
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 100:
		return fmt.Sprintf("%.1f", v)
	case a >= 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3f", v)
	}
}

// median returns the median of xs (the mean of the middle two for an even
// count); NaN for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted xs.
func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	k := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[max(0, min(k-1, len(sorted)-1))]
}
