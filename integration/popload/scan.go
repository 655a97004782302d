package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// goalScanRatio: RETR with the clamav filter must take at most this share
// of (clamd scanning the message alone + RETR without the filter).
const goalScanRatio = 0.9

// scanMessage is a -message flag: LABEL=USER:PASS:NUMBER.
type scanMessage struct {
	label, user, pass string
	number            int
}

// scanMessages is the repeatable -message flag.
type scanMessages []scanMessage

func (l *scanMessages) String() string { return fmt.Sprint(len(*l), " messages") }

func (l *scanMessages) Set(v string) error {
	label, rest, ok := strings.Cut(v, "=")
	parts := strings.SplitN(rest, ":", 3)
	if !ok || label == "" || len(parts) != 3 {
		return fmt.Errorf("want LABEL=USER:PASS:NUMBER, got %q", label+"=...")
	}
	// The password may hold colons: the number is after the last one.
	i := strings.LastIndexByte(rest, ':')
	n, err := strconv.Atoi(rest[i+1:])
	user, pass, _ := strings.Cut(rest[:i], ":")
	if err != nil || n < 1 || user == "" || pass == "" {
		return fmt.Errorf("want LABEL=USER:PASS:NUMBER for %q", label)
	}
	*l = append(*l, scanMessage{label: label, user: user, pass: pass, number: n})
	return nil
}

// runScanRetr compares, per message: clamd scanning the message alone,
// RETR through popgate without the filter, and RETR through popgate with
// the clamav filter; and popgate's peak RSS during the filtered RETR.
func runScanRetr(args []string) error {
	c := newCommon("scan-retr", "Per -message: clamd INSTREAM alone vs RETR via -plain vs RETR via -scan (clamav filter); seconds.", 5, 1, false)
	plain := c.fs.String("plain", "", "`IP:PORT` of a popgate listener without the clamav filter")
	scan := c.fs.String("scan", "", "`IP:PORT` of a popgate listener with the clamav filter")
	clamd := c.fs.String("clamd", "127.0.0.1:3310", "clamd's TCP `IP:PORT`")
	pid := c.fs.Int("popgate-pid", 0, "PID of the popgate serving -scan, for its peak RSS (VmHWM)")
	var msgs scanMessages
	c.fs.Var(&msgs, "message", "`LABEL=USER:PASS:NUMBER` of a message to measure; repeatable")
	if err := c.parse(args, 0); err != nil {
		return err
	}
	if len(c.targets) > 0 || len(msgs) == 0 || *pid <= 0 {
		return errors.New("give -plain, -scan, -clamd, -popgate-pid and -message (not -target)")
	}
	for _, a := range []string{*plain, *scan, *clamd} {
		if err := checkLoopback(a); err != nil {
			return err
		}
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	var failed error
	for _, m := range msgs {
		c.label = "scan-retr " + m.label
		c.targets = targetList{{Name: "clamd INSTREAM alone", Addr: *clamd}, {Name: "RETR without filter", Addr: *plain},
			{Name: "RETR with clamav filter", Addr: *scan, PID: *pid}}
		res := c.result("time per message", "s")
		res.Baseline, res.Subject = "clamd INSTREAM alone + RETR without filter", "RETR with clamav filter"
		if err := scanOne(c, d, m, *pid, res); err != nil {
			res.Errors++
			fmt.Fprintf(os.Stderr, "popload: scan-retr %s: %v\n", m.label, err)
		}
		if err := c.finish(res); err != nil && failed == nil {
			failed = err
		}
	}
	return failed
}

// scanOne measures one message and fills res.
func scanOne(c *common, d *dialer, m scanMessage, pid int, res *Result) error {
	body, ref, err := fetchBody(d, c.targets[1].Addr, m)
	if err != nil {
		return fmt.Errorf("reading the message without the filter: %w", err)
	}
	res.note("message %d of %s: %d octets, SHA-256 %s; identical with and without the filter in every round", m.number, m.user, ref.Octets, ref.SHA256)
	var scanT, plainT, withT, withFirst, withRest, ratio, peak, rise []float64
	defer func() {
		res.add(c.targets[0].Name, scanT)
		res.add(c.targets[1].Name, plainT)
		res.add(c.targets[2].Name, withT)
		res.derive("with filter: until the +OK line (receive, scan)", "s", withFirst)
		res.derive("with filter: after the +OK line (delivery)", "s", withRest)
		s := res.derive("with filter / (alone + without filter)", "×", ratio)
		res.derive("popgate peak RSS (VmHWM) during the filtered RETR", "MiB", peak)
		res.derive("popgate peak RSS − RSS before it", "MiB", rise)
		res.goal("RETR with scan / (scan alone + RETR) "+m.label, "<=", goalScanRatio, s.Median, "×")
	}()
	ref2 := &ref
	for round := 0; round < c.warmup+c.rounds; round++ {
		start := time.Now()
		reply, err := instream(c.targets[0].Addr, body, c.timeout)
		st := time.Since(start).Seconds()
		if err != nil {
			return err
		}
		if reply != "stream: OK" {
			return fmt.Errorf("clamd answered %q for a clean message", reply)
		}
		dg, pt, _, err := timedRetr(d, c.targets[1].Addr, m.user, m.pass, m.number)
		if err == nil {
			err = sameDigest(&ref2, dg, c.targets[1].Name)
		}
		if err != nil {
			return err
		}
		if err := resetPeakRSS(pid); err != nil {
			return err
		}
		before, err := statusKiB(pid, "VmRSS")
		if err != nil {
			return err
		}
		dg, wt, _, err := timedRetr(d, c.targets[2].Addr, m.user, m.pass, m.number)
		if err == nil {
			err = sameDigest(&ref2, dg, c.targets[2].Name)
		}
		if err != nil {
			return err
		}
		hwm, err := statusKiB(pid, "VmHWM")
		if err != nil {
			return err
		}
		if round < c.warmup {
			continue
		}
		scanT, plainT, withT = append(scanT, st), append(plainT, pt.total), append(withT, wt.total)
		withFirst, withRest = append(withFirst, wt.first), append(withRest, wt.total-wt.first)
		ratio = append(ratio, wt.total/(st+pt.total))
		peak, rise = append(peak, float64(hwm)/1024), append(rise, float64(hwm-before)/1024)
	}
	return nil
}

// fetchBody reads message m whole, for clamd.
func fetchBody(d *dialer, addr string, m scanMessage) ([]byte, digest, error) {
	c, err := d.dial(addr)
	if err != nil {
		return nil, digest{}, err
	}
	defer c.close()
	if err := c.login(m.user, m.pass); err != nil {
		return nil, digest{}, err
	}
	if _, err := c.cmd(fmt.Sprintf("RETR %d", m.number)); err != nil {
		return nil, digest{}, err
	}
	var buf bytes.Buffer
	h := sha256.New()
	octets, err := c.body(io.MultiWriter(&buf, h))
	if err != nil {
		return nil, digest{}, err
	}
	return buf.Bytes(), digest{Octets: octets, SHA256: hex.EncodeToString(h.Sum(nil))}, c.quit()
}
