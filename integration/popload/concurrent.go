package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// goalConcurrentRatio is the throughput goal for 1,000 concurrent
// sessions, vs direct; the other goal is zero errors.
const goalConcurrentRatio = 0.95

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
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if c.pass == "" {
		return errors.New("-pass (the load users' password) is required")
	}
	if *sessions < 1 || *sessions > 10000 || *users < 1 || *users > 1000 || *msgs < 1 || *msgs > 1000 ||
		*par < 1 || *par > 1000 || *dur <= 0 || *dur > 30*time.Minute {
		return errors.New("flag out of range (see popload concurrent -h)")
	}
	if _, err := raiseNoFile(uint64(*sessions) + 100); err != nil {
		return err
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	d.bufSize = 16 << 10
	ref, err := referenceDigests(d, c.targets[0].Addr, userName(*prefix, 0), c.pass, *msgs)
	if err != nil {
		return fmt.Errorf("reference digests from %s: %w", c.targets[0].Name, err)
	}
	res := c.result("throughput of all sessions", "MB/s")
	samples := make([][]float64, len(c.targets))
	rates := make([][]float64, len(c.targets))
	err = c.alternate(func(i int, t target, measured bool) error {
		r := concurrentRound(d, t.Addr, *prefix, c.pass, *users, *sessions, *par, *dur, ref)
		res.Errors += r.errors
		if r.err != nil {
			return fmt.Errorf("%d errors, first: %w", r.errors, r.err)
		}
		if measured {
			samples[i] = append(samples[i], r.mbps)
			rates[i] = append(rates[i], r.msgsPerSec)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "popload: concurrent: %v\n", err)
	}
	c.addWithRatios(res, samples, "concurrent throughput", goalConcurrentRatio)
	for i, t := range c.targets {
		res.derive("messages/s "+t.Name, "messages/s", rates[i])
	}
	res.goal(fmt.Sprintf("errors in %d concurrent sessions", *sessions), "<=", 0, float64(res.Errors), "errors")
	res.note("%d sessions (users %s000..), each RETRs messages 1..%d in turn for %s per target and round; every body checked against the SHA-256 read once before",
		*sessions, *prefix, *msgs, *dur)
	return c.finish(res)
}

// referenceDigests reads messages 1..n of user once.
func referenceDigests(d *dialer, addr, user, pass string, n int) ([]digest, error) {
	c, err := d.dial(addr)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := c.login(user, pass); err != nil {
		return nil, err
	}
	ref := make([]digest, n+1)
	for m := 1; m <= n; m++ {
		if ref[m], err = c.retr(m); err != nil {
			return nil, fmt.Errorf("RETR %d: %w", m, err)
		}
	}
	return ref, c.quit()
}

// concurrentResult is one target's round of the concurrent scenario.
type concurrentResult struct {
	mbps, msgsPerSec float64
	errors           int
	err              error // the first error
}

// concurrentRound logs in all sessions, then lets each RETR and verify
// messages until dur has passed, then quits them all.
func concurrentRound(d *dialer, addr, prefix, pass string, users, n, par int, dur time.Duration, ref []digest) concurrentResult {
	var res concurrentResult
	conns := make([]*conn, n)
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
		return c.login(userName(prefix, k%users), pass)
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
			m := k % (len(ref) - 1)
			for time.Now().Before(deadline) {
				m = m%(len(ref)-1) + 1
				dg, err := c.retr(m)
				if err == nil && dg != ref[m] {
					err = fmt.Errorf("RETR %d: body differs (%d octets, SHA-256 %s; expected %d octets)", m, dg.Octets, dg.SHA256, ref[m].Octets)
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
