package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/popgate/popgate/admin"
	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/proxy"
)

// adminTimeout bounds one request to the admin interface.
const adminTimeout = 10 * time.Second

// adminFlags are the flags `popgate sessions` and `popgate kick` share.
type adminFlags struct {
	fset   *flag.FlagSet
	config string
	given  bool
	user   string
	addr   string
}

func newAdminFlags(name, synopsis string, stderr io.Writer) *adminFlags {
	f := &adminFlags{fset: flag.NewFlagSet(name, flag.ContinueOnError)}
	f.fset.SetOutput(stderr)
	f.fset.StringVar(&f.config, "config", config.DefaultFile, "configuration `FILE`, read to find the admin socket")
	f.fset.StringVar(&f.user, "user", "", "login name `U`, as typed or after rewriting")
	f.fset.StringVar(&f.addr, "addr", "", "client address or prefix `A`")
	f.fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: popgate %s\n", synopsis)
		f.fset.PrintDefaults()
	}
	return f
}

// parse parses args; ok false means return status.
func (f *adminFlags) parse(args []string, stderr io.Writer) (status int, ok bool) {
	if err := f.fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, false
		}
		return 2, false
	}
	if f.fset.NArg() > 0 {
		return usageError(stderr, fmt.Sprintf("%s: unexpected argument %q", f.fset.Name(), f.fset.Arg(0))), false
	}
	f.fset.Visit(func(fl *flag.Flag) { f.given = f.given || fl.Name == "config" })
	return 0, true
}

// client reads the configuration and connects to its admin interface.
func (f *adminFlags) client(stderr io.Writer) (*admin.Client, error) {
	cfg, source, files, diags := selectConfig(f.config, f.given)
	if diags.HasErrors() || cfg == nil {
		config.WriteDiagnostics(stderr, files, diags)
		return nil, fmt.Errorf("%s: configuration has errors", displaySource(source, f.config))
	}
	return admin.NewClient(cfg.Admin.SocketCandidates(cfg.StateDir), cfg.Admin.Address, cfg.Admin.Token)
}

// cmdSessions is "popgate sessions": one row per open session, or one
// JSON object per line with --json.
func cmdSessions(args []string, stdout, stderr io.Writer) int {
	f := newAdminFlags("sessions", "sessions [-config FILE] [--user U] [--addr A] [--backend B] [--json]", stderr)
	backend := f.fset.String("backend", "", "backend name or server address `B`")
	asJSON := f.fset.Bool("json", false, "print JSON lines")
	if status, ok := f.parse(args, stderr); !ok {
		return status
	}
	m, err := admin.ParseMatch(f.user, f.addr, "")
	if err != nil {
		return usageError(stderr, "sessions: "+err.Error())
	}
	m.Backend = *backend
	c, err := f.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popgate: sessions: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	list, err := c.Sessions(ctx, m)
	if err != nil {
		fmt.Fprintf(stderr, "popgate: sessions: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, si := range list {
			enc.Encode(si)
		}
		return 0
	}
	printSessions(stdout, list)
	return 0
}

// printSessions prints list as a table.
func printSessions(w io.Writer, list []proxy.SessionInfo) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLISTENER\tCLIENT\tTLS\tSTATE\tUSER\tBACKEND USER\tBACKEND\tSERVER\tAGE\tIDLE\tIN\tOUT\tCOMMAND")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for _, si := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n",
			si.ID, si.Listener, si.Client, dash(si.TLS), si.State, dash(si.User), dash(si.BackendUser),
			dash(si.Backend), dash(si.BackendAddr), si.Age.Round(time.Second), si.Idle.Round(time.Second),
			si.BytesIn, si.BytesOut, dash(strings.ReplaceAll(si.Command, "\t", " ")))
	}
	tw.Flush()
	fmt.Fprintf(w, "%d sessions\n", len(list))
}

// cmdKick is "popgate kick": close the sessions of a user, an address or
// prefix, or one session, without QUIT; with --block, block the user or
// address first.
func cmdKick(args []string, stdout, stderr io.Writer) int {
	f := newAdminFlags("kick", "kick [-config FILE] (--user U | --addr A | --id ID) [--block DURATION]", stderr)
	id := f.fset.String("id", "", "session `ID` (see popgate sessions)")
	block := f.fset.Duration("block", 0, "also refuse new logins of the user or address for `DURATION` (e.g. 30m, 24h)")
	if status, ok := f.parse(args, stderr); !ok {
		return status
	}
	n := 0
	for _, v := range []string{f.user, f.addr, *id} {
		if v != "" {
			n++
		}
	}
	if n != 1 {
		return usageError(stderr, "kick: give exactly one of --user, --addr and --id")
	}
	if *block < 0 {
		return usageError(stderr, "kick: --block must be positive")
	}
	if _, err := admin.ParseMatch("", f.addr, ""); err != nil {
		return usageError(stderr, "kick: "+err.Error())
	}
	req := admin.KickRequest{User: f.user, Addr: f.addr, ID: *id}
	if *block > 0 {
		req.Block = block.String()
	}
	c, err := f.client(stderr)
	if err != nil {
		fmt.Fprintf(stderr, "popgate: kick: %v\n", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	res, err := c.Kick(ctx, req)
	if err != nil {
		fmt.Fprintf(stderr, "popgate: kick: %v\n", err)
		return 1
	}
	for _, b := range res.Blocks {
		what := "user " + b.User
		if b.User == "" {
			what = "address " + b.Addr.String()
		}
		fmt.Fprintf(stdout, "blocked %s until %s\n", what, b.Until.Local().Format(time.RFC3339))
	}
	s := "s"
	if res.Kicked == 1 {
		s = ""
	}
	fmt.Fprintf(stdout, "kicked %d session%s\n", res.Kicked, s)
	return 0
}
