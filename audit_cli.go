package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/popgate/popgate/filters/audit"
)

// auditVerify checks the hash chain of the audit log at path
// ("popgate audit verify"). The report is returned with the error of a
// break popgate did not record, so both can be printed.
func auditVerify(path string) (*audit.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("audit verify: %w", err)
	}
	defer f.Close()
	return audit.Check(f, "", false)
}

// auditVerifyFiles verifies each of paths as a chain of its own and
// returns the exit status: 0 when every file verifies, 1 otherwise. With
// one file the report is printed as it is; with several, every line of a
// file's report starts with "FILE: ", each file ends with a result line
// ("FILE: audit chain OK (...)" or "FILE: FAILED: why"), and a summary line
// counts the files that failed. A file that fails does not stop the
// others from being checked.
func auditVerifyFiles(paths []string, stdout, stderr io.Writer) int {
	if len(paths) == 1 {
		rep, err := verifyAudit(paths[0])
		if rep != nil {
			printAuditReport(stdout, rep, err == nil)
		}
		if err != nil {
			fmt.Fprintf(stderr, "popgate: audit verify %s: %v\n", paths[0], err)
			return 1
		}
		return 0
	}
	failed := 0
	for _, path := range paths {
		rep, err := verifyAudit(path)
		var b bytes.Buffer
		if rep != nil {
			printAuditReport(&b, rep, err == nil)
		}
		for _, line := range strings.SplitAfter(b.String(), "\n") {
			if line != "" {
				fmt.Fprintf(stdout, "%s: %s", path, line)
			}
		}
		if err != nil {
			failed++
			fmt.Fprintf(stdout, "%s: FAILED: %v\n", path, err)
			fmt.Fprintf(stderr, "popgate: audit verify %s: %v\n", path, err)
		}
	}
	if failed > 0 {
		fmt.Fprintf(stdout, "%d of %d audit files FAILED verification\n", failed, len(paths))
		return 1
	}
	fmt.Fprintf(stdout, "all %d audit files verified: every chain OK\n", len(paths))
	return 0
}

// printAuditReport prints each segment of a checked audit log and each
// break between segments, in file order, and a summary line when ok (every
// break was recorded by popgate).
func printAuditReport(w io.Writer, rep *audit.Report, ok bool) {
	for i, s := range rep.Segments {
		if i > 0 && i-1 < len(rep.Breaks) {
			printAuditBreak(w, rep.Breaks[i-1])
		}
		start := ""
		if s.StartsWithBreak {
			start = ", starting with popgate's chain_break record"
		}
		fmt.Fprintf(w, "segment %d: lines %d-%d, %d records%s\n", i+1, s.FirstLine, s.LastLine, s.Records, start)
	}
	for _, b := range rep.Breaks[max(len(rep.Segments)-1, 0):] {
		printAuditBreak(w, b) // a break at the end of the file
	}
	if !ok {
		return
	}
	if len(rep.Breaks) == 0 {
		fmt.Fprintf(w, "audit chain OK (%d records)\n", rep.Records)
		return
	}
	fmt.Fprintf(w, "audit chain OK (%d records, %d segments, %d breaks all recorded by popgate)\n",
		rep.Records, len(rep.Segments), len(rep.Breaks))
}

func printAuditBreak(w io.Writer, b audit.Break) {
	who := "NOT recorded by popgate"
	if b.Recorded {
		who = "recorded by popgate"
	}
	fmt.Fprintf(w, "break at line %d (offset %d): %d lines, %d octets skipped; %s: %s\n",
		b.Line, b.Offset, b.Lines, b.Bytes, who, b.Reason)
}
