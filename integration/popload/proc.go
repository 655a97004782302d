package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// userHZ is the unit of utime and stime in /proc/PID/stat (USER_HZ, 100 on
// every Linux architecture popgate runs on).
const userHZ = 100

// cpuSeconds returns the CPU time (user and system) process pid has spent,
// all threads included. It sums the nanosecond run time of each live
// thread from /proc/PID/task/TID/schedstat, and reads utime + stime of
// /proc/PID/stat, whose resolution is 1/userHZ s but which keeps the time
// of threads that have exited (stunnel runs a thread per connection); it
// returns the larger of the two.
func cpuSeconds(pid int) (float64, error) {
	st, err := statSeconds(pid)
	if err != nil {
		return 0, err
	}
	if s, err := schedSeconds(pid); err == nil && s > st {
		return s, nil
	}
	return st, nil
}

// cpuSource names where cpuSeconds reads pid's CPU time, and its
// resolution.
func cpuSource(pid int) string {
	if _, err := schedSeconds(pid); err == nil {
		return "live threads' schedstat run time (1 ns resolution), or /proc stat's utime+stime where larger (exited threads)"
	}
	return fmt.Sprintf("utime+stime of /proc stat, %d ms resolution", 1000/userHZ)
}

// schedSeconds sums the first field of every thread's schedstat (time
// spent on a CPU, in ns).
func schedSeconds(pid int) (float64, error) {
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var ns int64
	for _, e := range ents {
		b, err := os.ReadFile(dir + "/" + e.Name() + "/schedstat")
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // the thread ended while we read
			}
			return 0, err
		}
		f := strings.Fields(string(b))
		if len(f) < 1 {
			return 0, fmt.Errorf("pid %d: empty schedstat", pid)
		}
		v, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: bad schedstat %q", pid, b)
		}
		ns += v
	}
	return float64(ns) / 1e9, nil
}

// statSeconds returns utime + stime from /proc/PID/stat.
func statSeconds(pid int) (float64, error) {
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

// lineCounter counts the lines appended to a file (an audit trail, one
// record per line) since its last reading. A nil lineCounter counts none.
type lineCounter struct {
	path string
	off  int64
}

// newLineCounter starts counting at the current end of path ("" gives a
// nil counter).
func newLineCounter(path string) (*lineCounter, error) {
	if path == "" {
		return nil, nil
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("audit file: %w", err)
	}
	return &lineCounter{path: path, off: st.Size()}, nil
}

// count returns the number of newlines written since the last call.
func (l *lineCounter) count() (int64, error) {
	if l == nil {
		return 0, nil
	}
	f, err := os.Open(l.path)
	if err != nil {
		return 0, fmt.Errorf("audit file: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("audit file: %w", err)
	}
	var n int64
	buf := make([]byte, 256<<10)
	for {
		k, err := f.Read(buf)
		n += int64(bytes.Count(buf[:k], []byte{'\n'}))
		l.off += int64(k)
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("audit file: %w", err)
		}
	}
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

// syscalls returns how many read and write system calls (read, write,
// readv, writev, sendfile, ...) process pid has made: syscr + syscw of
// /proc/PID/io, which only root or the process's owner may read.
func syscalls(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, line := range strings.Split(string(b), "\n") {
		name, v, ok := strings.Cut(line, ":")
		if !ok || (name != "syscr" && name != "syscw") {
			continue
		}
		k, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("pid %d: bad %s line %q", pid, name, line)
		}
		n += k
	}
	return n, nil
}
