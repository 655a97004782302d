package main

import (
	"sync"

	"github.com/popgate/popgate/proxy"
)

// generation is what one build made of one configuration: the proxy's
// Config and the filter instances its listeners use. Sessions keep the
// generation they started with; after a reload replaced it, the server
// calls pcfg.Retired when its last session has ended.
type generation struct {
	pcfg     *proxy.Config
	insts    map[string]*filterInstance // by filter name
	filesErr error                      // what the build could not re-read
}

// filterRefs counts, for each filter instance, the generations that hold
// it: the running one, and replaced ones that still have sessions. It is
// the one owner that closes filter instances, when no generation holds
// them, so that no session ever writes to a closed filter (an audit record
// would be lost) and a refused reload closes only what it built.
type filterRefs struct {
	mu   sync.Mutex
	held map[*filterInstance]int
}

// hold counts g as a holder of each of its instances.
func (r *filterRefs) hold(g *generation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.held == nil {
		r.held = map[*filterInstance]int{}
	}
	for _, fi := range g.insts {
		r.held[fi]++
	}
}

// release drops g's hold and closes the instances nothing holds any more.
// g must have been held; a nil g does nothing.
func (r *filterRefs) release(g *generation) {
	if g == nil {
		return
	}
	r.mu.Lock()
	var unused []*filterInstance
	for _, fi := range g.insts {
		if r.held[fi]--; r.held[fi] <= 0 {
			delete(r.held, fi)
			unused = append(unused, fi)
		}
	}
	r.mu.Unlock()
	for _, fi := range unused {
		closeFilter(fi.filter)
	}
}

// discard closes the instances of a generation that was never held and
// that no other generation holds: those its build created.
func (r *filterRefs) discard(g *generation) {
	r.mu.Lock()
	var unused []*filterInstance
	for _, fi := range g.insts {
		if r.held[fi] == 0 {
			unused = append(unused, fi)
		}
	}
	r.mu.Unlock()
	for _, fi := range unused {
		closeFilter(fi.filter)
	}
}
