package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/popgate/popgate/config"
)

// version is the release version, set at build time with
// -ldflags "-X main.version=v1.2.3"; "dev" falls back to the module
// version or VCS revision recorded in the binary.
var version = "dev"

// serve and verifyAudit are the functions the run and audit verify
// commands call; tests replace them.
var (
	serve       = runServer
	verifyAudit = auditVerify
)

// usage is printed by "popgate help" and after a command-line mistake.
const usage = `Usage: popgate [COMMAND] [FLAGS]

popgate is a transparent POP3 proxy: TLS in front of legacy POP3 servers,
an audit trail of mailbox access, and virus scanning with ClamAV.

Commands:
  run [-config FILE]        run the proxy (the default command)
  validate [-config FILE]   check the configuration and exit
  version                   print the version
  audit verify FILE...      check the hash chain of audit logs, each file
                            its own chain (one file per instance)
  audit search [FLAGS] [FILE...]
                            search audit logs by user, address, event,
                            time and message ("popgate audit search -h")
  sessions [-config FILE] [--user U] [--addr A] [--backend B] [--json]
                            list the open sessions of a running popgate
  kick [-config FILE] (--user U | --addr A | --id ID) [--block DURATION]
                            close sessions without QUIT; --block also
                            refuses new logins for DURATION
  help                      print this help

FILE defaults to ./config.hcl. When -config is not given and ./config.hcl
does not exist, popgate uses its built-in configuration: a plaintext
listener on 127.0.0.1:1110 in front of a POP3 server on 127.0.0.1:110.
The configuration is described in docs/CONFIG.md.
`

func main() {
	os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
}

// cli runs the command line args (without the program name) and returns
// the exit status: 0 on success, 1 on failure, 2 on a usage error.
func cli(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return cmdRun(nil, stderr)
	}
	switch args[0] {
	case "run":
		return cmdRun(args[1:], stderr)
	case "validate":
		return cmdValidate(args[1:], stdout, stderr)
	case "version":
		if len(args) > 1 {
			return usageError(stderr, "version takes no arguments")
		}
		fmt.Fprintln(stdout, versionString())
		return 0
	case "audit":
		return cmdAudit(args[1:], stdout, stderr)
	case "sessions":
		return cmdSessions(args[1:], stdout, stderr)
	case "kick":
		return cmdKick(args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	if strings.HasPrefix(args[0], "-") {
		return cmdRun(args, stderr) // "popgate -config FILE" is "popgate run -config FILE"
	}
	return usageError(stderr, fmt.Sprintf("unknown command %q", args[0]))
}

// usageError prints msg and the usage to stderr and returns exit status 2.
func usageError(stderr io.Writer, msg string) int {
	fmt.Fprintf(stderr, "popgate: %s\n\n%s", msg, usage)
	return 2
}

// configFlags parses the flags of run and validate. validate also takes
// the file as its one argument. ok is false after a usage error, with
// status the exit status.
func configFlags(name string, args []string, stderr io.Writer, positional bool) (path string, given bool, status int, ok bool) {
	fset := flag.NewFlagSet(name, flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.StringVar(&path, "config", config.DefaultFile, "configuration `FILE`")
	fset.Usage = func() {
		fmt.Fprintf(stderr, "Usage: popgate %s [-config FILE]\n", name)
		fset.PrintDefaults()
	}
	if err := fset.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", false, 0, false
		}
		return "", false, 2, false
	}
	fset.Visit(func(f *flag.Flag) { given = given || f.Name == "config" })
	switch {
	case fset.NArg() == 1 && positional && !given:
		return fset.Arg(0), true, 0, true
	case fset.NArg() > 0:
		return "", false, usageError(stderr, fmt.Sprintf("%s: unexpected argument %q", name, fset.Arg(0))), false
	}
	return path, given, 0, true
}

// selectConfig loads the configuration file path; when it was not given
// explicitly and does not exist, it returns the built-in configuration and
// an empty source.
func selectConfig(path string, given bool) (cfg *config.Config, source string, files map[string]*hcl.File, diags hcl.Diagnostics) {
	if !given {
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			cfg, files, diags = config.Builtin()
			return cfg, "", files, diags
		}
	}
	cfg, files, diags = config.Load(path)
	return cfg, path, files, diags
}

// cmdRun is "popgate run": load the configuration and serve until
// runServer returns. Diagnostics and logs go to stderr.
func cmdRun(args []string, stderr io.Writer) int {
	path, given, status, ok := configFlags("run", args, stderr, false)
	if !ok {
		return status
	}
	cfg, source, files, diags := selectConfig(path, given)
	if err := config.WriteDiagnostics(stderr, files, diags); err != nil {
		fmt.Fprintf(stderr, "popgate: %v\n", err)
	}
	if diags.HasErrors() || cfg == nil {
		return 1
	}
	logger := config.NewLogger(cfg.Log, stderr)
	if source == "" {
		logger.Info("no configuration file found, using built-in defaults",
			"looked_for", path, "listen", cfg.Listeners[0].Address, "backend", cfg.Backends[0].Address)
	}
	if err := serve(cfg, source, logger); err != nil {
		logger.Error("popgate failed", "error", err)
		return 1
	}
	return 0
}

// cmdValidate is "popgate validate": print the diagnostics and say whether
// the configuration is usable. Warnings do not fail validation.
func cmdValidate(args []string, stdout, stderr io.Writer) int {
	path, given, status, ok := configFlags("validate", args, stderr, true)
	if !ok {
		return status
	}
	cfg, source, files, diags := selectConfig(path, given)
	if err := config.WriteDiagnostics(stderr, files, diags); err != nil {
		fmt.Fprintf(stderr, "popgate: %v\n", err)
	}
	if diags.HasErrors() || cfg == nil {
		fmt.Fprintf(stderr, "popgate: %s: configuration has errors\n", displaySource(source, path))
		return 1
	}
	fmt.Fprintf(stdout, "%s: configuration OK\n", displaySource(source, path))
	return 0
}

// displaySource names the configuration in messages.
func displaySource(source, looked string) string {
	if source == "" {
		return fmt.Sprintf("built-in defaults (no %s)", looked)
	}
	return source
}

// cmdAudit is "popgate audit verify FILE...": it checks every file as a
// chain of its own (one per popgate instance) and prints every segment of
// each chain and every break between them (auditVerifyFiles), and exits 0
// when every break of every file was recorded by popgate (a chain_break
// record), 1 otherwise.
func cmdAudit(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "search" {
		return cmdAuditSearch(args[1:], stdout, stderr) // audit_search.go
	}
	if len(args) < 2 || args[0] != "verify" {
		return usageError(stderr, "usage: popgate audit verify FILE...")
	}
	return auditVerifyFiles(args[1:], stdout, stderr)
}

// versionString is "popgate VERSION (GOVERSION)".
func versionString() string {
	v := version
	if v == "dev" {
		v = buildVersion()
	}
	return fmt.Sprintf("popgate %s (%s)", v, runtime.Version())
}

// buildVersion derives a version from the build information: the module
// version when built from a tagged module, else "dev" with the VCS
// revision if recorded.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	return "dev-" + rev + dirty
}
