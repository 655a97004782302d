package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// Goals of the NOOP scenarios (issue 10).
const (
	// goalNoopOverheadUS is the older fixed goal for the median NOOP
	// round-trip overhead, checked when no -versus target is given;
	// with one, the subject's overhead must not exceed the -versus
	// target's overhead in the same run.
	goalNoopOverheadUS  = 20.0
	goalNoopPipeRatio   = 0.9 // pipelined NOOP throughput vs direct
	goalNoopVersusRatio = 1.0 // ... and never below HAProxy's in the same run
	goalAuditRecordUS   = 2.0 // CPU µs per audit record on pipelined NOOP, hashing included
)

// rttStats is one session's NOOP round trips, in µs.
type rttStats struct{ median, p90, p99 float64 }

// runNoopRTT measures sequential NOOP round trips in one logged-in session
// per target and round.
func runNoopRTT(args []string) error {
	c := newCommon("noop-rtt", "Log in, then send -count NOOPs one at a time; per-NOOP round trip in µs.", 10, 1, false)
	count := c.fs.Int("count", 5000, "sequential NOOPs per session (1..1000000)")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if err := c.needLogin(); err != nil {
		return err
	}
	if *count < 1 || *count > 1000000 {
		return errors.New("-count must be 1..1000000")
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	res := c.result("median NOOP round trip", "µs")
	stats := make([][]rttStats, len(c.targets))
	err = c.alternate(func(i int, t target, measured bool) error {
		st, err := noopSession(d, t.Addr, c.user, c.pass, *count)
		if err == nil && measured {
			stats[i] = append(stats[i], st)
		}
		return err
	})
	if err != nil {
		res.Errors++
		fmt.Fprintf(os.Stderr, "popload: noop-rtt: %v\n", err)
	}
	pick := func(i int, f func(rttStats) float64) []float64 {
		out := make([]float64, len(stats[i]))
		for k, s := range stats[i] {
			out[k] = f(s)
		}
		return out
	}
	med := func(s rttStats) float64 { return s.median }
	p90 := func(s rttStats) float64 { return s.p90 }
	p99 := func(s rttStats) float64 { return s.p99 }
	for i, t := range c.targets {
		res.add(t.Name, pick(i, med))
	}
	for i, t := range c.targets {
		res.derive("p90 "+t.Name, "µs", pick(i, p90))
		res.derive("p99 "+t.Name, "µs", pick(i, p99))
	}
	overhead := make([][]float64, len(c.targets)) // median overhead per round
	for i := 1; i < len(c.targets); i++ {
		for _, q := range []struct {
			name string
			f    func(rttStats) float64
		}{{"median", med}, {"p90", p90}, {"p99", p99}} {
			a, b := pick(0, q.f), pick(i, q.f)
			n := min(len(a), len(b))
			over := make([]float64, n)
			for k := 0; k < n; k++ {
				over[k] = b[k] - a[k]
			}
			res.derive(fmt.Sprintf("%s overhead %s−%s", q.name, c.targets[i].Name, c.targets[0].Name), "µs", over)
			if q.name == "median" {
				overhead[i] = over
			}
		}
	}
	v := c.index(c.versus)
	for i, t := range c.targets {
		if i == 0 || !c.isSubject(t.Name) {
			continue
		}
		mine := newSeries("", "", overhead[i]).Median
		if v <= 0 {
			res.goal("median NOOP overhead "+t.Name, "<=", goalNoopOverheadUS, mine, "µs")
			continue
		}
		n := min(len(overhead[i]), len(overhead[v]))
		diff := make([]float64, n)
		for k := 0; k < n; k++ {
			diff[k] = overhead[i][k] - overhead[v][k]
		}
		res.derive(fmt.Sprintf("median overhead %s − median overhead %s", t.Name, c.versus), "µs", diff)
		theirs := newSeries("", "", overhead[v]).Median
		res.goal(fmt.Sprintf("median NOOP overhead %s (≤ %s's %s µs)", t.Name, c.versus, num(theirs)), "<=", theirs, mine, "µs")
	}
	for i := range c.targets {
		if p := c.unaudited(i); p > 0 {
			n := min(len(overhead[i]), len(overhead[p]))
			diff := make([]float64, n)
			for k := 0; k < n; k++ {
				diff[k] = overhead[i][k] - overhead[p][k]
			}
			res.derive(fmt.Sprintf("median round trip %s − %s (audit's cost)", c.targets[i].Name, c.targets[p].Name), "µs", diff)
		}
	}
	res.note("%d sequential NOOPs per session; each sample is one session's median (p90, p99) round trip", *count)
	return c.finish(res)
}

// noopSession logs in, times count sequential NOOPs and quits.
func noopSession(d *dialer, addr, user, pass string, count int) (rttStats, error) {
	c, err := d.dial(addr)
	if err != nil {
		return rttStats{}, err
	}
	defer c.close()
	if err := c.login(user, pass); err != nil {
		return rttStats{}, err
	}
	rtts := make([]float64, count)
	for k := range rtts {
		start := time.Now()
		if _, err := c.cmd("NOOP"); err != nil {
			return rttStats{}, err
		}
		rtts[k] = float64(time.Since(start).Nanoseconds()) / 1e3
	}
	if err := c.quit(); err != nil {
		return rttStats{}, err
	}
	slices.Sort(rtts)
	return rttStats{percentile(rtts, 50), percentile(rtts, 90), percentile(rtts, 99)}, nil
}

// runNoopPipelined measures NOOP throughput with batches of NOOPs written
// in one write each, the CPU time the serving processes spend per NOOP and,
// for audited targets, per audit record.
func runNoopPipelined(args []string) error {
	c := newCommon("noop-pipelined", "Log in, then write -batch NOOPs at once and read the answers, -batches times; NOOPs/s.", 10, 1, false)
	batch := c.fs.Int("batch", 100, "NOOPs per write (1..1000)")
	batches := c.fs.Int("batches", 200, "batches per session (1..100000)")
	if err := c.parse(args, 1); err != nil {
		return err
	}
	if err := c.needLogin(); err != nil {
		return err
	}
	if *batch < 1 || *batch > 1000 || *batches < 1 || *batches > 100000 {
		return errors.New("-batch must be 1..1000 and -batches 1..100000")
	}
	d, err := c.dialer()
	if err != nil {
		return err
	}
	records, err := newLineCounter(c.auditFile)
	if err != nil {
		return err
	}
	res := c.result("pipelined NOOP throughput", "NOOPs/s")
	samples := make([][]float64, len(c.targets))
	cpu := make([][]float64, len(c.targets))  // CPU seconds of each measured session
	recs := make([][]float64, len(c.targets)) // audit records each measured session wrote
	sys := make([][]float64, len(c.targets))  // read and write system calls per NOOP
	payload := bytes.Repeat([]byte("NOOP\r\n"), *batch)
	noops := float64(*batch * *batches)
	err = c.alternate(func(i int, t target, measured bool) error {
		if _, err := records.count(); err != nil {
			return err
		}
		cpu0, err := t.cpu()
		if err != nil {
			return err
		}
		sys0 := t.syscalls()
		rate, err := noopBatches(d, t.Addr, c.user, c.pass, payload, *batch, *batches)
		if err != nil {
			return err
		}
		sys1 := t.syscalls()
		cpu1, err := t.cpu()
		if err != nil {
			return err
		}
		n, err := records.count()
		if err != nil {
			return err
		}
		if measured {
			samples[i] = append(samples[i], rate)
			cpu[i] = append(cpu[i], cpu1-cpu0)
			recs[i] = append(recs[i], float64(n))
			if sys0 >= 0 && sys1 >= 0 {
				sys[i] = append(sys[i], float64(sys1-sys0)/noops)
			}
		}
		return nil
	})
	if err != nil {
		res.Errors++
		fmt.Fprintf(os.Stderr, "popload: noop-pipelined: %v\n", err)
	}
	c.addWithRatios(res, samples, "pipelined NOOPs/s", ratioGoals{baseline: goalNoopPipeRatio, versus: goalNoopVersusRatio})
	for i, t := range c.targets {
		if t.PID == 0 {
			continue
		}
		per := make([]float64, len(cpu[i]))
		for k, v := range cpu[i] {
			per[k] = v / noops * 1e6
		}
		res.derive("CPU per NOOP "+t.Name+" (login and QUIT included)", "CPU µs", per)
		if len(sys[i]) > 0 {
			res.derive("read+write system calls per NOOP "+t.Name, "calls", sys[i])
		}
	}
	for i, t := range c.targets {
		p := c.unaudited(i)
		if p < 0 || t.PID == 0 || c.targets[p].PID == 0 || records == nil {
			continue
		}
		n := min(len(cpu[i]), len(cpu[p]))
		per := make([]float64, 0, n)
		perNoop := make([]float64, 0, n)
		var dcpu, drec float64
		for k := 0; k < n; k++ {
			perNoop = append(perNoop, recs[i][k]/noops)
			if recs[i][k] > 0 {
				per = append(per, (cpu[i][k]-cpu[p][k])/recs[i][k]*1e6)
				dcpu += cpu[i][k] - cpu[p][k]
				drec += recs[i][k]
			}
		}
		res.derive("audit records per NOOP "+t.Name, "records", perNoop)
		s := res.derive(fmt.Sprintf("CPU per audit record: (CPU %s − CPU %s) / records", t.Name, c.targets[p].Name), "CPU µs", per)
		res.goal("CPU per audit record "+t.Name, "<=", goalAuditRecordUS, s.Median, "CPU µs")
		if drec > 0 {
			res.note("%s: %.0f audit records in %d measured sessions; CPU %.3f s more than %s; %.3f CPU µs per record over all rounds",
				t.Name, drec, n, dcpu, c.targets[p].Name, dcpu/drec*1e6)
		}
	}
	for _, t := range c.targets {
		if t.PID != 0 {
			res.note("CPU of %s: %s", t.Name, cpuSource(t.PID))
		}
	}
	res.note("%d batches of %d NOOPs per session, each batch one write", *batches, *batch)
	res.note("system calls: syscr + syscw of /proc/PID/io, which count read(2)/write(2)-family calls only; a process using recv/send or splice (HAProxy) shows none")
	return c.finish(res)
}

// noopBatches logs in, sends the batches and returns NOOPs per second.
func noopBatches(d *dialer, addr, user, pass string, payload []byte, batch, batches int) (float64, error) {
	c, err := d.dial(addr)
	if err != nil {
		return 0, err
	}
	defer c.close()
	if err := c.login(user, pass); err != nil {
		return 0, err
	}
	start := time.Now()
	for b := 0; b < batches; b++ {
		if err := c.sendRaw(payload); err != nil {
			return 0, err
		}
		for k := 0; k < batch; k++ {
			if _, err := c.status(); err != nil {
				return 0, fmt.Errorf("NOOP %d of batch %d: %w", k+1, b+1, err)
			}
		}
	}
	secs := time.Since(start).Seconds()
	if err := c.quit(); err != nil {
		return 0, err
	}
	return float64(batch*batches) / secs, nil
}
