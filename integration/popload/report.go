package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// runReport reads JSON result lines from files and prints Markdown: a
// table of every goal, then one section per result.
func runReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: popload report FILE...\n\nPrint the JSON result lines in FILEs (other lines are skipped) as Markdown.\n")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("no files given")
	}
	var results []Result
	for _, name := range fs.Args() {
		rs, err := readResults(name)
		if err != nil {
			return err
		}
		results = append(results, rs...)
	}
	writeReport(os.Stdout, results)
	return nil
}

// readResults returns the Result lines of a file; other lines are skipped.
func readResults(name string) ([]Result, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("opening results: %w", err)
	}
	defer f.Close()
	var out []Result
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !bytes.HasPrefix(line, []byte(`{"scenario":`)) {
			continue
		}
		var r Result
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s: bad result line: %w", name, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return out, nil
}

// writeReport prints the goal summary and one section per result.
func writeReport(w io.Writer, results []Result) {
	fmt.Fprintln(w, "| Scenario | Goal | Target | Measured (median) | Status |")
	fmt.Fprintln(w, "|---|---|---|---|---|")
	for _, r := range results {
		for _, g := range r.Goals {
			fmt.Fprintf(w, "| %s | %s | %s %s %s | %s %s | %s |\n", r.Label, g.Name, opWord(g.Op), num(g.Limit), g.Unit,
				num(g.Value), g.Unit, statusWord(g.Pass))
		}
		if r.Errors > 0 {
			fmt.Fprintf(w, "| %s | no errors | 0 | %d errors | **FAILED** |\n", r.Label, r.Errors)
		}
	}
	for _, r := range results {
		fmt.Fprintf(w, "\n### %s\n\n", r.Label)
		fmt.Fprintf(w, "%s; %d measured round(s), baseline `%s`; median and range (min–max) over rounds.\n\n", r.Metric, r.Rounds, r.Baseline)
		fmt.Fprintln(w, "| Series | Median | Range | Unit |")
		fmt.Fprintln(w, "|---|---:|---:|---|")
		for _, s := range append(append([]Series(nil), r.Series...), r.Derived...) {
			fmt.Fprintf(w, "| %s | %s | %s–%s | %s |\n", s.Name, num(s.Median), num(s.Min), num(s.Max), s.Unit)
		}
		if len(r.Goals) > 0 {
			fmt.Fprintln(w)
			for _, g := range r.Goals {
				fmt.Fprintf(w, "- Goal: %s %s %s %s — measured %s %s: %s\n", g.Name, opWord(g.Op), num(g.Limit), g.Unit,
					num(g.Value), g.Unit, statusWord(g.Pass))
			}
		}
		if len(r.Notes) > 0 {
			fmt.Fprintln(w)
			for _, n := range r.Notes {
				fmt.Fprintf(w, "- %s\n", n)
			}
		}
		fmt.Fprintf(w, "\nErrors: %d. Took %.1f s, started %s. Command:\n\n```\n%s\n```\n", r.Errors, r.Seconds, r.Started, r.Command)
	}
}

func opWord(op string) string {
	return strings.NewReplacer(">=", "≥", "<=", "≤").Replace(op)
}

func statusWord(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
