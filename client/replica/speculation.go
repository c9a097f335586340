package replica

import (
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
)

// Speculation (opt-in: Options.Speculation.Enabled). Without it, an input
// takes effect a round trip after Publish, when the reflector sends it
// back stamped. With it, the views see it at once:
//
//   - The confirmed state is the island (Replica.Island) exactly as
//     without speculation: only reflected messages and session time
//     advance it. Votes, snapshots, uploads, divergence reports and
//     self-healing read only it. Speculation never writes to it.
//   - The speculative state (Replica.View) is a copy of the confirmed
//     island (island.Clone) with this view's own inputs that were not yet
//     seen reflected applied on top, oldest first, at the confirmed
//     session time. Nothing runs speculatively but those inputs: no
//     future messages, no time, no other view's inputs (they are not
//     known before they are reflected). Its emits, errors and the futures
//     it schedules are dropped: the views get emits from the confirmed
//     state, once.
//   - A Publish applies the new input to the speculative copy at once
//     when the copy is current (the input → local effect path costs one
//     handler call). Whenever the confirmed state changes (a message, a
//     tick, a reset, a recovery), the copy is stale; View rebuilds it
//     lazily — a new copy of the confirmed state and a replay of the
//     inputs still unconfirmed — at most once per call, so once per frame.
//   - Rollbacks: a rebuild after the confirmed state took a message other
//     than this view's oldest speculated input (another view's input, a
//     users or tally message, a snapshot poll) or was replaced (a reset or
//     a recovery): the reflector's order differed from the speculation's.
//     An own input confirmed in the order it was speculated is Kept.
//
// Bounds. At most InputsMax inputs are speculated: inputs published
// beyond it are sent as always, but the views see them only once enough
// older ones are confirmed (the speculation pauses; it never skips an
// input, so it always shows a prefix of this view's inputs, in order).
// A rebuild that takes longer than BudgetNs (measured with Clock) stops;
// the views get the confirmed state for that call, and the next call
// resumes the rebuild where it stopped (unless the confirmed state moved
// again, which starts it over).
//
// Exactly once: the confirmed state applies each input once, by its tag,
// as without speculation; the speculative copy applies the same tags to
// its own input sets, which are thrown away with it.

// Speculation limits and defaults.
const (
	// SpeculativeInputsMaxDefault is the default SpeculationOptions.InputsMax.
	SpeculativeInputsMaxDefault = 32
	// SpeculativeInputsMaxLimit bounds SpeculationOptions.InputsMax: each
	// rebuild replays up to that many handlers.
	SpeculativeInputsMaxLimit = 1024
	// SpeculationBudgetNsDefault is the default SpeculationOptions.BudgetNs:
	// a quarter of a 60 Hz frame.
	SpeculationBudgetNsDefault = 4_000_000
)

// SpeculationOptions configure speculation (the comment above).
type SpeculationOptions struct {
	// Enabled turns speculation on.
	Enabled bool
	// InputsMax bounds the unconfirmed inputs the speculative state holds
	// (0: SpeculativeInputsMaxDefault; at most SpeculativeInputsMaxLimit).
	InputsMax int
	// BudgetNs bounds the time one View call spends rebuilding (0:
	// SpeculationBudgetNsDefault). Only enforced with a Clock.
	BudgetNs int64
	// Clock returns a monotonic time in ns, for the budget and
	// SpeculationStats.RebuildNs (nil: no budget, RebuildNs stays 0; the
	// replica itself reads no clock).
	Clock func() int64
	// Leak applies the speculated inputs to the confirmed state itself
	// instead of a copy: a bug, for the simulator's self-test only.
	Leak bool
}

func (o *SpeculationOptions) validate() error {
	if o.InputsMax == 0 {
		o.InputsMax = SpeculativeInputsMaxDefault
	}
	if o.BudgetNs == 0 {
		o.BudgetNs = SpeculationBudgetNsDefault
	}
	if o.InputsMax < 0 || o.InputsMax > SpeculativeInputsMaxLimit {
		return fmt.Errorf("replica: SpeculationOptions.InputsMax is %d; it must be 0 (the default, %d) or in [1, %d] (SpeculativeInputsMaxLimit)",
			o.InputsMax, SpeculativeInputsMaxDefault, SpeculativeInputsMaxLimit)
	}
	if o.BudgetNs < 0 {
		return fmt.Errorf("replica: SpeculationOptions.BudgetNs is %d; it must be 0 (the default, %d ns) or positive", o.BudgetNs, SpeculationBudgetNsDefault)
	}
	return nil
}

// SpeculationStats count what speculation did.
type SpeculationStats struct {
	// Pending is the own inputs not yet seen reflected that the
	// speculative state shows (at most InputsMax); Deferred, those beyond
	// InputsMax that it does not show yet.
	Pending, Deferred int
	// Speculated counts inputs published with speculation on; Kept, own
	// inputs confirmed in the order they were speculated (no other
	// message came before them since the speculative state was built).
	Speculated, Kept int
	// Rebuilds counts speculative states copied from the confirmed state;
	// Rollbacks, the rebuilds because the confirmed order differed from
	// the speculation's (another message came first, or a reset or
	// recovery replaced the confirmed state); Replays, the inputs applied
	// by rebuilds (an input published while the copy was current is
	// applied at once and is not a replay).
	Rebuilds, Rollbacks, Replays int
	// RebuildNs is the time spent rebuilding (with a Clock); OverBudget
	// counts View calls that ran out of BudgetNs and showed the confirmed
	// state.
	RebuildNs  int64
	OverBudget int
}

// speculation is a replica's speculative state.
type speculation[M any] struct {
	// inputs are this view's inputs not yet seen reflected, oldest first,
	// by tag number.
	inputs []speculativeInput
	// island is the speculative copy (nil: none) of base, the confirmed
	// island it was copied from, with inputs[:applied] applied.
	island  *island.Island[M]
	base    *island.Island[M]
	applied int
	// stale: the confirmed state changed since island was copied;
	// interleaved: by a message other than the oldest speculated input.
	stale, interleaved bool
	stats              SpeculationStats
}

type speculativeInput struct {
	tag      uint64
	envelope island.Envelope
}

// SpeculationStats returns the speculation counters.
func (r *Replica[M]) SpeculationStats() SpeculationStats {
	s := &r.speculation
	stats := s.stats
	stats.Pending = min(len(s.inputs), r.options.Speculation.InputsMax)
	stats.Deferred = len(s.inputs) - stats.Pending
	return stats
}

// speculate records an input just submitted with tag number tag and, when
// the speculative copy is current, applies it at once.
func (r *Replica[M]) speculate(tag uint64, envelope island.Envelope) {
	if !r.options.Speculation.Enabled || envelope.Kind != island.KindEvent {
		return
	}
	s := &r.speculation
	s.inputs = append(s.inputs, speculativeInput{tag: tag, envelope: envelope})
	s.stats.Speculated++
	if s.island != nil && !s.stale && s.base == r.island && s.applied == len(s.inputs)-1 && s.applied < r.options.Speculation.InputsMax {
		r.applySpeculative(s.inputs[s.applied])
		s.applied++
	}
}

// confirming notes a delivery about to change the confirmed state.
func (r *Replica[M]) confirming(d *link.Delivery) {
	s := &r.speculation
	if len(s.inputs) == 0 {
		return
	}
	s.stale = true
	if d.Kind != link.DeliverMessage {
		return // time only: the speculation's order still holds
	}
	own := d.IsInput && d.Input.ViewID == r.options.Link.ViewID
	if own && !s.interleaved && d.Input.Seq == s.inputs[0].tag {
		s.stats.Kept++
		s.inputs[0] = speculativeInput{}
		s.inputs = s.inputs[1:]
		return
	}
	s.interleaved = true
}

// View returns the state the views should show: with speculation, the
// confirmed state with this view's unconfirmed inputs applied (rebuilt if
// the confirmed state changed, within the time budget); otherwise, or
// when nothing is pending or the budget ran out, the confirmed island. nil
// before the first SYNC and while a snapshot loads. Views must not change
// it, and must not keep it past the next step.
func (r *Replica[M]) View() *island.Island[M] {
	confirmed := r.island
	if !r.options.Speculation.Enabled || confirmed == nil || r.failed != nil {
		return confirmed
	}
	s := &r.speculation
	r.pruneSpeculation()
	n := min(len(s.inputs), r.options.Speculation.InputsMax)
	if n == 0 {
		s.island, s.base, s.applied, s.stale, s.interleaved = nil, nil, 0, false, false
		return confirmed
	}
	if s.base != confirmed {
		s.stale, s.interleaved = true, s.base != nil || s.interleaved
	}
	if s.island != nil && !s.stale && s.applied == n {
		return s.island
	}
	return r.rebuild(n)
}

// pruneSpeculation drops the inputs the link has seen reflected (the
// confirmed state applied them, or a lost timeline took them with it).
func (r *Replica[M]) pruneSpeculation() {
	s := &r.speculation
	kept := s.inputs[:0]
	for _, input := range s.inputs {
		if r.link.InputPending(input.tag) {
			kept = append(kept, input)
		}
	}
	if len(kept) != len(s.inputs) {
		s.stale = true
	}
	clear(s.inputs[len(kept):])
	s.inputs = kept
}

// rebuild copies the confirmed state (when stale) and applies the first n
// unconfirmed inputs, or as many as the budget allows; it returns the
// speculative state, or the confirmed one if the budget ran out.
func (r *Replica[M]) rebuild(n int) *island.Island[M] {
	s := &r.speculation
	clock := r.options.Speculation.Clock
	var start int64
	if clock != nil {
		start = clock()
	}
	elapsed := func() int64 {
		if clock == nil {
			return 0
		}
		return clock() - start
	}
	if s.island == nil || s.stale || s.applied > n {
		s.stats.Rebuilds++
		if s.interleaved {
			s.stats.Rollbacks++
		}
		s.base = r.island
		s.island = r.island
		if !r.options.Speculation.Leak {
			s.island = r.island.Clone()
		}
		s.applied, s.stale, s.interleaved = 0, false, false
	}
	for s.applied < n {
		if elapsed() > r.options.Speculation.BudgetNs {
			s.stats.OverBudget++
			s.stats.RebuildNs += elapsed()
			return r.island
		}
		r.applySpeculative(s.inputs[s.applied])
		s.applied++
		s.stats.Replays++
	}
	s.stats.RebuildNs += elapsed()
	return s.island
}

// applySpeculative applies one own input to the speculative copy, at the
// confirmed time (so no future message runs) and with its tag, dropping
// the effects.
func (r *Replica[M]) applySpeculative(input speculativeInput) {
	s := &r.speculation
	seq, _ := s.island.Seq()
	envelope := input.envelope
	var out island.Effects
	s.island.Apply(island.Message{Time: s.island.Time(), Seq: seq, View: r.options.Link.ViewID, Input: input.tag, Envelope: &envelope}, &out)
}
