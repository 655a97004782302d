package proxy

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// minAttempt is the least time one attempt of a failover gets, when the
// budget left allows it: a connect timeout shared by many servers must
// still leave each one time to greet.
const minAttempt = time.Second

// errBudget ends a failover whose connect budget is spent.
var errBudget = errors.New("connect budget spent")

// dialPool connects to a server of b's pool: the servers in the order b's
// balance mode gives them (pool.go), each attempted while it is up, the
// first that greets wins. The budget of the whole failover is b's connect
// timeout; each attempt gets what is left of it divided by the servers
// left to try (at least minAttempt, when that much is left), so one hung
// server cannot eat the time of the others. Servers that are down are
// skipped; when every server that was up failed, or none was, the down
// ones are tried anyway as a last resort, because a client that gets an
// error is worse off than one that waits for a server that may be back.
//
// Every attempt ends before credentials are sent (dialBackend), so a
// failover never sends a password anywhere: login happens once, on the
// connection returned.
func (s *session) dialPool(ctx context.Context, b *Backend) (*backendConn, error) {
	mode, key := s.balanceFor(b)
	states := order(s.srv.pools.states(b), mode, key)
	budget := b.ConnectTimeout
	if budget <= 0 {
		budget = DefaultConnectTimeout
	}
	deadline := time.Now().Add(budget)
	var errs []error
	attempt := func(st *serverState, left int, admitted bool) *backendConn {
		remaining := time.Until(deadline)
		if remaining <= 0 || ctx.Err() != nil {
			if admitted {
				st.abandon()
			}
			return nil
		}
		per := remaining / time.Duration(left)
		if per < minAttempt {
			per = min(remaining, minAttempt)
		}
		st.open.Add(1)
		bc, err := s.dialBackend(ctx, b, st.addr, time.Now().Add(per))
		if err != nil {
			st.open.Add(-1)
			if ctx.Err() != nil {
				// The session ended (shutdown, kick): not the server's fault.
				st.abandon()
				return nil
			}
			st.failed(err, "session")
			errs = append(errs, fmt.Errorf("%s: %w", st.addr, err))
			if left > 1 {
				s.log.Debug("backend server failed; trying the next one", "backend", b.Name, "server", st.addr, "error", err)
			}
			return nil
		}
		st.succeeded("session")
		bc.server, bc.release = st, func() { st.open.Add(-1) }
		return bc
	}
	var down []*serverState
	for i, st := range states {
		if !st.admit() {
			down = append(down, st)
			continue
		}
		if bc := attempt(st, len(states)-i, true); bc != nil {
			return bc, nil
		}
	}
	for i, st := range down {
		if bc := attempt(st, len(down)-i, false); bc != nil {
			return bc, nil
		}
	}
	switch {
	case ctx.Err() != nil:
		return nil, ctx.Err()
	case len(errs) == 0:
		return nil, errBudget
	case time.Until(deadline) <= 0 && len(errs) < len(states):
		errs = append(errs, errBudget)
	}
	return nil, fmt.Errorf("no server of %d answered: %w", len(states), errors.Join(errs...))
}
