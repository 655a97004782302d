package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/filters/audit"
)

// auditSearchUsage is printed after a usage error of "popgate audit search".
const auditSearchUsage = `Usage: popgate audit search [FLAGS] [FILE...]

Search audit trails. Every flag given must match; a flag given more than
once, or with comma-separated values, matches any of its values.

  --user U     the session's user: client or backend user of its auth
               record, case-insensitively; every record of the session
               matches (its retrieves and deletes too)
  --addr A     client address or prefix: 203.0.113.7, 203.0.113.0/24
  --event E    event: session_start, tls, auth, command, retrieve, delete,
               commit, scan, session_end, chain_break, ...
  --since T    records at or after T; --until T: records before T.
               T is an RFC 3339 time (2025-05-01T08:00:00Z), a date
               (2025-05-01, UTC) or a duration before now in Go's syntax
               plus d (24h) and w (7d): 90m, 36h, 7d, 1w2d
  --msg M      a message's UIDL or Message-ID (retrieve, delete, scan)
  --json       JSON lines: each record as written, plus "chain", "file"
               and "line"
  -config FILE with no FILE arguments, search the audit files this
               configuration writes (default ./config.hcl)

Each file's hash chain is verified as it is read; the chain column says
ok, broken (the record, or an unrecorded break before it, fails
verification) or unchained. Rotated files are searched in the order given,
older first to follow sessions across a rotation; .gz files are read too.
`

// listFlag is a flag that may be given more than once, each value
// possibly a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			*l = append(*l, s)
		}
	}
	return nil
}

// cmdAuditSearch is "popgate audit search": it prints the records of the
// audit files that match the flags, as a table or JSON lines. It exits 0
// after a search (whether or not anything matched), 1 when a file cannot
// be read, 2 on a usage error. A broken chain is reported on stderr.
func cmdAuditSearch(args []string, stdout, stderr io.Writer) int {
	fset := flag.NewFlagSet("audit search", flag.ContinueOnError)
	fset.SetOutput(io.Discard)
	var users, addrs, events, msgs listFlag
	var since, until, cfgPath string
	var asJSON bool
	fset.Var(&users, "user", "")
	fset.Var(&addrs, "addr", "")
	fset.Var(&events, "event", "")
	fset.Var(&msgs, "msg", "")
	fset.StringVar(&since, "since", "", "")
	fset.StringVar(&until, "until", "", "")
	fset.BoolVar(&asJSON, "json", false, "")
	fset.StringVar(&cfgPath, "config", config.DefaultFile, "")
	fail := func(msg string) int {
		fmt.Fprintf(stderr, "popgate: audit search: %s\n\n%s", msg, auditSearchUsage)
		return 2
	}
	// Flags may come before or after the files.
	var files []string
	for rest := args; ; {
		if err := fset.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				fmt.Fprint(stdout, auditSearchUsage)
				return 0
			}
			return fail(err.Error())
		}
		if fset.NArg() == 0 {
			break
		}
		files = append(files, fset.Arg(0))
		rest = fset.Args()[1:]
	}
	q := audit.Query{Users: users, Events: events, Msgs: msgs}
	for _, a := range addrs {
		p, err := parsePrefix(a)
		if err != nil {
			return fail(err.Error())
		}
		q.Addrs = append(q.Addrs, p)
	}
	now := time.Now()
	var err error
	if since != "" {
		if q.Since, err = audit.ParseTimeBound(since, now); err != nil {
			return fail("--since: " + err.Error())
		}
	}
	if until != "" {
		if q.Until, err = audit.ParseTimeBound(until, now); err != nil {
			return fail("--until: " + err.Error())
		}
	}
	if len(files) == 0 {
		if files, err = configAuditFiles(cfgPath); err != nil {
			return fail(err.Error())
		}
	}
	return runAuditSearch(q, files, asJSON, stdout, stderr)
}

// configAuditFiles returns the files the audit filters of the
// configuration at path write.
func configAuditFiles(path string) ([]string, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no FILE given, and no configuration to take the audit files from: %w", err)
	}
	cfg, _, diags := config.Load(path)
	if diags.HasErrors() || cfg == nil {
		return nil, fmt.Errorf("no FILE given, and %s cannot be loaded: %s", path, diags.Error())
	}
	var files []string
	for _, f := range cfg.Filters {
		if c, ok := f.Settings.(*audit.Config); ok && c.Path != audit.Stdout {
			files = append(files, c.Path)
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no FILE given, and %s has no audit filter writing a file", path)
	}
	return files, nil
}

// parsePrefix reads an address or a CIDR prefix.
func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("--addr %q: %w", s, err)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("--addr %q: not an IP address or prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// runAuditSearch searches files in order and prints what it finds.
func runAuditSearch(q audit.Query, files []string, asJSON bool, stdout, stderr io.Writer) int {
	out := bufio.NewWriterSize(stdout, 64<<10)
	var emit func(*audit.Match) error
	var table *tabwriter.Writer
	if asJSON {
		emit = func(m *audit.Match) error { return writeMatchJSON(out, m) }
	} else {
		table = tabwriter.NewWriter(out, 0, 8, 2, ' ', 0)
		fmt.Fprintln(table, "TIME\tEVENT\tUSER\tCLIENT\tSESSION\tCHAIN\tDETAILS")
		emit = func(m *audit.Match) error { return writeMatchRow(table, m) }
	}
	s := audit.NewSearcher(q, emit)
	status := 0
	for _, name := range files {
		rep, err := searchFile(s, name)
		if err != nil {
			fmt.Fprintf(stderr, "popgate: %v\n", err)
			status = 1
			continue
		}
		for _, b := range rep.Breaks {
			if !b.Recorded {
				fmt.Fprintf(stderr, "popgate: audit search: %s: chain broken at line %d: %s; records after it are marked broken\n", name, b.Line, b.Reason)
				break
			}
		}
	}
	s.Close()
	if table != nil {
		table.Flush()
	}
	if err := out.Flush(); err != nil {
		fmt.Fprintf(stderr, "popgate: audit search: %v\n", err)
		return 1
	}
	fmt.Fprintf(stderr, "popgate: audit search: %d records matched of %d in %d files (%s)\n",
		s.Stats.Matches, s.Stats.Records, s.Stats.Files, sizeString(s.Stats.Bytes))
	return status
}

func searchFile(s *audit.Searcher, name string) (*audit.Report, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("audit search: %w", err)
	}
	defer f.Close()
	return s.File(name, f)
}

// writeMatchJSON writes the record as it is in the file with the chain
// mark, file and line added as its last members.
func writeMatchJSON(w *bufio.Writer, m *audit.Match) error {
	raw := bytes.TrimRight(m.Raw, " \t\r")
	i := bytes.LastIndexByte(raw, '}')
	if i < 0 {
		return nil
	}
	w.Write(raw[:i])
	if len(bytes.TrimSpace(raw[1:i])) > 0 {
		w.WriteByte(',')
	}
	fmt.Fprintf(w, `"chain":%q,"file":`, m.Chain)
	name, _ := json.Marshal(m.File)
	w.Write(name)
	fmt.Fprintf(w, `,"line":%d}`+"\n", m.Line)
	return nil
}

// detailFields are the fields shown in the table's DETAILS column, per
// event; other events show every field beyond the header.
var detailFields = map[string][]string{
	audit.EventSessionStart: {"local", "tls_version", "sni"},
	audit.EventTLS:          {"tls_version", "sni"},
	audit.EventAuth:         {"result", "mechanism", "backend", "code"},
	audit.EventCommand:      {"verb", "args", "out", "status", "code", "error"},
	audit.EventRetrieve:     {"verb", "msg", "lines", "uidl", "message_id", "size", "complete"},
	audit.EventDelete:       {"msg", "uidl"},
	audit.EventCommit:       {"count", "msgs"},
	audit.EventScan:         {"msg", "verdict", "virus", "action", "error"},
	audit.EventSessionEnd:   {"reason", "duration_ms", "deletes_marked", "deletes_committed"},
	audit.EventChainBreak:   {"reason", "skipped_offset", "skipped_bytes"},
}

var headerFields = map[string]bool{"time": true, "event": true, "instance": true, "session": true, "client": true,
	"listener": true, "prev_hash": true, "hash": true}

// writeMatchRow writes one table row.
func writeMatchRow(w io.Writer, m *audit.Match) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(m.Raw, &fields); err != nil {
		return nil
	}
	names := detailFields[m.Event]
	if names == nil {
		for k := range fields {
			if !headerFields[k] {
				names = append(names, k)
			}
		}
		slices.Sort(names)
	}
	var details []string
	for _, k := range names {
		v, ok := fields[k]
		if !ok {
			continue
		}
		var s string
		if json.Unmarshal(v, &s) != nil {
			s = string(v) // a number, a bool, a list
		}
		if s == "" || s == "null" {
			continue
		}
		details = append(details, k+"="+cell(s))
	}
	t := "-"
	if !m.Time.IsZero() {
		t = m.Time.UTC().Format("2006-01-02T15:04:05.000Z")
	}
	_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t, or(m.Event, "-"), or(cell(m.User), "-"),
		or(m.Client, "-"), or(sessionCell(m), "-"), m.Chain, strings.Join(details, " "))
	return err
}

// sessionCell is the SESSION column: the session id, after its instance
// and a slash when the record names one (ids are unique per instance).
func sessionCell(m *audit.Match) string {
	if m.Instance == "" || m.Session == "" {
		return m.Session
	}
	return cell(m.Instance) + "/" + m.Session
}

// cell keeps a value on one table cell: no tabs or newlines, quoted when
// it has spaces.
func cell(s string) string {
	if strings.ContainsAny(s, " \t\r\n\"") {
		return strconv.Quote(s)
	}
	return s
}

func or(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

// sizeString prints n octets in MiB or GiB.
func sizeString(n int64) string {
	if n >= 1<<30 {
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}
