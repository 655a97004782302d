package main

import (
	"crypto/sha256"
	"fmt"
	"os"
	"time"
)

// Goals of the retr scenarios (issue 10).
const (
	goalRetrRatio    = 0.97 // plaintext RETR throughput vs direct
	goalRetrCPUPerGB = 1.0  // popgate CPU seconds per 10^9 octets relayed
	goalTLSRetrRatio = 1.0  // popgate TLS RETR throughput vs the baseline (HAProxy)
)

// runRetr measures the throughput of one large RETR through every target,
// and the CPU time the target processes spend on it.
func runRetr(args []string, useTLS bool) error {
	name, summary := "retr", "RETR one (large) message per round through every target; MB/s and CPU s/GB."
	if useTLS {
		name, summary = "tls-retr", "Like retr, over implicit TLS: popgate against HAProxy, stunnel or the server's own TLS."
	}
	c := newCommon(name, summary, 10, 1, useTLS)
	msg := c.fs.Int("msg", 1, "number of the message to RETR")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if err := c.needLogin(); err != nil {
		return err
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	res := c.result("throughput", "MB/s")
	meters := make([]*cpuMeter, len(c.targets))
	for i, t := range c.targets {
		meters[i] = &cpuMeter{pid: t.PID}
	}
	samples := make([][]float64, len(c.targets))
	ciphers := make([]string, len(c.targets))
	var ref *digest
	err = c.alternate(func(i int, t target, measured bool) error {
		m := meters[i]
		if !measured {
			m = nil
		}
		m.start()
		dg, tm, cipher, err := timedRetr(d, t.Addr, c.user, c.pass, *msg)
		m.stop(dg.Octets)
		if err != nil {
			return err
		}
		if err := sameDigest(&ref, dg, t.Name); err != nil {
			return err
		}
		ciphers[i] = cipher
		if measured {
			samples[i] = append(samples[i], float64(dg.Octets)/tm.total/1e6)
		}
		return nil
	})
	if err != nil {
		res.Errors++
		fmt.Fprintf(os.Stderr, "popload: %s: %v\n", name, err)
	}
	if ref != nil {
		res.note("message %d: %d octets, SHA-256 %s, identical through every target in every round", *msg, ref.Octets, ref.SHA256)
	}
	for i, t := range c.targets {
		if ciphers[i] != "" {
			res.note("%s: TLS cipher suite %s", t.Name, ciphers[i])
		}
	}
	if useTLS {
		c.addWithRatios(res, samples, "TLS RETR", ratioGoals{baseline: goalTLSRetrRatio, audit: goalAuditRatio})
	} else {
		c.addWithRatios(res, samples, "RETR", ratioGoals{baseline: goalRetrRatio, audit: goalAuditRatio})
	}
	for i, t := range c.targets {
		m := meters[i]
		if m.pid == 0 {
			continue
		}
		if m.err != nil {
			res.Errors++
			fmt.Fprintf(os.Stderr, "popload: %s: %v\n", name, m.err)
			continue
		}
		res.derive("CPU "+t.Name, "CPU s/GB", m.perGB)
		res.note("CPU %s: %.3f s for %.3f GB relayed = %.3f CPU s/GB (%s; login and QUIT included)",
			t.Name, m.seconds, float64(m.octets)/1e9, m.total(), cpuSource(m.pid))
		if c.isSubject(t.Name) && !useTLS {
			res.goal("CPU per GB relayed, "+t.Name, "<=", goalRetrCPUPerGB, m.total(), "CPU s/GB")
		}
	}
	return c.finish(res)
}

// retrTiming is how long a RETR took, in seconds: until its status line
// arrived, and until its terminating dot.
type retrTiming struct{ first, total float64 }

// timedRetr logs in to addr, times RETR n from the command to the status
// line and to the terminating dot, and quits. It returns the body's
// digest, the timing and the TLS cipher suite used.
func timedRetr(d *dialer, addr, user, pass string, n int) (digest, retrTiming, string, error) {
	var tm retrTiming
	c, err := d.dial(addr)
	if err != nil {
		return digest{}, tm, "", err
	}
	defer c.close()
	if err := c.login(user, pass); err != nil {
		return digest{}, tm, "", err
	}
	start := time.Now()
	if _, err := c.cmd(fmt.Sprintf("RETR %d", n)); err != nil {
		return digest{}, tm, "", err
	}
	tm.first = time.Since(start).Seconds()
	dg, err := c.readDigest(sha256.New())
	tm.total = time.Since(start).Seconds()
	if err != nil {
		return dg, tm, "", err
	}
	if err := c.quit(); err != nil {
		return dg, tm, "", err
	}
	return dg, tm, c.cipher, nil
}

// sameDigest records the first digest in *ref and compares later ones.
func sameDigest(ref **digest, dg digest, who string) error {
	if *ref == nil {
		*ref = &dg
		return nil
	}
	if dg != **ref {
		return fmt.Errorf("body through %s differs: %d octets SHA-256 %s, expected %d octets SHA-256 %s",
			who, dg.Octets, dg.SHA256, (*ref).Octets, (*ref).SHA256)
	}
	return nil
}
