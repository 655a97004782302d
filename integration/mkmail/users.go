package main

import (
	"fmt"
	"sort"
)

// user is one account of a Dovecot instance and the template its mailbox
// is seeded from.
type user struct {
	Name     string
	Password string
	Template string
}

// loadUsers is how many load-test users (load000 ...) instance A has.
const loadUsers = 1000

// instanceUsers returns the users of Dovecot instance "a" (the main
// backend) or "b" (the second backend for routing tests).
func instanceUsers(instance string) ([]user, error) {
	switch instance {
	case "a":
		us := []user{
			{Name: "alice", Password: "alice-pw-7f3a", Template: "alice"},
			{Name: "bob", Password: "bob-pw-91c2", Template: "bob"},
			{Name: "big", Password: "big-pw-5d0e", Template: "big"},
			{Name: "dele", Password: "dele-pw-22aa", Template: "dele"},
			{Name: "virus", Password: "virus-pw-0c1d", Template: "virus"},
			{Name: "spacey", Password: "pass word with spaces", Template: "spacey"},
		}
		for i := 0; i < loadUsers; i++ {
			us = append(us, user{Name: fmt.Sprintf("load%03d", i), Password: "load-pw", Template: "load"})
		}
		return us, nil
	case "b":
		return []user{
			{Name: "alice", Password: "alice-pw-7f3a", Template: "b-alice"},
			{Name: "bob", Password: "bob-pw-91c2", Template: "b-bob"},
			{Name: "carol", Password: "carol-pw-b0b0", Template: "b-carol"},
		}, nil
	default:
		return nil, fmt.Errorf("unknown instance %q (want a or b)", instance)
	}
}

// lookupUsers returns the named users of an instance, or all of them when
// names is empty.
func lookupUsers(instance string, names []string) ([]user, error) {
	all, err := instanceUsers(instance)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return all, nil
	}
	byName := make(map[string]user, len(all))
	for _, u := range all {
		byName[u.Name] = u
	}
	out := make([]user, 0, len(names))
	for _, n := range names {
		u, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("instance %s has no user %q", instance, n)
		}
		out = append(out, u)
	}
	return out, nil
}

// templateNames returns the distinct templates the given users need, sorted.
func templateNames(us []user) []string {
	seen := map[string]bool{}
	var out []string
	for _, u := range us {
		if !seen[u.Template] {
			seen[u.Template] = true
			out = append(out, u.Template)
		}
	}
	sort.Strings(out)
	return out
}

// passwdFile renders a Dovecot passwd-file for the users. Passwords are
// stored as {PLAIN} so that APOP and CRAM-MD5 can be verified.
func passwdFile(us []user) []byte {
	var b []byte
	for _, u := range us {
		b = fmt.Appendf(b, "%s:{PLAIN}%s::::::\n", u.Name, u.Password)
	}
	return b
}
