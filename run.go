package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path"
	"reflect"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/filters/apop"
	"github.com/popgate/popgate/filters/audit"
	"github.com/popgate/popgate/filters/clamav"
	"github.com/popgate/popgate/filters/policy"
	"github.com/popgate/popgate/filters/rewrite"
	"github.com/popgate/popgate/filters/spool"
	"github.com/popgate/popgate/proxy"
	"github.com/popgate/popgate/tlsconf"
)

// app is a running popgate: the proxy server and everything it was built
// from, kept so that SIGHUP can rebuild what changed.
type app struct {
	logger  hclog.Logger
	path    string // configuration file; "" for the built-in defaults
	cfg     *Config
	srv     *proxy.Server
	tls     *tlsconf.Manager
	filters map[string]*filterInstance // the running generation's
	gen     *generation                // the running generation
	refs    filterRefs
	metrics *metrics
	// auditErrors is popgate_audit_write_errors_total.
	auditErrors *prometheus.CounterVec
	// spool is the budget every filter's spooling shares, for the life
	// of the process; its limits follow the running configuration's
	// spool block.
	spool *spool.Budget
	// filesErr is what the last build could not re-read (certificates,
	// secrets, maps); those keep their old contents.
	filesErr error
}

// filterInstance is a constructed filter and the configuration it was
// built from; an unchanged block keeps its instance across reloads, so an
// audit hash chain never forks. app.refs closes it when no generation
// holds it any more.
type filterInstance struct {
	conf   FilterConfig
	filter filters.Filter
}

// runServer runs popgate until SIGTERM or SIGINT, reloading on SIGHUP.
func runServer(cfg *Config, configPath string, logger hclog.Logger) error {
	a := &app{logger: logger, path: configPath, filters: map[string]*filterInstance{},
		spool: spool.NewBudget(cfg.Spool.Memory, cfg.Spool.Disk)}
	ctx := context.Background()
	if cfg.Metrics != nil {
		m, err := startMetrics(cfg.Metrics.Address, logger.Named("metrics"))
		if err != nil {
			return err
		}
		a.metrics = m
		defer m.close()
	}
	a.auditErrors = newAuditWriteErrors(a.metrics)
	gen, err := a.build(ctx, cfg)
	if err != nil {
		return err
	}
	a.refs.hold(gen)
	gen.setVerdictAudits()
	a.cfg = cfg
	a.metrics.setBackends(cfg)
	a.srv = proxy.New(logger)
	if a.metrics != nil {
		a.metrics.setHealth(a.srv)
	}
	if err := a.srv.Start(gen.pcfg); err != nil {
		a.refs.release(gen)
		return err
	}
	a.commit(gen)
	notifySystemd("READY=1")
	logger.Info("popgate started", "version", buildVersion(), "listeners", len(cfg.Listeners))

	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	for sig := range sigs {
		if sig == syscall.SIGHUP {
			notifySystemd("RELOADING=1")
			a.reload(ctx)
			notifySystemd("READY=1")
			continue
		}
		break
	}
	notifySystemd("STOPPING=1")
	logger.Info("shutting down", "timeout", a.cfg.ShutdownTimeout)
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
		a.metrics.reloaded(err == nil)
		return
	}
	cfg, files, diags := loadConfig(a.path)
	if diags.HasErrors() || cfg == nil {
		var b stringsBuilder
		writeDiagnostics(&b, files, diags)
		a.logger.Error("reload refused: the new configuration is invalid; the old one keeps running", "path", a.path, "diagnostics", b.String())
		a.metrics.reloaded(false)
		return
	}
	gen, err := a.build(ctx, cfg)
	if err != nil {
		a.logger.Error("reload refused; the old configuration keeps running", "error", err)
		a.metrics.reloaded(false)
		return
	}
	// Hold the new generation's instances before the swap, so that the
	// old generation, retired at once when it has no sessions, does not
	// close the instances both share.
	a.refs.hold(gen)
	undo := gen.setVerdictAudits()
	if err := a.srv.Reload(gen.pcfg); err != nil {
		// Nothing changes: the instances only the new generation held
		// were never used, and close now.
		undo()
		a.refs.release(gen)
		a.logger.Error("reload refused; the old configuration keeps running", "error", err)
		a.metrics.reloaded(false)
		return
	}
	a.commit(gen)
	a.cfg = cfg
	a.spool.SetLimits(cfg.Spool.Memory, cfg.Spool.Disk)
	a.metrics.setBackends(cfg)
	if a.filesErr != nil {
		a.logger.Error("configuration reloaded, but some files could not be re-read and keep their old contents", "path", a.path, "error", a.filesErr)
		a.metrics.reloaded(false)
		return
	}
	a.logger.Info("configuration reloaded", "path", a.path, "listeners", len(cfg.Listeners))
	a.metrics.reloaded(true)
}

// reloadFiles re-reads the files of filters kept across a reload and the
// certificates. What fails keeps its old contents; the errors are returned.
func (a *app) reloadFiles(cfg *Config) error {
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
func (a *app) build(ctx context.Context, cfg *Config) (*generation, error) {
	needTLS := false
	for _, l := range cfg.Listeners {
		needTLS = needTLS || l.TLS != TLSNone
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
	pcfg := &proxy.Config{
		Retired:  func() { a.refs.release(gen) },
		Backends: map[string]*proxy.Backend{},
		Router:   newRouter(cfg),
		Hooks:    a.metrics.hooks(),
	}
	if a.tls != nil {
		pcfg.ServerTLS = a.tls.ServerConfig()
	}
	for _, b := range cfg.Backends {
		pb, err := proxyBackend(b)
		if err != nil {
			a.refs.discard(gen)
			return nil, err
		}
		pcfg.Backends[b.Name] = pb
	}
	for _, l := range cfg.Listeners {
		pl := proxy.Listener{
			Name:           l.Name,
			Address:        l.Address,
			TLS:            proxyTLSMode(l.TLS),
			RequireTLS:     l.RequireTLS,
			Backend:        l.Backend,
			ProxyProtocol:  l.ProxyProtocol,
			TrustedProxies: l.TrustedProxies,
			Limits: proxy.Limits{
				MaxLine:          l.Limits.MaxLine,
				MaxErrors:        l.Limits.MaxErrors,
				MaxAuthTries:     l.Limits.MaxAuthTries,
				PreLoginTimeout:  l.Limits.PreloginTimeout,
				IdleTimeout:      l.Limits.IdleTimeout,
				WriteTimeout:     l.Limits.WriteTimeout,
				PipelineDepth:    l.Limits.PipelineDepth,
				MaxSessions:      l.Limits.MaxSessions,
				MaxSessionsPerIP: l.Limits.MaxSessionsPerIP,
				IPv6Prefix:       l.Limits.IPv6Prefix,
				BackendTimeout:   l.Limits.BackendTimeout,
				HandshakeTimeout: l.Limits.HandshakeTimeout,
			},
		}
		if l.Connect == ConnectAfterAuth {
			pl.Connect = proxy.ConnectAfterAuth
		}
		if pl.TLS != proxy.TLSNone && l.TLSMinVersion > tls.VersionTLS12 {
			c := a.tls.ServerConfig().Clone()
			c.MinVersion = l.TLSMinVersion
			pl.TLSConfig = c
		}
		for _, name := range l.Filters {
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
}

// buildFilters returns an instance for every filter block, reusing the
// running instance of a block whose settings did not change.
func (a *app) buildFilters(cfg *Config) (map[string]*filterInstance, error) {
	insts := map[string]*filterInstance{}
	var created []*filterInstance
	fail := func(err error) (map[string]*filterInstance, error) {
		for _, fi := range created {
			closeFilter(fi.filter)
		}
		return nil, err
	}
	for _, fc := range cfg.Filters {
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

func (a *app) newFilter(fc FilterConfig) (filters.Filter, error) {
	log := a.logger.Named("filter." + fc.Name)
	switch s := fc.Settings.(type) {
	case *AuditFilterConfig:
		lost := a.auditErrors.WithLabelValues(fc.Name)
		return audit.New(audit.Config{
			Path: s.Path, Chain: s.Chain, Sync: s.Sync, SyncInterval: s.SyncInterval,
			OnWriteError: func(error) { lost.Inc() },
		}, log)
	case *APOPFilterConfig:
		return apop.New(apop.Config{SecretsFile: s.SecretsFile, Host: s.TimestampHost}, log)
	case *RewriteFilterConfig:
		return rewrite.New(rewrite.Config{StripDomain: s.StripDomain, AddDomain: s.AddDomain, Lowercase: s.Lowercase, MapFile: s.MapFile}, log)
	case *PolicyFilterConfig:
		return policy.New(policy.Config{Deny: s.Deny, MaxMessageSize: s.MaxMessageSize})
	case *ClamAVFilterConfig:
		fan := &verdictFanout{metrics: a.metrics}
		f, err := clamav.New(clamav.Config{
			Address:     s.Network + "://" + s.Address,
			OnInfected:  s.OnInfected,
			OnError:     s.OnError,
			MaxSize:     s.MaxSize,
			Timeout:     s.Timeout,
			SpoolDir:    s.SpoolDir,
			SpoolMemory: s.SpoolMemory,
			AddHeader:   s.AddHeader,
			OnVerdict:   fan.record,
			Spool:       a.spool,

			MaxConcurrentScans: s.MaxConcurrentScans,
			ScanWait:           s.ScanWait,
			KeepReplaced:       s.KeepReplaced,
		}, log)
		if err != nil {
			return nil, err
		}
		fan.Filter = f
		return fan, nil
	}
	return nil, fmt.Errorf("unknown filter type %q", fc.Type)
}

func closeFilter(f filters.Filter) {
	if c, ok := f.(interface{ Close() error }); ok {
		c.Close()
	}
}

// verdictFanout is the clamav filter with its verdicts sent to the audit
// trails of the running configuration (generation.setVerdictAudits) and
// to the metrics.
type verdictFanout struct {
	*clamav.Filter
	audits  atomic.Pointer[[]*audit.Filter]
	metrics *metrics
}

// set sends verdicts to audits from now on and returns the previous list.
func (v *verdictFanout) set(audits []*audit.Filter) []*audit.Filter {
	if prev := v.audits.Swap(&audits); prev != nil {
		return *prev
	}
	return nil
}

func (v *verdictFanout) record(s *filters.Session, ev clamav.VerdictEvent) {
	clean := ev.Err == nil && ev.Verdict.Clean
	errv := ev.Err
	if errors.Is(errv, clamav.ErrTooBig) {
		errv = audit.Oversize(errv)
	}
	var audits []*audit.Filter
	if p := v.audits.Load(); p != nil {
		audits = *p
	}
	for _, af := range audits {
		af.RecordVerdict(s, ev.Command, ev.Verdict.Virus, clean, errv, ev.Size, ev.Verdict.Duration)
	}
	v.metrics.verdict(ev)
}

func (a *app) tlsOptions(cfg *Config) tlsconf.Options {
	opts := tlsconf.Options{StateDir: cfg.StateDir, Logger: a.logger.Named("tls")}
	for _, c := range cfg.TLS.Certificates {
		opts.Certificates = append(opts.Certificates, tlsconf.Certificate{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	if ac := cfg.TLS.ACME; ac != nil {
		opts.ACME = &tlsconf.ACME{
			Domains: ac.Domains, Email: ac.Email, Directory: ac.Directory, CAFile: ac.CAFile,
			Storage: ac.Storage, HTTPPort: ac.HTTPPort, TLSALPNPort: ac.TLSALPNPort,
			ListenHost: ac.ListenHost, Profile: ac.Profile,
		}
	}
	for _, l := range cfg.Listeners {
		opts.SelfSignedNames = append(opts.SelfSignedNames, l.ServerNames...)
	}
	if len(opts.SelfSignedNames) > 0 {
		opts.SelfSignedNames = append(opts.SelfSignedNames, "localhost", "127.0.0.1", "::1")
	}
	return opts
}

func proxyBackend(b BackendConfig) (*proxy.Backend, error) {
	pb := &proxy.Backend{
		Name:           b.Name,
		Address:        b.Address,
		TLS:            proxyTLSMode(b.TLS),
		ConnectTimeout: b.ConnectTimeout,
		ReadTimeout:    b.ReadTimeout,
		MasterUser:     b.MasterUser,
		MasterPassword: b.MasterPassword,
	}
	switch b.Login {
	case LoginAPOP:
		pb.Login = proxy.LoginAPOP
	case LoginSASLPlain:
		pb.Login = proxy.LoginSASLPlain
	}
	switch b.ForwardClient {
	case ForwardXCLIENT:
		pb.Forward = proxy.ForwardXCLIENT
	case ForwardProxyV1:
		pb.Forward = proxy.ForwardProxyV1
	case ForwardProxyV2:
		pb.Forward = proxy.ForwardProxyV2
	}
	if pb.TLS != proxy.TLSNone {
		c, err := tlsconf.ClientConfig(b.ServerName, b.CAFile, b.InsecureSkipVerify, tls.VersionTLS12)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", b.Name, err)
		}
		pb.TLSConfig = c
	}
	return pb, nil
}

func proxyTLSMode(m TLSMode) proxy.TLSMode {
	switch m {
	case TLSStartTLS:
		return proxy.TLSStartTLS
	case TLSImplicit:
		return proxy.TLSImplicit
	}
	return proxy.TLSNone
}

// router routes after-auth logins: the route map's exact entries first,
// then the route blocks' globs in file order.
type router struct {
	users  map[string]string
	routes []RouteConfig
}

func newRouter(cfg *Config) proxy.Router {
	r := &router{routes: cfg.Routes}
	if cfg.RouteMap != nil {
		r.users = cfg.RouteMap.Users
	}
	return r
}

// Route implements proxy.Router.
func (r *router) Route(login string) string {
	login = lower(login)
	if b, ok := r.users[login]; ok {
		return b
	}
	for _, rt := range r.routes {
		if ok, _ := path.Match(rt.User, login); ok {
			return rt.Backend
		}
	}
	return ""
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
	conn, err := dialUnixgram(addr)
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetWriteDeadline(time.Now().Add(time.Second))
	conn.Write([]byte(state))
}
