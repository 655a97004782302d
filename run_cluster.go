package main

import (
	"reflect"

	"github.com/popgate/popgate/cluster"
	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/metrics"
	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// clusterState is this instance's share of the cluster: the Redis client,
// the shared login state and the ACME storage. main builds it once, from
// the cluster block popgate started with, and closes it at exit; a reload
// keeps it (a changed cluster block needs a restart).
type clusterState struct {
	opts    cluster.Options
	client  *cluster.Client
	store   *cluster.Store
	storage *cluster.Storage
}

// startCluster connects to the cluster's Redis when cfg has a cluster
// block, and wires its metrics and /healthz part. An unreachable Redis is
// not an error: the instance starts on local state and says so.
func (a *app) startCluster(cfg *config.Config) error {
	if cfg.Cluster == nil {
		return nil
	}
	c, err := cluster.New(*cfg.Cluster, a.logger.Named("cluster"))
	if err != nil {
		return err
	}
	a.cluster = &clusterState{opts: *cfg.Cluster, client: c,
		store: cluster.NewStore(c, proxy.NewLocalLoginState()), storage: cluster.NewStorage(c)}
	if err := a.metrics.Register(c.Collectors()...); err != nil {
		a.stopCluster()
		return err
	}
	a.metrics.SetHealthPart("cluster", func() metrics.HealthPart {
		h := c.Health()
		return metrics.HealthPart{OK: h.Redis == "up", Detail: h}
	})
	return nil
}

// stopCluster stops renewing leases and closes the connection; the leases
// this instance held expire in Redis by themselves.
func (a *app) stopCluster() {
	if a.cluster == nil {
		return
	}
	a.cluster.store.Close()
	a.cluster.client.Close()
}

// loginState is the proxy's LoginState: the shared store with a cluster,
// nil (the proxy's own in-process state) without.
func (a *app) loginState() proxy.LoginState {
	if a.cluster == nil {
		return nil
	}
	return a.cluster.store
}

// clusterTLS points ACME at the shared storage when there is a cluster
// and the acme block names no storage directory of its own.
func (a *app) clusterTLS(opts *tlsconf.Options) {
	if a.cluster == nil || opts.ACME == nil || opts.ACME.Storage != "" {
		return
	}
	acme := *opts.ACME
	acme.SharedStorage = a.cluster.storage
	opts.ACME = &acme
}

// reloadCluster reports a changed cluster block, which takes effect at
// the next restart: sessions and certificates depend on the running
// connection, and a second one would split the instance's state.
func (a *app) reloadCluster(cfg *config.Config) {
	var running *cluster.Options
	if a.cluster != nil {
		running = &a.cluster.opts
	}
	if !reflect.DeepEqual(running, cfg.Cluster) {
		a.logger.Warn("changing the cluster block needs a restart; keeping the running one")
	}
}
