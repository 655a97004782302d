package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture popgate runs on).
const userHZ = 100

// cpuSeconds returns the user plus system CPU time of process pid, all
// threads included, from /proc/PID/stat. Its resolution is 1/userHZ s.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of pid %d: %w", pid, err)
	}
	// The command name, field 2, is in parentheses and may hold spaces:
	// count fields from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("pid %d: malformed /proc stat line", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': state is field 3, so utime (14) and stime (15) are at
	// indexes 11 and 12.
	if len(f) < 13 {
		return 0, fmt.Errorf("pid %d: short /proc stat line", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("pid %d: bad utime/stime in /proc stat", pid)
	}
	return float64(ut+st) / userHZ, nil
}

// statusKiB returns a "kB" field of /proc/PID/status, such as VmRSS or
// VmHWM, in KiB.
func statusKiB(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading memory of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		if !ok || name != field {
			continue
		}
		v, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: bad %s line %q", pid, field, line)
		}
		return v, nil
	}
	return 0, fmt.Errorf("pid %d: no %s in /proc status", pid, field)
}

// resetPeakRSS resets VmHWM of pid to its current RSS (clear_refs value 5,
// Linux 4.0 and later; needs the right to write the file, i.e. root or the
// owner).
func resetPeakRSS(pid int) error {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		return fmt.Errorf("resetting the peak RSS of pid %d: %w", pid, err)
	}
	return nil
}

// raiseNoFile raises the soft RLIMIT_NOFILE towards want, up to the hard
// limit, and returns the limit in force.
func raiseNoFile(want uint64) (uint64, error) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("getrlimit NOFILE: %w", err)
	}
	if rl.Cur >= want {
		return rl.Cur, nil
	}
	rl.Cur = min(want, rl.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return 0, fmt.Errorf("setrlimit NOFILE to %d: %w", rl.Cur, err)
	}
	return rl.Cur, nil
}

// cpuMeter accumulates the CPU time a process spends during measured
// periods and the octets relayed in them.
type cpuMeter struct {
	pid     int
	seconds float64
	octets  int64
	perGB   []float64 // CPU seconds per 10^9 octets, one value per period
	err     error
	before  float64
}

// start begins a period; a meter without a pid does nothing.
func (m *cpuMeter) start() {
	if m == nil || m.pid == 0 || m.err != nil {
		return
	}
	m.before, m.err = cpuSeconds(m.pid)
}

// stop ends a period in which octets were relayed.
func (m *cpuMeter) stop(octets int64) {
	if m == nil || m.pid == 0 || m.err != nil {
		return
	}
	after, err := cpuSeconds(m.pid)
	if err != nil {
		m.err = err
		return
	}
	d := after - m.before
	m.seconds += d
	m.octets += octets
	if octets > 0 {
		m.perGB = append(m.perGB, d/(float64(octets)/1e9))
	}
}

// total returns CPU seconds per 10^9 octets over all periods.
func (m *cpuMeter) total() float64 {
	if m.octets == 0 {
		return 0
	}
	return m.seconds / (float64(m.octets) / 1e9)
}
