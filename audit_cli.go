package main

import (
	"fmt"
	"io"
	"os"

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
