package proxy

import (
	"fmt"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// The relay is the fast path of a logged-in session whose listener has no
// filters. Nothing then needs an exchange of its own goroutine: the
// dispatcher writes each command to the backend itself, in order, and one
// relay goroutine reads the answers in the same order and writes them to
// the client. Pipelined bursts then cost no goroutine or channel handoff
// per command. Sessions with filters use the general FIFO in pipeline.go.

// useRelay reports whether the next exchange takes the fast path.
func (s *session) useRelay() bool {
	return len(s.lst.Filters) == 0 && s.be != nil && s.info.State() == filters.Transaction
}

// dispatchRelay is dispatch for the fast path.
func (s *session) dispatchRelay(cmd parser.Command, local *parser.Response) *run {
	if cmd.Verb == "QUIT" && local == nil {
		// QUIT commits deletions: send it only once every earlier answer
		// has gone out and the session is still alive.
		if err := s.be.w.Flush(); err != nil {
			s.abort("backend-error")
		}
		s.waitIdle()
	}
	s.window <- struct{}{}
	r := &run{
		s:     s,
		ex:    &filters.Exchange{Session: s.info, Command: cmd, Out: cmd}, // no filter reads Started
		seq:   s.dispatched.Add(1),
		local: local,
	}
	if cmd.Verb == "QUIT" {
		r.outDone = make(chan struct{}) // the only relayed exchange anyone waits for
	}
	s.inflight.Add(1)
	if local == nil && s.ctx.Err() == nil {
		if err := s.be.w.WriteCommand(cmd); err != nil {
			r.local = refusal(parser.CodeSysTemp, "backend connection lost, try again later")
			s.log.Warn("backend write failed", "error", err)
			s.abort("backend-error")
		} else if !s.moreBuffered() || len(s.window) == cap(s.window) || cmd.Verb == "QUIT" {
			if err := s.be.w.Flush(); err != nil {
				s.log.Warn("backend write failed", "error", err)
				s.abort("backend-error")
			}
		}
	} else if local != nil && !s.moreBuffered() && s.be.w.Buffered() > 0 {
		// A local reply ends the burst: the commands before it must go
		// out, or their answers never come.
		if err := s.be.w.Flush(); err != nil {
			s.log.Warn("backend write failed", "error", err)
			s.abort("backend-error")
		}
	}
	if s.relayQ == nil {
		s.relayQ = make(chan *run, cap(s.window))
		go s.relayLoop(s.relayQ)
	}
	s.relayQ <- r
	return r
}

// relayLoop answers the relayed exchanges in order until the dispatcher
// closes the queue.
func (s *session) relayLoop(q <-chan *run) {
	for r := range q {
		s.relayOne(r)
	}
}

func (s *session) relayOne(r *run) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("relay panic", "command", r.ex.Command.Verb, "panic", v)
			s.abort("panic")
		}
		closeBody(r.ex)
		<-s.window
		s.inflight.Done()
		if r.outDone != nil {
			close(r.outDone)
		}
	}()
	if s.ctx.Err() != nil {
		return
	}
	if r.local != nil {
		r.ex.Response = *r.local
	} else if err := s.receive(r); err != nil {
		s.log.Warn("exchange failed; closing session", "command", r.ex.Command.Redacted(), "error", err)
		s.writeFinal(parser.Err(parser.CodeSysTemp, "backend connection lost, try again later"))
		s.abort("backend-error")
		return
	}
	// Only the last answer of a burst restarts the inactivity timer; the
	// ones before it need not read the clock.
	s.answer(r, r.seq == s.dispatched.Load())
}

// receive reads the backend's answer to the relayed command, and its
// body. Nothing on the relay path looks inside a message, so a RETR or TOP
// body is passed on as it is on the wire, still dot-stuffed: no decoding
// and re-encoding.
func (s *session) receive(r *run) error {
	ex := r.ex
	resp, err := s.be.r.ReadResponse()
	if err != nil {
		return fmt.Errorf("backend read: %w", err)
	}
	if resp.Status == parser.StatusContinue {
		return fmt.Errorf("backend sent a continuation to %s", ex.Out.Verb)
	}
	if ex.Out.Verb != "CAPA" && parser.HasBody(ex.Out, resp) {
		ex.Response = resp
		ex.Body = s.be.r.StuffedReader()
		r.stuffed = true
		return nil
	}
	return s.attachBody(ex, resp)
}

// attachBody sets the exchange's response and, when parser.HasBody says
// one follows, its body; a CAPA list is filtered to what popgate honours.
func (s *session) attachBody(ex *filters.Exchange, resp parser.Response) error {
	be := s.be
	ex.Response = resp
	if parser.HasBody(ex.Out, resp) {
		ex.Body = be.r.DotReader()
		if ex.Out.Verb == "CAPA" {
			body, err := s.filterCapa(ex.Body)
			if err != nil {
				return err
			}
			ex.Body = body
		}
	}
	return nil
}
