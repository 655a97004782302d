// Package cluster keeps the state that several popgate instances behind
// one load balancer share, in Redis: the failed-login counters of the
// throttle and the session leases of max_sessions_per_user (Store, a
// proxy.LoginState), and certmagic's ACME storage with its locks
// (Storage). One package, one job: popgate's shared state in Redis.
//
// Contracts:
//   - Sessions never wait on Redis for long: every call carries a short
//     timeout (Options.Timeout), and while Redis is down the Store answers
//     from in-process counters at once, without trying Redis, until the
//     Client's prober sees it back.
//   - The Client owns the up/down state: one log line per change, the
//     popgate_cluster_redis_up gauge, and the /healthz part main registers.
//   - A successful login costs at most two round trips: one script charges
//     the throttle before the credentials leave popgate, one refunds it,
//     forgets the user's failures and takes the session lease.
//   - Locks are leases: the holder renews them while it holds them, a
//     crashed instance's lock expires, and only the holder's token can
//     release one (a compare-and-delete script).
//
// Redis is used as one server (or a primary with replicas behind one
// address): the scripts touch several keys and are not written for Redis
// Cluster's hash slots.
package cluster
