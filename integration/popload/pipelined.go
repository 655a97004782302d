package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"
)

// goalRetrPipeRatio is the goal for pipelined RETR of small messages, vs
// direct.
const goalRetrPipeRatio = 0.95

// runRetrPipelined measures messages per second when a client pipelines
// RETR 1..N (RFC 2449 PIPELINING) in one write and then reads every answer;
// with -uidl the client first asks for the UIDL listing and reads it, as
// fetchmail does, and only the RETR burst after it is timed.
func runRetrPipelined(args []string) error {
	c := newCommon("retr-pipelined", "Log in, write RETR 1..-messages in one write, read every answer; messages/s.", 10, 1, false)
	n := c.fs.Int("messages", 1000, "RETR messages 1..N (1..100000)")
	uidl := c.fs.Bool("uidl", false, "send UIDL and read its listing before the RETR burst (not timed), as fetchmail does")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if err := c.needLogin(); err != nil {
		return err
	}
	if *n < 1 || *n > 100000 {
		return errors.New("-messages must be 1..100000")
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	var payload bytes.Buffer
	for k := 1; k <= *n; k++ {
		fmt.Fprintf(&payload, "RETR %d\r\n", k)
	}
	res := c.result("pipelined RETR throughput", "messages/s")
	samples := make([][]float64, len(c.targets))
	cpu := make([][]float64, len(c.targets))
	listing := make([][]float64, len(c.targets))
	sys := make([][]float64, len(c.targets))
	var ref *digest
	err = c.alternate(func(i int, t target, measured bool) error {
		cpu0, err := t.cpu()
		if err != nil {
			return err
		}
		sys0 := t.syscalls()
		r, err := pipelinedRetr(d, t.Addr, c.user, c.pass, payload.Bytes(), *n, *uidl)
		if err != nil {
			return err
		}
		sys1 := t.syscalls()
		cpu1, err := t.cpu()
		if err != nil {
			return err
		}
		if err := sameDigest(&ref, r.dg, t.Name); err != nil {
			return err
		}
		if measured {
			samples[i] = append(samples[i], float64(*n)/r.secs)
			cpu[i] = append(cpu[i], (cpu1-cpu0)/float64(*n)*1e6)
			listing[i] = append(listing[i], r.uidlSecs*1e3)
			if sys0 >= 0 && sys1 >= 0 {
				sys[i] = append(sys[i], float64(sys1-sys0)/float64(*n))
			}
		}
		return nil
	})
	if err != nil {
		res.Errors++
		fmt.Fprintf(os.Stderr, "popload: retr-pipelined: %v\n", err)
	}
	c.addWithRatios(res, samples, "pipelined RETR", ratioGoals{baseline: goalRetrPipeRatio, audit: goalAuditRatio})
	extra := "login and QUIT"
	if *uidl {
		extra = "login, UIDL and QUIT"
	}
	for i, t := range c.targets {
		if t.PID != 0 {
			res.derive(fmt.Sprintf("CPU per message %s (%s included)", t.Name, extra), "CPU µs", cpu[i])
		}
		if len(sys[i]) > 0 {
			res.derive(fmt.Sprintf("read+write system calls per message %s (%s included)", t.Name, extra), "calls", sys[i])
		}
	}
	if *uidl {
		for i, t := range c.targets {
			res.derive("UIDL listing before the burst (not timed) "+t.Name, "ms", listing[i])
		}
		res.note("UIDL sent and its listing read before the RETR burst, as fetchmail does; the listing is not timed")
	}
	if ref != nil {
		res.note("%d messages, %d octets in all, SHA-256 of the bodies in order %s, identical through every target",
			*n, ref.Octets, ref.SHA256)
	}
	res.note("%d RETR commands (%d octets) in one write; timed from the write to the last terminator", *n, payload.Len())
	res.note("system calls: syscr + syscw of /proc/PID/io, which count read(2)/write(2)-family calls only; a process using recv/send or splice (HAProxy) shows none")
	return c.finish(res)
}

// pipelinedResult is one pipelined RETR session: the digest of all bodies
// in order, the seconds from the write of the burst to the last
// terminator, and the seconds the UIDL listing took (0 without -uidl).
type pipelinedResult struct {
	dg             digest
	secs, uidlSecs float64
}

// pipelinedRetr logs in, optionally reads the UIDL listing, writes payload
// (n RETR commands) from a second goroutine while reading the n answers,
// and quits. The digest covers all bodies in order.
func pipelinedRetr(d *dialer, addr, user, pass string, payload []byte, n int, uidl bool) (pipelinedResult, error) {
	var r pipelinedResult
	c, err := d.dial(addr)
	if err != nil {
		return r, err
	}
	defer c.close()
	if err := c.login(user, pass); err != nil {
		return r, err
	}
	if uidl {
		start := time.Now()
		if _, err := c.cmd("UIDL"); err != nil {
			return r, err
		}
		lines, err := c.body(nil)
		if err != nil {
			return r, fmt.Errorf("UIDL listing: %w", err)
		}
		if lines == 0 {
			return r, errors.New("UIDL listing is empty")
		}
		r.uidlSecs = time.Since(start).Seconds()
	}
	h := sha256.New()
	var octets int64
	start := time.Now()
	wrote := make(chan error, 1)
	go func() { wrote <- c.sendRaw(payload) }()
	for k := 1; k <= n; k++ {
		if _, err := c.status(); err != nil {
			c.close() // unblocks the writer
			<-wrote
			return r, fmt.Errorf("RETR %d: %w", k, err)
		}
		m, err := c.body(h)
		if err != nil {
			c.close()
			<-wrote
			return r, fmt.Errorf("RETR %d: %w", k, err)
		}
		octets += m
	}
	r.secs = time.Since(start).Seconds()
	if err := <-wrote; err != nil {
		return r, err
	}
	if err := c.quit(); err != nil {
		return r, err
	}
	r.dg = digest{Octets: octets, SHA256: hex.EncodeToString(h.Sum(nil))}
	return r, nil
}
