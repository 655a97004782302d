package main

import (
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kickTimeout bounds the wait for kicked sessions to end.
const kickTimeout = 10 * time.Second

// stringList is a repeatable string flag.
type stringList []string

// String returns the values joined by commas.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set appends one value.
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// kickUsers ends every session of the named users on the Dovecot
// instances configured by confs (doveadm kick) and waits until their
// processes have exited. A session left open while its mailbox is replaced
// would write index files, or apply its DELEs, to the new mailbox.
func kickUsers(confs []string, names []string) error {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[n] = true
	}
	var pids []int
	for _, conf := range confs {
		sessions, err := listSessions(conf)
		if err != nil {
			return err
		}
		kicked := map[string]bool{}
		for _, s := range sessions {
			if !want[s.user] {
				continue
			}
			pids = append(pids, s.pid)
			if kicked[s.user] {
				continue
			}
			kicked[s.user] = true
			if out, err := exec.Command("doveadm", "-c", conf, "kick", s.user).CombinedOutput(); err != nil {
				// Exit 68 (EX_NOUSER) means "no users kicked": the session
				// ended between who and kick, which is what we want.
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != 68 {
					return fmt.Errorf("doveadm kick %s: %w: %s", s.user, err, out)
				}
			}
		}
	}
	deadline := time.Now().Add(kickTimeout)
	for _, pid := range pids {
		for !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH) {
			if time.Now().After(deadline) {
				return fmt.Errorf("session process %d still alive %v after doveadm kick", pid, kickTimeout)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return nil
}

// session is one line of `doveadm who -1`.
type session struct {
	user string
	pid  int
}

// listSessions lists the sessions of a running Dovecot from
// `doveadm who -1`: a header line, then "user proto pid ip" lines.
func listSessions(conf string) ([]session, error) {
	out, err := exec.Command("doveadm", "-c", conf, "who", "-1").Output()
	if err != nil {
		return nil, fmt.Errorf("doveadm who (%s): %w", conf, err)
	}
	var sessions []session
	for _, line := range strings.Split(string(out), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		pid, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("doveadm who: bad pid in %q", line)
		}
		sessions = append(sessions, session{user: f[0], pid: pid})
	}
	return sessions, nil
}
