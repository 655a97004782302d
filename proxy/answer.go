package proxy

import (
	"runtime/debug"

	"github.com/popgate/popgate/filters"
	"github.com/popgate/popgate/parser"
)

// The pipeline, after net/textproto's Pipeline: the reading goroutine
// starts exchanges in the client's order and queues them in a bounded
// FIFO; one answer goroutine completes them in the same order. An
// exchange that must run alone first drains the FIFO. No exchange has a
// goroutine, channel or context of its own.

// dispatch runs the exchange of cmd. It returns false when the session
// must end.
func (s *session) dispatch(cmd parser.Command) bool {
	x := s.newExchange(cmd)
	if reply := s.check(cmd); reply != nil {
		return s.refuse(*reply)
	}
	state := s.info.State()
	if state == filters.Authorization && cmd.Verb == "STLS" {
		s.drain()
		return s.startTLS()
	}
	s.exchangeStarted(x)
	// QUIT commits deletions: it goes out only once every earlier answer
	// has, and only while the session is alive (max_errors, a failed body
	// or a vanished client may end it first). AUTHORIZATION exchanges
	// change who the session is, and some filters need the backend to
	// themselves: all of these run alone.
	x.alone = state != filters.Transaction || cmd.Verb == "QUIT" || s.chain.Exclusive(&x.ex)
	if x.alone {
		s.drain()
		if s.ctx.Err() != nil {
			return false
		}
		s.start(x)
		s.complete(x)
		if cmd.Verb == "QUIT" {
			return false
		}
		return s.ctx.Err() == nil && !s.quitting.Load()
	}
	s.start(x)
	s.queue(x)
	return s.ctx.Err() == nil
}

// queue hands x to the answer side. When nothing else is in flight and
// the client has sent nothing more, the reading goroutine completes x
// itself: a client that does not pipeline costs no hand-over at all. The
// backend writer is flushed at the end of a burst (or when the FIFO is
// full), so a pipelined burst reaches the backend in one write.
func (s *session) queue(x *exchange) {
	more := s.moreBuffered()
	if s.pending.Load() == 0 && !more {
		if err := s.flushBackend(); err != nil && x.err == nil {
			x.err = err
		}
		x.alone = true
		s.complete(x)
		return
	}
	if s.fifo == nil {
		// The first burst: an idle session that never pipelined holds
		// neither the FIFO nor the answer goroutine.
		s.fifo = make(chan *exchange, s.limits.PipelineDepth)
		go s.answerLoop(s.fifo)
	}
	if !more || len(s.fifo) >= cap(s.fifo)-1 {
		if err := s.flushBackend(); err != nil && x.err == nil {
			x.err = err
		}
	}
	s.pending.Add(1)
	s.inflight.Add(1)
	s.fifo <- x
}

// flushBackend sends what the backend writer holds.
func (s *session) flushBackend() error {
	if s.be == nil || s.be.w.Buffered() == 0 {
		return nil
	}
	return s.be.w.Flush()
}

// drain waits until every queued exchange is complete. It is the only
// hand-over of the client writer and the backend reader from the answer
// goroutine to the reading goroutine. Run by the reading goroutine.
func (s *session) drain() {
	if s.pending.Load() == 0 {
		return
	}
	if err := s.flushBackend(); err != nil {
		s.log.Warn("backend write failed", "error", err)
		s.abort("backend-error")
	}
	s.inflight.Wait()
}

// busy reports whether exchanges are still in flight.
func (s *session) busy() bool { return s.pending.Load() > 0 }

// answerLoop is the answer goroutine: it completes queued exchanges in
// order until the session ends.
func (s *session) answerLoop(fifo <-chan *exchange) {
	for x := range fifo {
		s.answerOne(x)
	}
}

func (s *session) answerOne(x *exchange) {
	defer func() {
		if v := recover(); v != nil {
			s.log.Error("exchange panic", "command", x.ex.Command.Verb, "panic", v, "stack", string(debug.Stack()))
			s.abort("panic")
		}
		s.pending.Add(-1)
		s.inflight.Done()
	}()
	s.complete(x)
}

// refuse answers, in order, a line the session itself refuses: a client
// protocol error, counted against max_errors.
func (s *session) refuse(resp parser.Response) bool {
	x := &exchange{refused: true, ex: filters.Exchange{Session: s.info, Command: parser.Command{Verb: "-"}, Response: resp}}
	s.queue(x)
	return s.ctx.Err() == nil
}
