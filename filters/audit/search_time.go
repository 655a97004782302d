package audit

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ParseTimeBound reads the value of audit search's --since or --until: an
// RFC 3339 time ("2025-05-01T08:00:00Z", "2025-05-01T10:00:00+02:00"), a
// date ("2025-05-01", midnight UTC), or a duration before now in Go's
// syntax (time.ParseDuration) with two more units, d (24h) and w (7d):
// "7d", "36h", "1w2d", "90m".
func ParseTimeBound(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither an RFC 3339 time, a date (YYYY-MM-DD) nor a duration (7d, 36h, 1w2d)", s)
	}
	return now.Add(-d), nil
}

// ParseDuration is time.ParseDuration with the units d (24h) and w (7d)
// too, in any combination with the others ("1w2d3h30m"). A duration must
// not be negative.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" || strings.HasPrefix(s, "-") {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	if !strings.ContainsAny(s, "dw") {
		return time.ParseDuration(s)
	}
	var total time.Duration
	rest := strings.TrimPrefix(s, "+")
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		j := i
		for j < len(rest) && !(rest[j] >= '0' && rest[j] <= '9' || rest[j] == '.') {
			j++
		}
		num, unit := rest[:i], rest[i:j]
		if num == "" || unit == "" {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		var d time.Duration
		switch unit {
		case "d", "w":
			n, err := strconv.ParseFloat(num, 64)
			if err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
			day := 24 * time.Hour
			if unit == "w" {
				day *= 7
			}
			d = time.Duration(n * float64(day))
		default:
			var err error
			if d, err = time.ParseDuration(num + unit); err != nil {
				return 0, fmt.Errorf("invalid duration %q", s)
			}
		}
		total += d
		rest = rest[j:]
	}
	return total, nil
}
