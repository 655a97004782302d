package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// Goals for 1,000 concurrent sessions (issue 10): throughput vs direct,
// the audit filter's cost, and zero errors.
const (
	goalConcurrentRatio = 0.95
	goalAuditRatio      = 0.95 // audit on / off, RETR, bulk and logins: within 5 %
)

// runConcurrent keeps many logged-in sessions retrieving and verifying
// messages for a while, through each target in turn.
func runConcurrent(args []string) error {
	c := newCommon("concurrent", "-sessions logged-in sessions RETR and verify messages for -duration; MB/s, errors.", 3, 0, false)
	sessions := c.fs.Int("sessions", 1000, "concurrent sessions (1..10000)")
	dur := c.fs.Duration("duration", 60*time.Second, "measured time per target and round (at most 30m)")
	prefix := c.fs.String("user-prefix", "load", "login names are this prefix and three digits")
	users := c.fs.Int("users", 1000, "number of users prefix000 ... (1..1000)")
	msgs := c.fs.Int("messages", 10, "each session cycles through messages 1..N of its mailbox (1..1000)")
	par := c.fs.Int("parallel", 32, "sessions logging in at once (1..1000)")
	idle := c.fs.Int("idle", 0, "idle sessions (greeting read, never logged in) held open through the same target during each round, probed with CAPA at its end (0..15000)")
	idleList := c.fs.String("idle-targets", "", "comma-separated targets that get the -idle sessions (default: all)")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if c.pass == "" {
		return errors.New("-pass (the load users' password) is required")
	}
	if *sessions < 1 || *sessions > 10000 || *users < 1 || *users > 1000 || *msgs < 1 || *msgs > 1000 ||
		*par < 1 || *par > 1000 || *dur <= 0 || *dur > 30*time.Minute || *idle < 0 || *idle > 15000 {
		return errors.New("flag out of range (see popload concurrent -h)")
	}
	withIdle, err := idleTargets(*idleList, c.targets)
	if err != nil {
		return err
	}
	if lim, err := raiseNoFile(uint64(*sessions+*idle) + 100); err != nil || lim < uint64(*sessions+*idle)+100 {
		return fmt.Errorf("need %d open files, the limit is %d (%v)", *sessions+*idle+100, lim, err)
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	d.bufSize = 16 << 10
	book := &digestBook{m: map[string]digest{}}
	res := c.result("throughput of all sessions", "MB/s")
	samples := make([][]float64, len(c.targets))
	rates := make([][]float64, len(c.targets))
	cpuPerMsg := make([][]float64, len(c.targets))
	err = c.alternate(func(i int, t target, measured bool) error {
		cpu0, cpuErr := 0.0, error(nil)
		if t.PID != 0 {
			cpu0, cpuErr = cpuSeconds(t.PID)
		}
		var hold *idleHold
		if *idle > 0 && withIdle[t.Name] {
			h, err := openIdle(d, t.Addr, *idle, *par)
			if err != nil {
				res.Errors++
				return err
			}
			hold = h
			defer hold.close()
		}
		r := concurrentRound(d, t.Addr, *prefix, c.pass, *users, *sessions, *par, *msgs, *dur, book)
		if hold != nil {
			if err := hold.probe(*par); err != nil {
				res.Errors++
				return err
			}
		}
		res.Errors += r.errors
		if r.err != nil {
			return fmt.Errorf("%d errors, first: %w", r.errors, r.err)
		}
		if measured {
			samples[i] = append(samples[i], r.mbps)
			rates[i] = append(rates[i], r.msgsPerSec)
		}
		if t.PID != 0 && measured && cpuErr == nil && r.messages > 0 {
			cpu1, err := cpuSeconds(t.PID)
			if err != nil {
				return err
			}
			cpuPerMsg[i] = append(cpuPerMsg[i], (cpu1-cpu0)/float64(r.messages)*1e6)
		}
		return cpuErr
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "popload: concurrent: %v\n", err)
	}
	c.addWithRatios(res, samples, "concurrent throughput", ratioGoals{baseline: goalConcurrentRatio, audit: goalAuditRatio})
	for i, t := range c.targets {
		res.derive("messages/s "+t.Name, "messages/s", rates[i])
	}
	for i, t := range c.targets {
		if t.PID != 0 {
			res.derive("CPU per message "+t.Name+" (logins included)", "CPU µs", cpuPerMsg[i])
		}
	}
	res.goal(fmt.Sprintf("errors in %d concurrent sessions", *sessions), "<=", 0, float64(res.Errors), "errors")
	res.note("%d sessions (users %s000..), each RETRs messages 1..%d of its mailbox in turn for %s per target and round",
		*sessions, *prefix, *msgs, *dur)
	if *idle > 0 {
		names := []string{}
		for _, t := range c.targets {
			if withIdle[t.Name] {
				names = append(names, t.Name)
			}
		}
		res.note("%d idle sessions (greeting read, not logged in) held open through %v during each round, every one answering CAPA at its end", *idle, names)
	}
	res.note("every body checked against the first read of the same user's message (%d distinct user/message pairs), through any target", book.len())
	return c.finish(res)
}

// digestBook remembers the digest of each user's messages the first time
// one is read, through whichever target, and checks every later read.
type digestBook struct {
	mu sync.Mutex
	m  map[string]digest
}

// check records dg for user's message n, or compares it with the record.
func (b *digestBook) check(user string, n int, dg digest) error {
	key := fmt.Sprintf("%s/%d", user, n)
	b.mu.Lock()
	defer b.mu.Unlock()
	ref, ok := b.m[key]
	if !ok {
		b.m[key] = dg
		return nil
	}
	if dg != ref {
		return fmt.Errorf("%s message %d differs from its first read: %d octets SHA-256 %s, first %d octets SHA-256 %s",
			user, n, dg.Octets, dg.SHA256, ref.Octets, ref.SHA256)
	}
	return nil
}

func (b *digestBook) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.m)
}

// concurrentResult is one target's round of the concurrent scenario.
type concurrentResult struct {
	mbps, msgsPerSec float64
	messages         int64
	errors           int
	err              error // the first error
}

// concurrentRound logs in all sessions, then lets each RETR and verify
// messages until dur has passed, then quits them all.
func concurrentRound(d *dialer, addr, prefix, pass string, users, n, par, msgs int, dur time.Duration, book *digestBook) concurrentResult {
	var res concurrentResult
	conns := make([]*conn, n)
	counts := make([]int, n) // messages each session cycles through
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if err := forEach(n, par, func(k int) error {
		c, err := d.dial(addr)
		if err != nil {
			return err
		}
		conns[k] = c
		if err := c.login(userName(prefix, k%users), pass); err != nil {
			return err
		}
		stat, err := c.cmd("STAT")
		if err != nil {
			return err
		}
		var count, size int
		if _, err := fmt.Sscanf(stat, "+OK %d %d", &count, &size); err != nil || count < 1 {
			return fmt.Errorf("mailbox of %s: STAT %q: no messages", userName(prefix, k%users), stat)
		}
		counts[k] = min(count, msgs)
		return nil
	}); err != nil {
		res.errors, res.err = 1, fmt.Errorf("logging in: %w", err)
		return res
	}
	var octets, done, failed atomic.Int64
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for k, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := userName(prefix, k%users)
			m := k % counts[k]
			for time.Now().Before(deadline) {
				m = m%counts[k] + 1
				dg, err := c.retr(m)
				if err == nil {
					err = book.check(user, m, dg)
				}
				if err != nil {
					failed.Add(1)
					once.Do(func() { res.err = fmt.Errorf("session %d: %w", k, err) })
					return
				}
				octets.Add(dg.Octets)
				done.Add(1)
			}
		}()
	}
	wg.Wait()
	secs := time.Since(start).Seconds()
	res.mbps = float64(octets.Load()) / secs / 1e6
	res.msgsPerSec = float64(done.Load()) / secs
	res.messages = done.Load()
	res.errors = int(failed.Load())
	if err := forEach(n, par, func(k int) error {
		c := conns[k]
		conns[k] = nil
		return c.quit()
	}); err != nil && res.err == nil {
		res.errors++
		res.err = fmt.Errorf("QUIT: %w", err)
	}
	return res
}
