package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Goals for idle sessions (from the issues), KiB of popgate RSS each.
const (
	goalIdleKiB    = 8.0  // plaintext, before login
	goalTLSIdleKiB = 20.0 // implicit TLS, handshake done
)

// runIdle opens many sessions that read the greeting and then sit idle,
// and reports how much the serving process's RSS grew per session.
func runIdle(args []string, useTLS bool) error {
	name, goal := "idle", goalIdleKiB
	if useTLS {
		name, goal = "tls-idle", goalTLSIdleKiB
	}
	c := newCommon(name, "Open -sessions connections, read each greeting, then idle; KiB of the target's RSS per session.", 1, 0, useTLS)
	n := c.fs.Int("sessions", 10000, "idle sessions to open (1..19000)")
	par := c.fs.Int("parallel", 32, "connections being opened at once (1..1000)")
	settle := c.fs.Duration("settle", 3*time.Second, "wait after the last greeting before reading the RSS (at most 1m)")
	probe := c.fs.Bool("probe", true, "at the end, send CAPA on every session and expect an answer, proving it is still open")
	heapURL := c.fs.String("heap-url", "", "loopback `URL` of the target's heap profile (net/http/pprof), fetched while the sessions idle")
	heapOut := c.fs.String("heap-out", "", "`file` the heap profile of the last round is written to")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if *n < 1 || *n > 19000 || *par < 1 || *par > 1000 || *settle < 0 || *settle > time.Minute {
		return errors.New("-sessions must be 1..19000, -parallel 1..1000, -settle at most 1m")
	}
	if len(c.targets) != 1 || c.targets[0].PID == 0 {
		return errors.New("idle needs exactly one -target and its -pid")
	}
	if (*heapURL == "") != (*heapOut == "") {
		return errors.New("-heap-url and -heap-out go together")
	}
	if *heapURL != "" {
		if err := checkLoopbackURL(*heapURL); err != nil {
			return err
		}
	}
	if lim, err := raiseNoFile(uint64(*n) + 100); err != nil || lim < uint64(*n)+100 {
		return fmt.Errorf("need %d open files, the limit is %d (%v)", *n+100, lim, err)
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	d.bufSize = 4096
	t := c.targets[0]
	res := c.result("RSS per idle session", "KiB")
	var perSession, growth, hwm []float64
	var cipher string
	err = c.alternate(func(_ int, t target, measured bool) error {
		r, err := idleRound(d, t, *n, *par, *settle, *probe, func() error {
			if *heapURL == "" {
				return nil
			}
			return fetchTo(*heapURL, *heapOut, c.timeout)
		})
		if err != nil {
			return err
		}
		cipher = r.cipher
		if measured {
			perSession = append(perSession, float64(r.after-r.before)/float64(*n))
			growth = append(growth, float64(r.after-r.before)/1024)
			hwm = append(hwm, float64(r.hwm)/1024)
		}
		return nil
	})
	if err != nil {
		res.Errors++
		fmt.Fprintf(os.Stderr, "popload: %s: %v\n", name, err)
	}
	s := res.add(t.Name, perSession)
	res.derive("RSS growth "+t.Name, "MiB", growth)
	res.derive("peak RSS (VmHWM) "+t.Name, "MiB", hwm)
	kind := "plaintext session before login"
	if useTLS {
		kind = "TLS session (handshake done) before login"
	}
	if c.isSubject(t.Name) {
		res.goal("KiB per idle "+kind, "<=", goal, s.Median, "KiB")
	}
	if *heapOut != "" {
		res.note("heap profile of %s taken while the sessions idled: %s", t.Name, *heapOut)
	}
	res.note("%d sessions opened %d at a time; RSS (VmRSS) read before opening and %s after the last greeting", *n, *par, *settle)
	if cipher != "" {
		res.note("TLS cipher suite %s", cipher)
	}
	return c.finish(res)
}

// idleReading is the outcome of one idle round, RSS in KiB.
type idleReading struct {
	before, after, hwm int64
	cipher             string
}

// idleRound opens n sessions to t, waits settle, reads t's RSS, calls
// whileIdle, probes the sessions and closes them.
func idleRound(d *dialer, t target, n, par int, settle time.Duration, probe bool, whileIdle func() error) (idleReading, error) {
	var r idleReading
	var err error
	if r.before, err = statusKiB(t.PID, "VmRSS"); err != nil {
		return r, err
	}
	conns := make([]*conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.close()
			}
		}
	}()
	if err := forEach(n, par, func(k int) error {
		c, err := d.dial(t.Addr)
		if err != nil {
			return err
		}
		conns[k] = c
		return nil
	}); err != nil {
		return r, fmt.Errorf("opening sessions: %w", err)
	}
	r.cipher = conns[0].cipher
	time.Sleep(settle) // a measurement pause, not synchronisation
	if r.after, err = statusKiB(t.PID, "VmRSS"); err != nil {
		return r, err
	}
	if r.hwm, err = statusKiB(t.PID, "VmHWM"); err != nil {
		return r, err
	}
	if err := whileIdle(); err != nil {
		return r, err
	}
	if probe {
		if err := forEach(n, par, func(k int) error { return probeCAPA(conns[k]) }); err != nil {
			return r, fmt.Errorf("probing idle sessions: %w", err)
		}
	}
	return r, nil
}

// probeCAPA sends CAPA and reads the answer, and its list if +OK.
func probeCAPA(c *conn) error {
	s, err := c.cmd("CAPA")
	if err != nil && !errors.Is(err, errNegative) {
		return err
	}
	if strings.HasPrefix(s, "+OK") {
		if _, err := c.body(nil); err != nil {
			return fmt.Errorf("CAPA list: %w", err)
		}
	}
	return nil
}

// forEach runs fn(0..n-1) on par goroutines and returns the first error;
// after an error the remaining indexes are skipped.
func forEach(n, par int, fn func(k int) error) error {
	var next atomic.Int64
	var failed atomic.Bool
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for w := 0; w < min(par, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				k := int(next.Add(1) - 1)
				if k >= n || failed.Load() {
					return
				}
				if err := fn(k); err != nil {
					failed.Store(true)
					once.Do(func() { first = fmt.Errorf("#%d: %w", k, err) })
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
