package proxy

import (
	"testing"
	"time"
)

func TestThrottleGrowsAndCaps(t *testing.T) {
	th := newThrottle()
	now := time.Unix(1000, 0)
	want := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 15 * time.Second, 15 * time.Second}
	for i, w := range want {
		if got := th.delay(th.fail(now, "ip:1.2.3.4", "user:alice")); got != w {
			t.Fatalf("failure %d: delay %v, want %v", i+1, got, w)
		}
	}
	// Another address guessing the same user is slowed as much.
	if got := th.delay(th.fail(now, "ip:5.6.7.8", "user:alice")); got != 15*time.Second {
		t.Fatalf("per-user throttle not applied: %v", got)
	}
	// After the quiet window everything is forgotten.
	if got := th.delay(th.fail(now.Add(time.Hour), "ip:1.2.3.4", "user:alice")); got != 500*time.Millisecond {
		t.Fatalf("after window: %v", got)
	}
	th.succeed("user:alice")
	if got := th.delay(th.fail(now.Add(time.Hour), "user:alice")); got != 500*time.Millisecond {
		t.Fatalf("after success: %v", got)
	}
}

func TestThrottleBoundedMemory(t *testing.T) {
	th := newThrottle()
	th.maxEntries = 100
	now := time.Unix(1000, 0)
	for i := 0; i < 1000; i++ {
		th.fail(now, "ip:"+string(rune('a'+i%26))+string(rune(i)))
	}
	if n := len(th.entries); n > 100 {
		t.Fatalf("%d entries, bound is 100", n)
	}
}
