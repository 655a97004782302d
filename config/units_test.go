package config

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseSize(t *testing.T) {
	good := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"100", 100},
		{"100B", 100},
		{"100 b", 100},
		{"1KB", 1000},
		{"1kb", 1000},
		{"1KiB", 1024},
		{"512KiB", 512 << 10},
		{"512kib", 512 << 10},
		{"10MB", 10_000_000},
		{"50MiB", 50 << 20},
		{"50 MiB", 50 << 20},
		{"1GB", 1_000_000_000},
		{"1GiB", 1 << 30},
		{"1gib", 1 << 30},
		{"2TB", 2_000_000_000_000},
		{"2TiB", 2 << 40},
		{" 7 ", 7},
		{"9223372036854775807", math.MaxInt64},
		{"8388607TiB", 8388607 << 40},
	}
	for _, tc := range good {
		got, err := parseSize(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "empty"},
		{"   ", "empty"},
		{"-1", "negative"},
		{"-1MiB", "negative"},
		{"+1", "does not start with a number"},
		{"MiB", "does not start with a number"},
		{"1.5GiB", "fractions"},
		{"10M", "unknown unit"},
		{"10K", "unknown unit"},
		{"10 mibs", "unknown unit"},
		{"1e6", "unknown unit"},
		{"0x10", "unknown unit"},
		{"9223372036854775808", "too large"},
		{"99999999999999999999999", "too large"},
		{"8388608TiB", "too large"},
		{"9223372036854775807KB", "too large"},
	}
	for _, tc := range bad {
		got, err := parseSize(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("parseSize(%q) = %d, %v; want an error containing %q", tc.in, got, err, tc.msg)
		}
	}
}

func TestParseDuration(t *testing.T) {
	good := []struct {
		in   string
		want time.Duration
	}{
		{"1ns", 1},
		{"500ms", 500 * time.Millisecond},
		{"30s", 30 * time.Second},
		{" 10m ", 10 * time.Minute},
		{"1h30m", 90 * time.Minute},
		{"1.5s", 1500 * time.Millisecond},
	}
	for _, tc := range good {
		got, err := parseDuration(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseDuration(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	bad := []struct{ in, msg string }{
		{"", "not a duration"},
		{"30", "not a duration"},
		{"ten minutes", "not a duration"},
		{"1d", "not a duration"},
		{"0s", "must be positive"},
		{"0", "must be positive"},
		{"-5s", "must be positive"},
		{"9999999h", "not a duration"},
	}
	for _, tc := range bad {
		got, err := parseDuration(tc.in)
		if err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("parseDuration(%q) = %v, %v; want an error containing %q", tc.in, got, err, tc.msg)
		}
	}
}
