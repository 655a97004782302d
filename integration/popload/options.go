package main

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// target is one server a scenario measures: the POP3 server itself, or a
// proxy in front of it.
type target struct {
	Name string
	Addr string
	PID  int // process serving the target, 0 when unknown
}

// targetList is a repeatable -target NAME=HOST:PORT flag; order matters.
type targetList []target

func (l *targetList) String() string {
	parts := make([]string, len(*l))
	for i, t := range *l {
		parts[i] = t.Name + "=" + t.Addr
	}
	return strings.Join(parts, ",")
}

func (l *targetList) Set(v string) error {
	name, addr, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return fmt.Errorf("want NAME=HOST:PORT, got %q", v)
	}
	if err := checkLoopback(addr); err != nil {
		return err
	}
	for _, t := range *l {
		if t.Name == name {
			return fmt.Errorf("target %q given twice", name)
		}
	}
	*l = append(*l, target{Name: name, Addr: addr})
	return nil
}

// checkLoopback accepts only literal loopback addresses, so no traffic can
// leave the machine whatever the flags say.
func checkLoopback(addr string) error {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: want a literal IP:PORT such as 127.0.0.1:110 or [::1]:110", addr)
	}
	if !ap.Addr().Unmap().IsLoopback() {
		return fmt.Errorf("address %q is not a loopback address; popload only talks to 127.0.0.0/8 and ::1", addr)
	}
	return nil
}

// pidMap is a repeatable -pid NAME=PID flag.
type pidMap map[string]int

func (m pidMap) String() string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%s=%d", k, v))
	}
	return strings.Join(parts, ",")
}

func (m pidMap) Set(v string) error {
	name, p, ok := strings.Cut(v, "=")
	pid, err := strconv.Atoi(p)
	if !ok || name == "" || err != nil || pid <= 0 {
		return fmt.Errorf("want NAME=PID, got %q", v)
	}
	m[name] = pid
	return nil
}

// pairMap is a repeatable -audit AUDITED=PLAIN flag.
type pairMap map[string]string

func (m pairMap) String() string {
	parts := make([]string, 0, len(m))
	for k, v := range m {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(parts, ",")
}

func (m pairMap) Set(v string) error {
	a, b, ok := strings.Cut(v, "=")
	if !ok || a == "" || b == "" || a == b {
		return fmt.Errorf("want AUDITED=PLAIN, two different target names, got %q", v)
	}
	m[a] = b
	return nil
}

// common holds the flags every scenario shares.
type common struct {
	fs         *flag.FlagSet
	targets    targetList
	pids       pidMap
	rounds     int
	warmup     int
	useTLS     bool
	caFile     string
	serverName string
	insecure   bool
	user, pass string
	subject    string   // -subject as given: comma-separated target names
	subjects   []string // the targets whose goals are checked
	versus     string   // -versus: the target the subjects must not fall below
	audits     pairMap  // -audit: audited target name -> the same listener without audit
	auditFile  string   // -audit-file: the audit trail the audited targets write
	label      string
	jsonPath   string
	timeout    time.Duration
}

// newCommon returns a flag set for scenario name with the shared flags
// registered; rounds, warmup and useTLS are the scenario's defaults.
func newCommon(name, summary string, rounds, warmup int, useTLS bool) *common {
	c := &common{fs: flag.NewFlagSet(name, flag.ContinueOnError), pids: pidMap{}, audits: pairMap{}}
	fs := c.fs
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: popload %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	fs.Var(&c.targets, "target", "`NAME=IP:PORT` of a target; repeat, in order; the first is the baseline")
	fs.Var(c.pids, "pid", "`NAME=PID` of the process serving target NAME (CPU and memory from /proc); repeatable")
	fs.IntVar(&c.rounds, "rounds", rounds, "measured rounds; each visits every target once, in order")
	fs.IntVar(&c.warmup, "warmup", warmup, "unmeasured rounds before the measured ones")
	fs.BoolVar(&c.useTLS, "tls", useTLS, "implicit TLS to every target")
	fs.StringVar(&c.caFile, "ca", "", "PEM `file` of the CA that signs the targets' certificates")
	fs.StringVar(&c.serverName, "servername", "", "TLS server name to send and verify (default: the target's IP)")
	fs.BoolVar(&c.insecure, "insecure", false, "do not verify TLS certificates (self-signed targets)")
	fs.StringVar(&c.user, "user", "", "login name")
	fs.StringVar(&c.pass, "pass", "", "password of -user")
	fs.StringVar(&c.subject, "subject", "popgate", "comma-separated `names` of the targets whose goals are checked against the baseline")
	fs.StringVar(&c.versus, "versus", "", "`NAME` of a target (such as HAProxy) the subjects are compared with per round")
	fs.Var(c.audits, "audit", "`AUDITED=PLAIN`: target AUDITED is target PLAIN with the audit filter on; their per-round ratio is reported; repeatable")
	fs.StringVar(&c.auditFile, "audit-file", "", "audit trail `file` the audited targets append to, for records written per session")
	fs.StringVar(&c.label, "label", "", "label for the report (default: the scenario name)")
	fs.StringVar(&c.jsonPath, "json", "", "append the JSON result line to `file`")
	fs.DurationVar(&c.timeout, "timeout", 60*time.Second, "limit for each network operation")
	return c
}

// parse parses args and checks the shared flags. minTargets is how many
// targets the scenario needs.
func (c *common) parse(args []string, minTargets int) error {
	if err := c.fs.Parse(args); err != nil {
		return err
	}
	if c.fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", c.fs.Args())
	}
	if len(c.targets) < minTargets {
		return fmt.Errorf("need at least %d -target flags, got %d", minTargets, len(c.targets))
	}
	if c.rounds < 1 || c.rounds > 1000 || c.warmup < 0 || c.warmup > 100 {
		return errors.New("-rounds must be 1..1000 and -warmup 0..100")
	}
	if c.timeout <= 0 {
		return errors.New("-timeout must be positive")
	}
	for name, pid := range c.pids {
		found := false
		for i := range c.targets {
			if c.targets[i].Name == name {
				c.targets[i].PID = pid
				found = true
			}
		}
		if !found {
			return fmt.Errorf("-pid %s=%d names no target", name, pid)
		}
	}
	if c.label == "" {
		c.label = c.fs.Name()
	}
	c.subjects = nil
	for _, s := range strings.Split(c.subject, ",") {
		if s = strings.TrimSpace(s); s != "" {
			c.subjects = append(c.subjects, s)
		}
	}
	names := []string{}
	if c.versus != "" {
		names = append(names, c.versus)
	}
	for a, p := range c.audits {
		names = append(names, a, p)
	}
	for _, n := range names {
		if c.index(n) < 0 {
			return fmt.Errorf("-versus or -audit names %q, which is no target", n)
		}
	}
	if c.auditFile != "" && len(c.audits) == 0 {
		return errors.New("-audit-file needs -audit")
	}
	return nil
}

// index returns the position of the target called name, or -1.
func (c *common) index(name string) int {
	for i, t := range c.targets {
		if t.Name == name {
			return i
		}
	}
	return -1
}

// isSubject reports whether target name is one whose goals are checked.
func (c *common) isSubject(name string) bool {
	for _, s := range c.subjects {
		if s == name {
			return true
		}
	}
	return false
}

// unaudited returns the index of the target that is target i without the
// audit filter, or -1 when target i is not an audited target.
func (c *common) unaudited(i int) int {
	p, ok := c.audits[c.targets[i].Name]
	if !ok {
		return -1
	}
	return c.index(p)
}

// dialer returns the dialer the flags describe.
func (c *common) dialer() (*dialer, error) {
	return newDialer(c.useTLS, c.caFile, c.serverName, c.insecure, c.timeout)
}

// needLogin checks that -user and -pass were given.
func (c *common) needLogin() error {
	if c.user == "" || c.pass == "" {
		return errors.New("-user and -pass are required")
	}
	return nil
}

// result starts a Result for this scenario.
func (c *common) result(metric, unit string) *Result {
	return newResult(c.fs.Name(), c.label, metric, unit, c.rounds, c.targets[0].Name, strings.Join(c.subjects, ","))
}

// finish prints r and appends it to -json.
func (c *common) finish(r *Result) error {
	return r.emit(c.jsonPath)
}

// userName formats load-test user i as prefix followed by three digits,
// the naming of integration/mkmail (load000 ... load999).
func userName(prefix string, i int) string { return fmt.Sprintf("%s%03d", prefix, i) }

// alternate runs fn for -warmup unmeasured rounds, then -rounds measured
// ones; every round visits the targets in order (A B A B ...). It stops at
// the first error.
func (c *common) alternate(fn func(i int, t target, measured bool) error) error {
	for round := 0; round < c.warmup+c.rounds; round++ {
		for i, t := range c.targets {
			if err := fn(i, t, round >= c.warmup); err != nil {
				return fmt.Errorf("round %d, %s: %w", round+1-c.warmup, t.Name, err)
			}
		}
	}
	return nil
}

// ratioGoals are the goals addWithRatios checks, each on the median of
// per-round ratios of a metric where more is better; 0 reports the ratio
// without a goal.
type ratioGoals struct {
	baseline float64 // each subject / the baseline (the first target)
	versus   float64 // each subject / the -versus target (HAProxy)
	audit    float64 // each -audit target / the same listener without audit
}

// addWithRatios adds one series per target; the per-round ratios of every
// other target to the first, of every subject to the -versus target, and
// of every audited target to its unaudited twin; and the goals g sets.
func (c *common) addWithRatios(res *Result, samples [][]float64, what string, g ratioGoals) {
	series := make([]Series, len(c.targets))
	for i, t := range c.targets {
		series[i] = res.add(t.Name, samples[i])
	}
	for i := 1; i < len(series); i++ {
		rs := res.ratio(series[0], series[i])
		if c.isSubject(c.targets[i].Name) && g.baseline > 0 {
			res.goal(fmt.Sprintf("%s %s/%s", what, c.targets[i].Name, c.targets[0].Name), ">=", g.baseline, rs.Median, "×")
		}
	}
	if v := c.index(c.versus); v >= 0 {
		for i, t := range c.targets {
			if i == v || !c.isSubject(t.Name) {
				continue
			}
			rs := res.ratio(series[v], series[i])
			if g.versus > 0 {
				res.goal(fmt.Sprintf("%s %s/%s", what, t.Name, c.versus), ">=", g.versus, rs.Median, "×")
			}
		}
	}
	for i, t := range c.targets {
		p := c.unaudited(i)
		if p < 0 {
			continue
		}
		rs := res.ratio(series[p], series[i])
		if g.audit > 0 {
			res.goal(fmt.Sprintf("%s audit on/off %s/%s", what, t.Name, c.targets[p].Name), ">=", g.audit, rs.Median, "×")
		}
	}
}

// cpu returns the CPU seconds the target's process has spent, or 0 when
// the target has no -pid.
func (t target) cpu() (float64, error) {
	if t.PID == 0 {
		return 0, nil
	}
	return cpuSeconds(t.PID)
}

// syscalls returns the read and write system calls of the target's
// process, or -1 when it has no -pid or /proc/PID/io cannot be read.
func (t target) syscalls() int64 {
	if t.PID == 0 {
		return -1
	}
	n, err := syscalls(t.PID)
	if err != nil {
		return -1
	}
	return n
}
