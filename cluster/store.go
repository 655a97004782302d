package cluster

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/popgate/popgate/proxy"
)

// Store is the proxy.LoginState shared by the cluster: failed-login
// counters and session leases in Redis, each call one script. While the
// Client says Redis is down, and when a call fails, it answers from local,
// the in-process state, at once. Store owns the set of leases this
// instance holds and renews them in one pipeline every LeaseTTL/3, so a
// crashed instance's leases expire after LeaseTTL. Safe for concurrent use.
type Store struct {
	c      *Client
	local  *proxy.LocalLoginState
	window time.Duration
	ttl    time.Duration

	mu   sync.Mutex
	held map[proxy.SessionLease]struct{}

	stop chan struct{}
	done chan struct{}
}

var _ proxy.LoginState = (*Store)(nil)

// Defaults of the Store.
const (
	// ThrottleWindow is how long a key's failures are remembered after
	// its last failure, as in the in-process throttle.
	ThrottleWindow = 15 * time.Minute
	// LeaseTTL is how long a session lease outlives its last renewal.
	LeaseTTL = 60 * time.Second
)

// Key prefixes in Redis.
const (
	failPrefix    = "popgate:fail:"     // + throttle key: failures in a row (string counter)
	sessionPrefix = "popgate:sessions:" // + user: sorted set of instance/session, score = expiry (ms)
)

// NewStore returns a Store over c that falls back to local and starts
// renewing leases. Close stops the renewal.
func NewStore(c *Client, local *proxy.LocalLoginState) *Store {
	return newStore(c, local, LeaseTTL)
}

// newStore is NewStore with a lease TTL of ttl (shorter in tests).
func newStore(c *Client, local *proxy.LocalLoginState, ttl time.Duration) *Store {
	if local == nil {
		local = proxy.NewLocalLoginState()
	}
	s := &Store{c: c, local: local, window: ThrottleWindow, ttl: ttl,
		held: make(map[proxy.SessionLease]struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	ctx, cancel := c.ctx(context.Background())
	defer cancel()
	// Load the scripts now so that the first login already costs one
	// round trip per call (EVALSHA); Run reloads them after a restart.
	for _, sc := range []*redis.Script{failScript, refundScript, succeedScript, leaseScript} {
		sc.Load(ctx, c.rdb)
	}
	go s.renewLoop()
	return s
}

// Close stops renewing leases; those held expire after LeaseTTL.
func (s *Store) Close() {
	select {
	case <-s.stop:
	default:
		close(s.stop)
		<-s.done
	}
}

// failScript counts one failure of every key, each expiring window
// after its last failure, and returns the highest count.
var failScript = redis.NewScript(`
local worst = 0
for i, k in ipairs(KEYS) do
  local n = redis.call('INCR', k)
  redis.call('PEXPIRE', k, ARGV[1])
  if n > worst then worst = n end
end
return worst`)

// refundScript takes back one failure of every key that has one.
var refundScript = redis.NewScript(`
for i, k in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', k))
  if n and n > 0 then redis.call('DECR', k) end
end
return 0`)

// succeedScript settles a successful login. KEYS: ARGV[1] keys to
// refund, ARGV[2] keys to forget, then the user's session set when
// ARGV[3] (the limit) > 0. ARGV[4] member, ARGV[5] the lease TTL (ms).
// Lease expiries are on Redis's clock, so the instances' clocks do not
// matter. Returns 1, or 0 when the user holds limit live leases.
var succeedScript = redis.NewScript(`
local nr, nf, limit = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
for i = 1, nr do
  local n = tonumber(redis.call('GET', KEYS[i]))
  if n and n > 0 then redis.call('DECR', KEYS[i]) end
end
for i = nr + 1, nr + nf do redis.call('DEL', KEYS[i]) end
if limit <= 0 then return 1 end
local set, ttl = KEYS[nr + nf + 1], tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', set, '-inf', now)
if not redis.call('ZSCORE', set, ARGV[4]) and redis.call('ZCARD', set) >= limit then return 0 end
redis.call('ZADD', set, now + ttl, ARGV[4])
redis.call('PEXPIRE', set, 2 * ttl)
return 1`)

// leaseScript extends leases: KEYS are the users' sets, ARGV[1] the TTL
// (ms), ARGV[i+1] the member in KEYS[i]. A set lives twice the TTL after
// its last renewal, longer than any of its members.
var leaseScript = redis.NewScript(`
local ttl = tonumber(ARGV[1])
local t = redis.call('TIME')
local exp = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + ttl
for i, k in ipairs(KEYS) do
  redis.call('ZADD', k, exp, ARGV[i + 1])
  redis.call('PEXPIRE', k, 2 * ttl)
end
return #KEYS`)

// shared reports whether to try Redis: not while the Client knows it is
// down (the probe notices its return), so a dead Redis costs a session
// nothing.
func (s *Store) shared(op string) bool {
	if s.c.Up() {
		return true
	}
	s.c.fellBack(op)
	return false
}

func failKeys(keys []string) []string {
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		if k != "" {
			out = append(out, failPrefix+k)
		}
	}
	return out
}

// Fail implements proxy.LoginState. The local counters count too, so
// that a Redis outage starts from this instance's own recent view rather
// than from zero.
func (s *Store) Fail(keys []string) int {
	n := s.local.Fail(keys)
	if !s.shared(opFail) {
		return n
	}
	ctx, cancel := s.c.ctx(context.Background())
	defer cancel()
	start := time.Now()
	v, err := failScript.Run(ctx, s.c.rdb, failKeys(keys), s.window.Milliseconds()).Int()
	if s.c.observe(opFail, start, err) != nil {
		s.c.fellBack(opFail)
		return n
	}
	return v
}

// Refund implements proxy.LoginState.
func (s *Store) Refund(keys []string) {
	s.local.Refund(keys)
	if !s.shared(opRefund) {
		return
	}
	ctx, cancel := s.c.ctx(context.Background())
	defer cancel()
	start := time.Now()
	err := refundScript.Run(ctx, s.c.rdb, failKeys(keys)).Err()
	if s.c.observe(opRefund, start, err) != nil {
		s.c.fellBack(opRefund)
	}
}

// Succeed implements proxy.LoginState: one script refunds, forgets and
// takes the lease. Without Redis the lease is counted locally, and it
// joins the shared set at the next renewal once Redis is back.
func (s *Store) Succeed(refund, forget []string, lease proxy.SessionLease, limit int) bool {
	if !s.shared(opSucceed) {
		return s.succeedLocally(refund, forget, lease, limit)
	}
	s.local.Refund(refund)
	s.local.Succeed(nil, forget, lease, 0)
	r, f := failKeys(refund), failKeys(forget)
	keys := append(append(r, f...), sessionPrefix+lease.User)
	now := time.Now()
	ctx, cancel := s.c.ctx(context.Background())
	defer cancel()
	v, err := succeedScript.Run(ctx, s.c.rdb, keys, len(r), len(f), limit,
		s.member(lease), s.ttl.Milliseconds()).Int()
	if s.c.observe(opSucceed, now, err) != nil {
		s.c.fellBack(opSucceed)
		return s.succeedLocally(nil, nil, lease, limit)
	}
	if v == 0 {
		return false
	}
	if limit > 0 {
		s.local.Succeed(nil, nil, lease, 1<<30) // counted locally too, for a later outage
		s.hold(lease)
	}
	return true
}

func (s *Store) succeedLocally(refund, forget []string, lease proxy.SessionLease, limit int) bool {
	if !s.local.Succeed(refund, forget, lease, limit) {
		return false
	}
	if limit > 0 {
		s.hold(lease)
	}
	return true
}

func (s *Store) hold(lease proxy.SessionLease) {
	s.mu.Lock()
	s.held[lease] = struct{}{}
	s.mu.Unlock()
}

// Release implements proxy.LoginState.
func (s *Store) Release(lease proxy.SessionLease) {
	s.mu.Lock()
	delete(s.held, lease)
	s.mu.Unlock()
	s.local.Release(lease)
	if !s.shared(opRelease) {
		return // the lease expires in Redis
	}
	ctx, cancel := s.c.ctx(context.Background())
	defer cancel()
	start := time.Now()
	err := s.c.rdb.ZRem(ctx, sessionPrefix+lease.User, s.member(lease)).Err()
	if s.c.observe(opRelease, start, err) != nil {
		s.c.fellBack(opRelease)
	}
}

// member is a lease's member in the user's set: instance/session.
func (s *Store) member(l proxy.SessionLease) string { return s.c.instance + "/" + l.ID }

// Sessions returns the live leases of user across the cluster (for tests
// and operators), on Redis's clock.
func (s *Store) Sessions(ctx context.Context, user string) (int64, error) {
	ctx, cancel := s.c.ctx(ctx)
	defer cancel()
	now, err := s.c.rdb.Time(ctx).Result()
	if err != nil {
		return 0, fmt.Errorf("cluster: sessions of %q: %w", user, err)
	}
	return s.c.rdb.ZCount(ctx, sessionPrefix+user, strconv.FormatInt(now.UnixMilli(), 10), "+inf").Result()
}

// renewLoop extends every held lease, in one script call per
// renewBatch leases, every ttl/3.
func (s *Store) renewLoop() {
	defer close(s.done)
	t := time.NewTicker(s.ttl / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			s.renew()
		}
	}
}

// renewBatch bounds the leases one renewal script writes, so that Redis
// is never busy with one call for long.
const renewBatch = 1000

// renew writes the expiry of every held lease. A lease taken while
// Redis was down joins the shared set here.
func (s *Store) renew() {
	s.mu.Lock()
	leases := make([]proxy.SessionLease, 0, len(s.held))
	for l := range s.held {
		leases = append(leases, l)
	}
	s.mu.Unlock()
	s.renewLeases(leases)
}

// renewLeases writes the expiry of leases, a snapshot of the held ones,
// in batches of renewBatch. A lease its session released while the
// batch was on its way (Release ran between the snapshot and the write)
// was written back by it: it is removed again at once, so that it does
// not hold one of the user's sessions for a whole LeaseTTL.
func (s *Store) renewLeases(leases []proxy.SessionLease) {
	for len(leases) > 0 && s.shared(opRenew) {
		n := min(len(leases), renewBatch)
		batch := leases[:n]
		keys := make([]string, 0, n)
		args := make([]any, 0, n+1)
		args = append(args, s.ttl.Milliseconds())
		for _, l := range batch {
			keys = append(keys, sessionPrefix+l.User)
			args = append(args, s.member(l))
		}
		leases = leases[n:]
		ctx, cancel := s.c.ctx(context.Background())
		start := time.Now()
		err := leaseScript.Run(ctx, s.c.rdb, keys, args...).Err()
		cancel()
		if s.c.observe(opRenew, start, err) != nil {
			s.c.fellBack(opRenew)
			return
		}
		s.unrenew(batch)
	}
}

// unrenew removes from Redis the leases of batch that were released
// while their renewal was written. Release drops a lease from held before
// its own ZREM, so a lease not held here was either removed by that ZREM
// after the renewal, or is removed now.
func (s *Store) unrenew(batch []proxy.SessionLease) {
	s.mu.Lock()
	var gone []proxy.SessionLease
	for _, l := range batch {
		if _, ok := s.held[l]; !ok {
			gone = append(gone, l)
		}
	}
	s.mu.Unlock()
	if len(gone) == 0 {
		return
	}
	ctx, cancel := s.c.ctx(context.Background())
	defer cancel()
	start := time.Now()
	pipe := s.c.rdb.Pipeline()
	for _, l := range gone {
		pipe.ZRem(ctx, sessionPrefix+l.User, s.member(l))
	}
	_, err := pipe.Exec(ctx)
	if s.c.observe(opRelease, start, err) != nil {
		s.c.fellBack(opRelease)
	}
}
