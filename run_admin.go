package main

import (
	"sync/atomic"

	"github.com/popgate/popgate/admin"
	"github.com/popgate/popgate/config"
	"github.com/popgate/popgate/filters/audit"
)

// adminState is the running admin interface and what its actions are
// recorded in. The main goroutine writes it (start, commit, reload); the
// admin interface's request goroutines read trails.
type adminState struct {
	srv    *admin.Server
	opts   admin.Options                   // as started: later reloads do not move the socket
	trails atomic.Pointer[[]*audit.Filter] // the running generation's audit filters
}

// startAdmin starts the admin interface of cfg on a's proxy server; the
// returned function stops it.
func (a *app) startAdmin(cfg *config.Config) (func(), error) {
	st := &adminState{opts: cfg.Admin}
	st.setTrails(a.filters)
	srv, err := admin.Start(cfg.Admin, a.srv, st.record, a.logger.Named("admin"))
	if err != nil {
		return nil, err
	}
	st.srv = srv
	a.admin = st
	return func() { srv.Close() }, nil
}

// record writes an admin action to every audit trail of the running
// configuration.
func (st *adminState) record(act audit.AdminAction) {
	if p := st.trails.Load(); p != nil {
		for _, f := range *p {
			f.RecordAdmin(act)
		}
	}
}

// setTrails makes the audit filters among insts the ones admin actions
// are recorded in; called whenever a generation is committed. Filters
// that share a file share one writer, so each trail gets each action
// once per filter block naming it.
func (st *adminState) setTrails(insts map[string]*filterInstance) {
	if st == nil {
		return
	}
	var out []*audit.Filter
	seen := map[string]bool{}
	for _, fi := range insts {
		f, ok := fi.filter.(*audit.Filter)
		if !ok {
			continue
		}
		if c, ok := fi.conf.Settings.(*audit.Config); ok {
			if seen[c.Path] {
				continue // one record per trail
			}
			seen[c.Path] = true
		}
		out = append(out, f)
	}
	st.trails.Store(&out)
}

// reloadAdmin applies the admin block of a reloaded configuration: a new
// token takes effect at once; a moved socket or address needs a restart.
func (a *app) reloadAdmin(cfg *config.Config) {
	st := a.admin
	if st == nil {
		return
	}
	st.srv.SetToken(cfg.Admin.Token)
	if cfg.Admin.Socket != st.opts.Socket || cfg.Admin.Address != st.opts.Address {
		a.logger.Warn("admin socket or address changed; the running ones stay until restart",
			"socket", st.opts.Socket, "address", st.opts.Address)
	}
}
