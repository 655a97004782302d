package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/popgate/popgate/authhttp"
	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/apop"
	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/filters/clamav"
	"github.com/popgate/popgate/filters/policy"
	"github.com/popgate/popgate/filters/rewrite"
	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/metrics"
	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// app is a running popgate: the proxy server and everything it was built
// from, kept so that SIGHUP can rebuild what changed.
type app struct {
	logger  hclog.Logger
	path    string // configuration file; "" for the built-in defaults
	cfg     *config.Config
	srv     *proxy.Server
	tls     *tlsconf.Manager
	filters map[string]*filterInstance // the running generation's
	gen     *generation                // the running generation
	refs    filterRefs
	// metrics is nil without a metrics block; it records nothing then.
	metrics *metrics.Server
	// spool is the budget every filter's spooling shares, for the life
	// of the process; its limits follow the running configuration's
	// spool block.
	spool *spool.Budget
	// filesErr is what the last build could not re-read (certificates,
	// secrets, maps); those keep their old contents.
	filesErr error
	// admin is the admin interface (run_admin.go).
	admin *adminState
	// cluster is the shared state in Redis (run_cluster.go); nil without
	// a cluster block.
	cluster *clusterState
}

// filterInstance is a constructed filter and the configuration it was
// built from; an unchanged block keeps its instance across reloads, so an
// audit hash chain never forks. app.refs closes it when no generation
// holds it any more.
type filterInstance struct {
	conf   config.Filter
	filter filters.Filter
}

// runServer runs popgate until SIGTERM or SIGINT, reloading on SIGHUP.
func runServer(cfg *config.Config, configPath string, logger hclog.Logger) error {
	a := &app{logger: logger, path: configPath, filters: map[string]*filterInstance{},
		spool: spool.NewBudget(cfg.Spool.Memory, cfg.Spool.Disk)}
	ctx := context.Background()
	// Signals are caught from the start: one that arrives while popgate
	// starts waits in sigs, so a SIGTERM then still drains instead of
	// killing the process.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	if cfg.MetricsAddress != "" {
		m, err := metrics.Start(cfg.MetricsAddress, logger.Named("metrics"))
		if err != nil {
			return err
		}
		a.metrics = m
		defer m.Close()
	}
	if err := a.startCluster(cfg); err != nil {
		return err
	}
	defer a.stopCluster()
	gen, err := a.build(ctx, cfg)
	if err != nil {
		return err
	}
	a.refs.hold(gen)
	a.cfg = cfg
	a.metrics.SetBackends(backendAddresses(cfg))
	a.metrics.SetStatus(a.statusConfig(cfg))
	a.srv = proxy.New(logger)
	a.srv.SetLoginState(a.loginState())
	a.metrics.SetProxy(a.srv)
	a.watchPools() // run_pools.go
	stopAdmin, err := a.startAdmin(cfg)
	if err != nil {
		a.refs.release(gen)
		return err
	}
	defer stopAdmin()
	if err := a.srv.Start(gen.pcfg); err != nil {
		a.refs.release(gen)
		return err
	}
	a.commit(gen)
	a.metrics.SetReadiness(metrics.Ready)
	notifySystemd("READY=1")
	logger.Info("popgate started", "version", buildVersion(), "listeners", len(cfg.Listeners))

	for sig := range sigs {
		if sig == syscall.SIGHUP {
			notifySystemd("RELOADING=1")
			a.reload(ctx)
			notifySystemd("READY=1")
			continue
		}
		break
	}
	// The drain starts: /readyz answers 503 before the listeners close, so
	// a load balancer stops sending sessions here while open ones finish.
	a.metrics.SetReadiness(metrics.Draining)
	notifySystemd("STOPPING=1")
	logger.Info("shutting down: draining; listeners closed, open sessions may finish", "timeout", a.cfg.ShutdownTimeout, "sessions", a.srv.Sessions())
	sctx, cancel := context.WithTimeout(ctx, a.cfg.ShutdownTimeout)
	defer cancel()
	if err := a.srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		logger.Warn("shutdown", "error", err)
	}
	// Every session has ended: replaced generations are retired, and
	// the running one is released here.
	a.refs.release(a.gen)
	if a.tls != nil {
		a.tls.Close()
	}
	logger.Info("stopped")
	return nil
}

// reload re-reads the configuration file, certificates, secrets and maps.
// An invalid configuration is refused and the running one stays.
func (a *app) reload(ctx context.Context) {
	if a.path == "" {
		a.logger.Info("SIGHUP: no configuration file in use; reopening logs and reloading files")
		err := a.reloadFiles(a.cfg)
		if err != nil {
			a.logger.Error("reload incomplete: some files could not be re-read and keep their old contents", "error", err)
		}
		a.metrics.Reloaded(err == nil)
		return
	}
	cfg, files, diags := config.Load(a.path)
	if diags.HasErrors() || cfg == nil {
		var b strings.Builder
		config.WriteDiagnostics(&b, files, diags)
		a.logger.Error("reload refused: the new configuration is invalid; the old one keeps running", "path", a.path, "diagnostics", b.String())
		a.metrics.Reloaded(false)
		return
	}
	gen, err := a.build(ctx, cfg)
	if err != nil {
		a.logger.Error("reload refused; the old configuration keeps running", "error", err)
		a.metrics.Reloaded(false)
		return
	}
	// Hold the new generation's instances before the swap, so that the
	// old generation, retired at once when it has no sessions, does not
	// close the instances both share.
	a.refs.hold(gen)
	if err := a.srv.Reload(gen.pcfg); err != nil {
		// Nothing changes: the instances only the new generation held
		// were never used, and close now.
		a.refs.release(gen)
		a.logger.Error("reload refused; the old configuration keeps running", "error", err)
		a.metrics.Reloaded(false)
		return
	}
	a.commit(gen)
	a.reloadCluster(cfg)
	a.cfg = cfg
	a.reloadAdmin(cfg)
	a.spool.SetLimits(cfg.Spool.Memory, cfg.Spool.Disk)
	a.metrics.SetBackends(backendAddresses(cfg))
	a.metrics.SetStatus(a.statusConfig(cfg))
	if a.filesErr != nil {
		a.logger.Error("configuration reloaded, but some files could not be re-read and keep their old contents", "path", a.path, "error", a.filesErr)
		a.metrics.Reloaded(false)
		return
	}
	a.logger.Info("configuration reloaded", "path", a.path, "listeners", len(cfg.Listeners))
	a.metrics.Reloaded(true)
}

// reloadFiles re-reads the files of filters kept across a reload and the
// certificates. What fails keeps its old contents; the errors are returned.
func (a *app) reloadFiles(cfg *config.Config) error {
	var errs []error
	for _, fi := range a.filters {
		var err error
		switch f := fi.filter.(type) {
		case *audit.Filter:
			err = f.Reopen()
		case *apop.Filter:
			err = f.Reload()
		case *rewrite.Filter:
			err = f.Reload()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("filter %q: %w", fi.conf.Name, err))
		}
	}
	if a.tls != nil {
		if err := a.tls.Reload(a.tlsOptions(cfg)); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// build turns a validated Config into a generation: the proxy's Config
// and the filter instances it uses, constructing the TLS manager and the
// filters it needs. It changes nothing that runs: the caller holds the
// generation and commits it once the server has taken it.
func (a *app) build(ctx context.Context, cfg *config.Config) (*generation, error) {
	needTLS := false
	for _, l := range cfg.Listeners {
		needTLS = needTLS || l.TLS != proxy.TLSNone
	}
	// Filters and certificates kept from the running configuration
	// re-read their files (a no-op at start, when there are none).
	filesErr := a.reloadFiles(cfg)
	if needTLS && a.tls == nil {
		mgr, err := tlsconf.New(ctx, a.tlsOptions(cfg))
		if err != nil {
			return nil, fmt.Errorf("TLS: %w", err)
		}
		a.tls = mgr
	}
	insts, err := a.buildFilters(cfg)
	if err != nil {
		return nil, err
	}
	gen := &generation{insts: insts, filesErr: filesErr}
	services, err := authServices(cfg)
	if err != nil {
		a.refs.discard(gen)
		return nil, err
	}
	pcfg := &proxy.Config{
		Retired: func() {
			a.refs.release(gen)
			for _, svc := range services {
				svc.Client.Close() // idle connections to the auth services
			}
		},
		Backends: map[string]*proxy.Backend{},
		Router:   &cfg.Routes,
		Hooks:    a.metrics.Hooks(),
	}
	if a.tls != nil {
		pcfg.ServerTLS = a.tls.ServerConfig()
	}
	for i := range cfg.Backends {
		pb, err := proxyBackend(&cfg.Backends[i])
		if err != nil {
			a.refs.discard(gen)
			return nil, err
		}
		pcfg.Backends[pb.Name] = pb
	}
	for _, l := range cfg.Listeners {
		pl := l.Listener
		pl.Auth = services[l.AuthName]
		if pl.TLS != proxy.TLSNone && l.TLSMinVersion > tls.VersionTLS12 {
			c := a.tls.ServerConfig().Clone()
			c.MinVersion = l.TLSMinVersion
			pl.TLSConfig = c
		}
		if l.InterceptCACert != "" && pl.InterceptSTLS == proxy.InterceptSTLSInspect {
			ca, err := tls.LoadX509KeyPair(l.InterceptCACert, l.InterceptCAKey)
			if err != nil {
				a.refs.discard(gen)
				return nil, fmt.Errorf("listener %q: intercept CA: %w", l.Name, err)
			}
			pl.InterceptCA = &ca
		}
		for _, name := range l.FilterNames {
			pl.Filters = append(pl.Filters, insts[name].filter)
		}
		pcfg.Listeners = append(pcfg.Listeners, pl)
	}
	gen.pcfg = pcfg
	return gen, nil
}

// commit makes gen the running generation, once the server runs it.
func (a *app) commit(gen *generation) {
	a.gen, a.filters, a.filesErr = gen, gen.insts, gen.filesErr
	a.admin.setTrails(gen.insts)
}

// buildFilters returns an instance for every filter block, reusing the
// running instance of a block whose settings did not change.
func (a *app) buildFilters(cfg *config.Config) (map[string]*filterInstance, error) {
	insts := map[string]*filterInstance{}
	var created []*filterInstance
	fail := func(err error) (map[string]*filterInstance, error) {
		for _, fi := range created {
			closeFilter(fi.filter)
		}
		return nil, err
	}
	for _, fc := range cfg.Filters {
		if s, ok := fc.Settings.(*audit.Config); ok {
			// The instance is part of the block's settings, so that a
			// changed instance name makes a new filter on reload.
			c := *s
			c.Instance = auditInstance(cfg)
			fc.Settings = &c
		}
		if old, ok := a.filters[fc.Name]; ok && reflect.DeepEqual(old.conf, fc) {
			insts[fc.Name] = old
			continue
		}
		f, err := a.newFilter(fc)
		if err != nil {
			return fail(fmt.Errorf("filter %q: %w", fc.Name, err))
		}
		fi := &filterInstance{conf: fc, filter: f}
		created = append(created, fi)
		insts[fc.Name] = fi
	}
	return insts, nil
}

// newFilter constructs the filter of one block. The settings are copied
// before the run-time wiring is added, so that fc stays comparable with
// the next configuration's block.
func (a *app) newFilter(fc config.Filter) (filters.Filter, error) {
	log := a.logger.Named("filter." + fc.Name)
	switch s := fc.Settings.(type) {
	case *audit.Config:
		c := *s
		lost := a.metrics.AuditWriteErrors(fc.Name)
		c.OnWriteError = func(error) { lost.Inc() }
		return nonNil(audit.New(c, log))
	case *apop.Config:
		return nonNil(apop.New(*s, log))
	case *rewrite.Config:
		return nonNil(rewrite.New(*s, log))
	case *policy.Config:
		return nonNil(policy.New(*s))
	case *clamav.Config:
		c := *s
		c.Spool = a.spool
		return nonNil(clamav.New(c, log))
	}
	return nil, fmt.Errorf("unknown filter type %q", fc.Type)
}

// auditInstance returns the instance name every audit record of cfg
// carries: the cluster block's instance (which defaults to the hostname),
// or "" without a cluster block, when records name no instance.
func auditInstance(cfg *config.Config) string {
	if cfg.Cluster != nil {
		return cfg.Cluster.Instance // config defaults it to the hostname
	}
	return ""
}

// nonNil returns f as a filters.Filter, or a nil interface with the error
// of a constructor that failed.
func nonNil[F filters.Filter](f F, err error) (filters.Filter, error) {
	if err != nil {
		return nil, err
	}
	return f, nil
}

func closeFilter(f filters.Filter) {
	if c, ok := f.(interface{ Close() error }); ok {
		c.Close()
	}
}

// tlsOptions returns the TLS manager's options of cfg, logging to the
// "tls" logger.
func (a *app) tlsOptions(cfg *config.Config) tlsconf.Options {
	opts := cfg.TLS
	opts.Logger = a.logger.Named("tls")
	a.clusterTLS(&opts)
	return opts
}

// authServices returns a proxy.AuthService, with its own client, for every
// auth_http block, by name. Each generation has its own clients: a reload
// starts with fresh connections and an empty cache, and the replaced
// clients' idle connections time out.
func authServices(cfg *config.Config) (map[string]*proxy.AuthService, error) {
	out := make(map[string]*proxy.AuthService, len(cfg.AuthHTTP))
	for _, a := range cfg.AuthHTTP {
		c, err := authhttp.New(a.Options)
		if err != nil {
			return nil, fmt.Errorf("auth_http %q: %w", a.Name, err)
		}
		out[a.Name] = &proxy.AuthService{Name: a.Name, Client: c, AllowedBackends: a.AllowedBackends, VerifiesPassword: a.VerifiesPassword}
	}
	return out, nil
}

// proxyBackend returns the proxy's Backend of b, with the TLS client
// configuration that verifies it (reading its CA file).
func proxyBackend(b *config.Backend) (*proxy.Backend, error) {
	pb := b.Backend
	// An original-destination backend verifies the servers of intercepted
	// STLS and port 995 sessions (intercept_stls = "inspect").
	if pb.TLS != proxy.TLSNone || pb.OriginalDestination {
		c, err := tlsconf.ClientConfig(b.ServerName, b.CAFile, b.InsecureSkipVerify, tls.VersionTLS12)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		pb.TLSConfig = c
	}
	// Each server of a pool is verified against its own host name,
	// unless server_name names one for them all.
	if pb.TLS != proxy.TLSNone && len(pb.Servers) > 0 && b.ServerName == "" {
		pb.ServerTLS = make(map[string]*tls.Config, len(pb.Servers))
		for _, addr := range pb.Servers {
			host, _, _ := net.SplitHostPort(addr)
			c, err := tlsconf.ClientConfig(host, b.CAFile, b.InsecureSkipVerify, tls.VersionTLS12)
			if err != nil {
				return nil, fmt.Errorf("backend %q: server %s: %w", b.Name, addr, err)
			}
			pb.ServerTLS[addr] = c
		}
	}
	return &pb, nil
}

// backendAddresses maps each backend of cfg to its address, for the
// metrics' health report. Pools (servers) are left out: the "pools" part
// of /healthz reports their servers (run_pools.go).
func backendAddresses(cfg *config.Config) map[string]string {
	m := make(map[string]string, len(cfg.Backends))
	for _, b := range cfg.Backends {
		if len(b.Servers) > 0 {
			continue
		}
		m[b.Name] = b.Address
		if b.OriginalDestination {
			m[b.Name] = "original destination"
		}
	}
	return m
}

// statusConfig returns what the metrics listener's status page shows of
// cfg, and the admin token that guards it off loopback.
func (a *app) statusConfig(cfg *config.Config) metrics.StatusConfig {
	sc := metrics.StatusConfig{Token: cfg.Admin.Token}
	if a.tls != nil {
		sc.Certificates = a.tls
	}
	for _, l := range cfg.Listeners {
		sc.Listeners = append(sc.Listeners, metrics.StatusListener{Name: l.Name, Address: l.Address, TLS: l.TLS, Backend: l.Backend})
	}
	return sc
}

// notifySystemd sends a state to systemd's notify socket, if there is one
// (sd_notify(3)); it is a no-op elsewhere.
func notifySystemd(state string) {
	addr := os.Getenv("NOTIFY_SOCKET")
	if addr == "" {
		return
	}
	if addr[0] == '@' {
		addr = "\x00" + addr[1:]
	}
	conn, err := net.Dial("unixgram", addr)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write([]byte(state))
}
