package clamav

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrBusy is the cause recorded when every scan slot stayed taken for
// Config.ScanWait: the message is then handled by Config.OnError.
var ErrBusy = errors.New("clamav: max_concurrent_scans reached, no scan slot came free within scan_wait")

// slots bounds the scans one Filter runs at once: clamd serves MaxThreads
// streams (10 by default) and queues the rest, so sending more only makes
// every scan slower until they all time out. A scan holds its slot from
// before it dials clamd until its verdict or abort. The Filter owns it;
// it is safe for concurrent use.
type slots chan struct{}

// newSlots returns a bound of n concurrent scans.
func newSlots(n int) slots { return make(slots, n) }

// acquire takes a slot, waiting at most wait for one to come free. It
// returns the function that gives the slot back, or ErrBusy after wait,
// or ctx's error when the session ends first.
func (s slots) acquire(ctx context.Context, wait time.Duration) (release func(), err error) {
	release = func() { <-s }
	select {
	case s <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case s <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, fmt.Errorf("clamav: waiting for a scan slot: %w", ctx.Err())
	}
}
