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
// RETR 1..N (RFC 2449 PIPELINING) in one write and then reads every answer.
func runRetrPipelined(args []string) error {
	c := newCommon("retr-pipelined", "Log in, write RETR 1..-messages in one write, read every answer; messages/s.", 10, 1, false)
	n := c.fs.Int("messages", 1000, "RETR messages 1..N (1..100000)")
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
	var ref *digest
	err = c.alternate(func(i int, t target, measured bool) error {
		dg, secs, err := pipelinedRetr(d, t.Addr, c.user, c.pass, payload.Bytes(), *n)
		if err != nil {
			return err
		}
		if err := sameDigest(&ref, dg, t.Name); err != nil {
			return err
		}
		if measured {
			samples[i] = append(samples[i], float64(*n)/secs)
		}
		return nil
	})
	if err != nil {
		res.Errors++
		fmt.Fprintf(os.Stderr, "popload: retr-pipelined: %v\n", err)
	}
	c.addWithRatios(res, samples, "pipelined RETR", goalRetrPipeRatio)
	if ref != nil {
		res.note("%d messages, %d octets in all, SHA-256 of the bodies in order %s, identical through every target",
			*n, ref.Octets, ref.SHA256)
	}
	res.note("%d RETR commands (%d octets) in one write; timed from the write to the last terminator", *n, payload.Len())
	return c.finish(res)
}

// pipelinedRetr logs in, writes payload (n RETR commands) from a second
// goroutine while reading the n answers, and quits. The digest covers all
// bodies in order.
func pipelinedRetr(d *dialer, addr, user, pass string, payload []byte, n int) (digest, float64, error) {
	c, err := d.dial(addr)
	if err != nil {
		return digest{}, 0, err
	}
	defer c.close()
	if err := c.login(user, pass); err != nil {
		return digest{}, 0, err
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
			return digest{}, 0, fmt.Errorf("RETR %d: %w", k, err)
		}
		m, err := c.body(h)
		if err != nil {
			c.close()
			<-wrote
			return digest{}, 0, fmt.Errorf("RETR %d: %w", k, err)
		}
		octets += m
	}
	secs := time.Since(start).Seconds()
	if err := <-wrote; err != nil {
		return digest{}, 0, err
	}
	if err := c.quit(); err != nil {
		return digest{}, 0, err
	}
	return digest{Octets: octets, SHA256: hex.EncodeToString(h.Sum(nil))}, secs, nil
}
