package main

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// goalLoginRatio is the logins/s goal at concurrency 16, vs direct.
const goalLoginRatio = 0.95

// runLogins measures complete logins per second: connect, greeting, USER,
// PASS, QUIT, by several workers at once.
func runLogins(args []string) error {
	c := newCommon("logins", "Workers loop connect/USER/PASS/QUIT for -duration against each target; logins/s.", 5, 1, false)
	conc := c.fs.Int("concurrency", 16, "concurrent workers (1..1000)")
	dur := c.fs.Duration("duration", 10*time.Second, "how long each target is measured per round (at most 10m)")
	prefix := c.fs.String("user-prefix", "load", "login names are this prefix and three digits")
	users := c.fs.Int("users", 1000, "number of users prefix000 ... (1..1000)")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if c.pass == "" {
		return errors.New("-pass (the load users' password) is required")
	}
	if *conc < 1 || *conc > 1000 || *users < 1 || *users > 1000 || *dur <= 0 || *dur > 10*time.Minute {
		return errors.New("-concurrency and -users must be 1..1000 and -duration in (0, 10m]")
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	res := c.result("logins per second", "logins/s")
	samples := make([][]float64, len(c.targets))
	err = c.alternate(func(i int, t target, measured bool) error {
		rate, failed, first := loginLoop(d, t.Addr, *prefix, c.pass, *users, *conc, *dur)
		if failed > 0 {
			res.Errors += failed
			return fmt.Errorf("%d failed logins, first: %w", failed, first)
		}
		if measured {
			samples[i] = append(samples[i], rate)
		}
		return nil
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "popload: logins: %v\n", err)
	}
	c.addWithRatios(res, samples, "logins/s", ratioGoals{baseline: goalLoginRatio, audit: goalAuditRatio})
	res.note("%d workers, %s per target and round; each login: connect, greeting, USER, PASS, QUIT, server closes", *conc, *dur)
	return c.finish(res)
}

// loginLoop runs conc workers logging in and out until dur has passed and
// returns successful logins per second, the number of failures and the
// first failure.
func loginLoop(d *dialer, addr, prefix, pass string, users, conc int, dur time.Duration) (float64, int, error) {
	var ok, failed atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(dur)
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; time.Now().Before(deadline); k++ {
				user := userName(prefix, (w+k*conc)%users)
				if err := oneLogin(d, addr, user, pass); err != nil {
					failed.Add(1)
					once.Do(func() { firstErr = err })
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(ok.Load()) / time.Since(start).Seconds(), int(failed.Load()), firstErr
}

// oneLogin is one complete POP3 login and logout.
func oneLogin(d *dialer, addr, user, pass string) error {
	c, err := d.dial(addr)
	if err != nil {
		return err
	}
	if err := c.login(user, pass); err != nil {
		c.close()
		return err
	}
	return c.quit()
}
