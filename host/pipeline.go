package host

import (
	"context"

	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
)

// # Pipelined commits
//
// A store that syncs one shared journal (store/diskstore) makes a commit
// durable some time after it has written it, and it can write the next
// commits while a sync runs. A session that waited for each commit before
// stepping the next events would add, to every input that arrives during
// a sync, the rest of that sync and then a whole sync of its own. So with
// such a store a Flush only submits the batch; its effects wait in order
// until the store reports the batch durable; meanwhile the session steps
// and submits more. Every frame still goes out only after the storage of
// its own batch and of every earlier batch is durable, and in the order
// the core made it, because effects are executed strictly in flush order:
//
//	Flush (storage)   → submitted; effects wait
//	Flush (no storage) → effects wait behind the earlier ones, or go at once
//	                     when nothing waits
//	Durable(nil)      → the oldest submitted batch is durable: execute every
//	                     waiting flush up to the next one not yet durable
//	Durable(err)      → nothing that waits is sent: 4003 to every client,
//	                     the session ends (as a failed Commit)
//
// A crash loses the effects that wait, and possibly the batches not yet
// durable: none of their frames was sent, so no client saw them.

// PipelinedStore is a Store whose commits can be made durable in the
// background (store/diskstore in durable mode).
type PipelinedStore interface {
	Store
	// Submit applies batch like Commit (a later LoadSession sees it) and
	// starts making it durable. If it returns done, the batch is durable
	// already and durable is never called. Otherwise durable is called
	// exactly once, from any goroutine and possibly before Submit
	// returns, when the batch is durable (nil) or can no longer be made
	// so; for one session the calls come in the order of the Submits.
	// durable must not block. An error means nothing was submitted.
	Submit(ctx context.Context, sessionID string, batch store.Batch, durable func(error)) (done bool, err error)
}

// waitingFlush is the effects of one Flush waiting to be executed.
type waitingFlush struct {
	out *reflector.Effects
	// submitted: the batch was submitted and is not yet durable; the
	// effects wait for its Durable.
	submitted bool
}

// flushPipelined submits the accumulated storage and queues the effects
// behind those of earlier flushes.
func (s *Session) flushPipelined(ctx context.Context) {
	out := s.out
	if effectsEmpty(out) {
		out.Reset()
		return
	}
	if s.options.bugs.sendBeforeCommit {
		s.send(out)
		clear(out.Outbound)
		out.Outbound = out.Outbound[:0]
	}
	flush := waitingFlush{out: out}
	if storesMessages(out) {
		done, err := s.pipeline.Submit(ctx, s.id, *s.fillBatch(out), s.options.Notify)
		s.emptyBatch()
		if err != nil {
			s.fail(err)
			return
		}
		flush.submitted = !done
	}
	s.out = s.takeSpare()
	s.waiting = append(s.waiting, flush)
	s.queued++
	s.release(ctx)
}

// effectsEmpty reports whether executing out would do nothing.
func effectsEmpty(out *reflector.Effects) bool {
	return !storesMessages(out) && len(out.Storage.Pointers) == 0 && len(out.LookupPointers) == 0 &&
		len(out.Outbound) == 0 && len(out.Notes) == 0 && !out.Ended &&
		out.MessagesStamped == 0 && out.TicksSent == 0 && len(out.LatencySamplesMs) == 0
}

// Durable reports that the oldest submitted batch is durable (err nil) or
// failed: the shell calls it with each value the store passed to
// Options.Notify, in order. After a failure the session has ended and
// later values are ignored.
func (s *Session) Durable(err error) {
	if s.core == nil {
		return // the session failed: what waited is gone
	}
	index := -1
	for i := range s.waiting {
		if s.waiting[i].submitted {
			index = i
			break
		}
	}
	if index < 0 {
		panic("host: Durable without a submitted batch")
	}
	if err != nil {
		s.fail(err)
		return
	}
	s.waiting[index].submitted = false
	s.release(context.Background())
}

// release executes the waiting effects from the oldest up to the first
// whose batch is not yet durable.
func (s *Session) release(ctx context.Context) {
	executed := 0
	for executed < len(s.waiting) && !s.waiting[executed].submitted {
		out := s.waiting[executed].out
		s.storePointers(ctx, out)
		s.send(out)
		s.finish(out)
		s.spare = append(s.spare, out)
		s.waiting[executed] = waitingFlush{}
		executed++
	}
	if executed > 0 {
		s.waiting = append(s.waiting[:0], s.waiting[executed:]...)
		s.released += uint64(executed)
	}
}

// dropWaiting forgets the waiting effects (the session failed).
func (s *Session) dropWaiting() {
	for i := range s.waiting {
		s.waiting[i].out.Reset()
		s.spare = append(s.spare, s.waiting[i].out)
		s.waiting[i] = waitingFlush{}
	}
	s.released += uint64(len(s.waiting))
	s.waiting = s.waiting[:0]
}

// takeSpare returns an empty Effects.
func (s *Session) takeSpare() *reflector.Effects {
	if n := len(s.spare); n > 0 {
		out := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return out
	}
	return new(reflector.Effects)
}

// Released returns how many flushes have had their effects executed (or
// dropped by a failure) and how many were queued, counting from Open: a
// shell that notes Queued after a Flush knows that flush's frames are out
// once Released reaches it. Without a pipelined store every flush is
// executed at once and both stay 0.
func (s *Session) Released() (released, queued uint64) { return s.released, s.queued }
