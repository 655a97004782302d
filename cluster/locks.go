package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// lockTable is the locks this Storage holds: name -> the held lock. The
// Storage owns it; each held lock's renewal goroutine only reads it.
type lockTable struct {
	mu   sync.Mutex
	held map[string]*heldLock
}

// heldLock is one lock this instance holds: its token in Redis and the
// goroutine renewing the lease.
type heldLock struct {
	token string
	stop  chan struct{}
	done  chan struct{}
}

// unlockScript deletes a lock only when it still holds the caller's
// token: an instance whose lease expired cannot release the new holder's.
var unlockScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// renewScript extends a lock's lease only for its holder.
var renewScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`)

// lockPoll is how often Lock retries a lock another instance holds.
const lockPoll = 500 * time.Millisecond

// errLockNotHeld is returned by Unlock and RenewLockLease for a lock this
// Storage does not hold (any more).
var errLockNotHeld = errors.New("lock not held by this instance")

// Lock implements certmagic.Locker: it waits until the lock is free or
// its holder's lease expired, or ctx ends.
func (s *Storage) Lock(ctx context.Context, name string) error {
	for {
		ok, err := s.TryLock(ctx, name)
		if ok {
			return nil
		}
		if err != nil && ctx.Err() != nil {
			return err
		}
		// A Redis error is retried like a busy lock: issuance waits for
		// Redis to come back, bounded by ctx.
		t := time.NewTimer(lockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("cluster storage: waiting for lock %q: %w", name, ctx.Err())
		case <-t.C:
		}
	}
}

// TryLock implements certmagic.TryLocker: one SET NX with the lease.
func (s *Storage) TryLock(ctx context.Context, name string) (bool, error) {
	token, err := newToken(s.c.instance)
	if err != nil {
		return false, err
	}
	var ok bool
	err = s.callOp(ctx, opLock, func(ctx context.Context) error {
		var err error
		ok, err = s.c.rdb.SetNX(ctx, lockPrefix+name, token, s.lockTTL()).Result()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("cluster storage: lock %q: %w", name, err)
	}
	if !ok {
		return false, nil
	}
	h := &heldLock{token: token, stop: make(chan struct{}), done: make(chan struct{})}
	s.locks.mu.Lock()
	if s.locks.held == nil {
		s.locks.held = make(map[string]*heldLock)
	}
	old := s.locks.held[name]
	s.locks.held[name] = h
	s.locks.mu.Unlock()
	if old != nil {
		old.end() // its lease had expired in Redis: stop renewing it
	}
	go s.renew(name, h)
	return true, nil
}

// Unlock implements certmagic.Locker. Only this Storage's own token
// releases a lock; a lock it does not hold is an error and stays.
func (s *Storage) Unlock(ctx context.Context, name string) error {
	s.locks.mu.Lock()
	h := s.locks.held[name]
	delete(s.locks.held, name)
	s.locks.mu.Unlock()
	if h == nil {
		return fmt.Errorf("cluster storage: unlock %q: %w", name, errLockNotHeld)
	}
	h.end()
	var n int
	err := s.callOp(ctx, opLock, func(ctx context.Context) error {
		var err error
		n, err = unlockScript.Run(ctx, s.c.rdb, []string{lockPrefix + name}, h.token).Int()
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster storage: unlock %q (it expires by itself): %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("cluster storage: unlock %q: lease expired before the unlock: %w", name, errLockNotHeld)
	}
	return nil
}

// RenewLockLease implements certmagic.LockLeaseRenewer.
func (s *Storage) RenewLockLease(ctx context.Context, name string, lease time.Duration) error {
	s.locks.mu.Lock()
	h := s.locks.held[name]
	s.locks.mu.Unlock()
	if h == nil {
		return fmt.Errorf("cluster storage: renew %q: %w", name, errLockNotHeld)
	}
	return s.extend(ctx, name, h.token, lease)
}

// extend sets the lease of a lock held with token.
func (s *Storage) extend(ctx context.Context, name, token string, lease time.Duration) error {
	var n int
	err := s.callOp(ctx, opLock, func(ctx context.Context) error {
		var err error
		n, err = renewScript.Run(ctx, s.c.rdb, []string{lockPrefix + name}, token, lease.Milliseconds()).Int()
		return err
	})
	if err != nil {
		return fmt.Errorf("cluster storage: renew %q: %w", name, err)
	}
	if n == 0 {
		return fmt.Errorf("cluster storage: renew %q: %w", name, errLockNotHeld)
	}
	return nil
}

// renew keeps h's lease alive every LockTTL/3 until h ends.
func (s *Storage) renew(name string, h *heldLock) {
	defer close(h.done)
	t := time.NewTicker(s.lockTTL() / 3)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			if err := s.extend(context.Background(), name, h.token, s.lockTTL()); err != nil {
				s.c.log.Warn("cluster: could not renew a certificate lock; another instance may take it over", "lock", name, "error", err)
				if errors.Is(err, errLockNotHeld) {
					return
				}
			}
		}
	}
}

// end stops the renewal and waits for it.
func (h *heldLock) end() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
}

// abandon stops renewing every held lock without releasing it, as a
// crashed instance would: the leases expire after LockTTL (for tests).
func (s *Storage) abandon() {
	s.locks.mu.Lock()
	held := s.locks.held
	s.locks.held = nil
	s.locks.mu.Unlock()
	for _, h := range held {
		h.end()
	}
}

func (s *Storage) lockTTL() time.Duration {
	if s.LockTTL > 0 {
		return s.LockTTL
	}
	return DefaultLockTTL
}

// callOp is call for another operation label.
func (s *Storage) callOp(ctx context.Context, op string, f func(context.Context) error) error {
	ctx, cancel := s.c.ctx(ctx)
	defer cancel()
	start := time.Now()
	return s.c.observe(op, start, f(ctx))
}

// newToken is a lock holder's token: the instance and 16 random bytes.
func newToken(instance string) (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cluster storage: lock token: %w", err)
	}
	return instance + ":" + hex.EncodeToString(b), nil
}
