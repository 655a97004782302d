package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// Client is this instance's connection to Redis and its up/down state. It
// owns that state: every call's outcome and a background probe update it,
// and it logs one line per change. Store and Storage use one Client; main
// builds it once per process. Safe for concurrent use.
type Client struct {
	rdb      *redis.Client
	instance string
	timeout  time.Duration
	log      hclog.Logger

	mu      sync.Mutex
	up      bool
	known   bool // up was set once: the first state is logged too
	since   time.Time
	lastErr string

	upGauge   prometheus.Gauge
	fallbacks *prometheus.CounterVec
	calls     *prometheus.HistogramVec

	stop chan struct{}
	done chan struct{}
}

// probeInterval is how often the Client pings Redis to notice it going
// away while idle, and coming back while the Store answers locally.
const probeInterval = time.Second

// New connects to Redis as o says and starts the probe. It does not fail
// when Redis is unreachable: popgate then starts in the down state, since
// sessions must not depend on Redis. It fails on a bad URL, an unreadable
// password file or a bad TLS configuration.
func New(o Options, log hclog.Logger) (*Client, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	quietOnce.Do(func() { redis.SetLogger(quiet{}) })
	ro, err := o.redisOptions()
	if err != nil {
		return nil, err
	}
	if o.Instance == "" {
		return nil, errors.New("cluster: the instance name is empty")
	}
	c := &Client{
		rdb:      redis.NewClient(ro),
		instance: o.Instance,
		timeout:  o.timeout(),
		log:      log,
		upGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "popgate_cluster_redis_up",
			Help: "1 while this instance reaches the cluster's Redis, 0 while it works on local state.",
		}),
		fallbacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "popgate_cluster_fallbacks_total",
			Help: "Operations answered from in-process state because Redis was unreachable, by operation.",
		}, []string{"op"}),
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "popgate_cluster_redis_seconds",
			Help:    "Duration of Redis calls, by operation.",
			Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1, .25, .5},
		}, []string{"op"}),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	for _, op := range fallbackOps {
		c.fallbacks.WithLabelValues(op)
	}
	c.probe() // the first state, logged once
	go c.probeLoop()
	return c, nil
}

// The operation labels of the metrics: a fixed set, never client input.
const (
	opFail    = "throttle_fail"
	opRefund  = "throttle_refund"
	opSucceed = "login_succeed"
	opRelease = "session_release"
	opRenew   = "session_renew"
	opStorage = "storage"
	opLock    = "lock"
)

var fallbackOps = []string{opFail, opRefund, opSucceed, opRelease, opRenew, opStorage, opLock}

// Instance returns this instance's name.
func (c *Client) Instance() string { return c.instance }

// Redis returns the underlying go-redis client (for tests and the
// storage's scripts).
func (c *Client) Redis() *redis.Client { return c.rdb }

// Collectors returns the Client's metrics, for the metrics registry.
func (c *Client) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.upGauge, c.fallbacks, c.calls}
}

// Close stops the probe and closes the connections.
func (c *Client) Close() error {
	select {
	case <-c.stop:
		return nil
	default:
	}
	close(c.stop)
	<-c.done
	return c.rdb.Close()
}

// Up reports whether Redis answered the last call or probe.
func (c *Client) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.up
}

// Health is the cluster part of /healthz.
type Health struct {
	Instance string    `json:"instance"`
	Redis    string    `json:"redis"` // "up" or "down"
	Since    time.Time `json:"since"`
	// Fallback says what runs locally while Redis is down.
	Fallback string `json:"fallback,omitempty"`
	Error    string `json:"error,omitempty"`
}

// Health returns the state for /healthz, from what the Client already
// knows: it never waits on Redis.
func (c *Client) Health() Health {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := Health{Instance: c.instance, Redis: "up", Since: c.since}
	if !c.up {
		h.Redis = "down"
		h.Fallback = "login throttling and session limits count within this instance; certificate issuance waits"
		h.Error = c.lastErr
	}
	return h
}

// ctx returns a context bounded by the Client's call timeout.
func (c *Client) ctx(parent context.Context) (context.Context, context.CancelFunc) {
	if parent == nil {
		parent = context.Background()
	}
	return context.WithTimeout(parent, c.timeout)
}

// observe records the outcome of a call of op that started at start, and
// returns err. A missing key or a script's own error is an answer: Redis
// is up. Only a failure to talk to Redis marks it down.
func (c *Client) observe(op string, start time.Time, err error) error {
	c.calls.WithLabelValues(op).Observe(time.Since(start).Seconds())
	if errors.Is(err, redis.ErrPoolTimeout) {
		// Every connection busy: this instance is loaded, Redis is not
		// gone. The caller falls back; the state stays.
		return err
	}
	c.setUp(err == nil || errors.Is(err, redis.Nil) || isServerError(err), err)
	return err
}

// isServerError reports whether err is an error reply of a Redis that
// serves popgate: the connection works. Replies that say it cannot serve
// (authentication refused, no permission, loading, a read-only replica,
// no primary, failing to persist) count as down, so /healthz names them.
func isServerError(err error) bool {
	var re redis.Error
	if !errors.As(err, &re) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for _, p := range unusableReplies {
		if strings.HasPrefix(re.Error(), p) {
			return false
		}
	}
	return true
}

// unusableReplies are the error prefixes of a Redis that answers but
// cannot serve popgate.
var unusableReplies = []string{"NOAUTH", "WRONGPASS", "NOPERM", "LOADING", "READONLY", "MASTERDOWN", "MISCONF"}

// setUp records the state; a change is logged once and shown on the gauge.
func (c *Client) setUp(up bool, err error) {
	c.mu.Lock()
	changed := up != c.up || !c.known
	if changed {
		c.up, c.known = up, true
		c.since = time.Now()
	}
	if !up && err != nil {
		c.lastErr = errText(err)
	}
	c.mu.Unlock()
	if up {
		c.upGauge.Set(1)
	} else {
		c.upGauge.Set(0)
	}
	if !changed {
		return
	}
	if up {
		c.log.Info("cluster: Redis reachable; shared throttling, session limits and certificate storage active", "instance", c.instance)
	} else {
		c.log.Warn("cluster: Redis unreachable; throttling and session limits fall back to this instance's own counters, certificate issuance waits",
			"instance", c.instance, "error", errText(err))
	}
}

// errText is err's text for logs and /healthz: go-redis errors name the
// address, never the password.
func errText(err error) string {
	if err == nil {
		return "no answer"
	}
	return err.Error()
}

// fellBack counts an operation answered locally.
func (c *Client) fellBack(op string) { c.fallbacks.WithLabelValues(op).Inc() }

// probe pings Redis once.
func (c *Client) probe() {
	ctx, cancel := c.ctx(context.Background())
	defer cancel()
	start := time.Now()
	err := c.rdb.Ping(ctx).Err()
	if err != nil {
		err = fmt.Errorf("ping: %w", err)
	}
	c.observe("ping", start, err)
}

func (c *Client) probeLoop() {
	defer close(c.done)
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
			c.probe()
		}
	}
}

// quiet keeps go-redis's own messages (one per failed dial) out of
// popgate's output: the Client logs each change of state once instead.
type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

var quietOnce sync.Once
