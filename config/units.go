package config

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// sizeUnits maps a lower-cased size suffix to its multiplier. Decimal
// suffixes (KB, MB, ...) are powers of 1000, binary ones (KiB, MiB, ...)
// powers of 1024 (IEC 80000-13). A bare K, M or G is refused as ambiguous.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kb":  1000,
	"mb":  1000 * 1000,
	"gb":  1000 * 1000 * 1000,
	"tb":  1000 * 1000 * 1000 * 1000,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
}

// parseSize parses a size in octets: a non-negative integer optionally
// followed (with or without a space) by a unit, case-insensitive: B, KB,
// MB, GB, TB, KiB, MiB, GiB or TiB. "100" is 100 octets, "50MiB" is
// 52428800, "10MB" is 10000000. Fractions, signs and values that overflow
// int64 are errors.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		if t == "" {
			return 0, errors.New("empty size")
		}
		if t[0] == '-' {
			return 0, fmt.Errorf("size %q is negative", s)
		}
		return 0, fmt.Errorf("size %q does not start with a number", s)
	}
	unit := strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		if unit != "" && unit[0] == '.' {
			return 0, fmt.Errorf("size %q: fractions are not allowed; use a smaller unit", s)
		}
		return 0, fmt.Errorf("size %q has unknown unit %q; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB", s, t[i:])
	}
	var n int64
	for _, c := range t[:i] {
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, fmt.Errorf("size %q is too large", s)
		}
		n = n*10 + d
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return n * mult, nil
}

// parseDuration parses a Go duration ("90s", "1m30s", "10m", "1h") and
// requires it to be positive.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (examples: \"500ms\", \"30s\", \"10m\", \"1h\"): %w", s, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	return d, nil
}
