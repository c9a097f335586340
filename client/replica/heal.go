package replica

import (
	"fmt"
	"strings"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/protocol"
)

// Self-healing. When a snapshot vote splits and this replica's hash is
// outside a strict majority (island.Divergence.Local and Majority), the
// replica reloads the majority's snapshot of that vote and replays what
// followed:
//
//  1. At the tally message (seq S) it starts keeping every delivery after
//     it (healer.replay) and holds back the divergence report.
//  2. The majority's uploader stores its snapshot of the state after S and
//     sends its URL to the session in a KindSnapshot input (the reflector
//     forwards no SNAP, so inputs are the only way to reach the others).
//  3. On that input, the replica downloads the snapshot (Files.Download,
//     as at a join) and holds what arrives meanwhile (Replica.held).
//  4. On SnapshotLoaded it restores the snapshot, checks its seq and hash,
//     tells the Observer (Reset, as after a join), replays the kept
//     deliveries without sending votes or uploads again (they were sent),
//     applies the held ones, and reports the divergence with Recovered.
//
// Every message is applied once to the restored model: the kept ones
// follow S, the held ones follow the kept ones, and nothing is skipped.
// Without the announcement within RecoveryWaitMs of session time (or
// RecoveryMessagesMax messages), or with a snapshot that does not load,
// the report says why not, and the next split vote tries again. A replica
// that diverges again within RecoveryRepeatTallies votes after recovering
// gets reports marked Repeated, and after RecoveriesInARowMax such
// recoveries in a row it stops reloading.

// Limits of self-healing.
const (
	// RecoveryRepeatTallies (K): a replica that is outside the majority
	// again at one of the first K snapshot votes after a recovery keeps
	// diverging (Divergence.Repeated): reloading did not help for long.
	RecoveryRepeatTallies = 3
	// RecoveriesInARowMax bounds the reloads in a row, each followed by a
	// divergence within RecoveryRepeatTallies votes: a model that
	// diverges again on the very messages it replays would reload forever.
	// Past it the replica keeps its own state and reports every local
	// divergence with Recovered false, until a reconnect rebuilds it from
	// the session's snapshot.
	RecoveriesInARowMax = 3
	// RecoveryWaitMs bounds the session time a replica outside the
	// majority waits for the announcement of the majority's snapshot
	// (its upload may have failed, or its uploader left). Longer than a
	// snapshot upload may take (the SDK's HTTP timeout is 60 s).
	RecoveryWaitMs = 90_000
	// RecoveryMessagesMax bounds the messages kept for the replay while
	// waiting: the reflector's own bound on the messages since a snapshot
	// (MessagesSinceSnapshotMax, 100,000).
	RecoveryMessagesMax = 100_000
	// announcementsPendingMax bounds this replica's uploads waiting to be
	// stored before they are announced (one per split vote it uploads
	// for; older ones failed or were overtaken).
	announcementsPendingMax = 4
)

// healer is a replica's self-healing state.
type healer struct {
	// pending are the local divergences of the current episode, oldest
	// first, waiting for the majority's snapshot of any of them; their
	// reports wait for the outcome. Polls come at least
	// island.SnapshotPollGapMs apart and an episode ends RecoveryWaitMs
	// after it starts, which bounds them.
	pending []island.Divergence
	// replay holds the deliveries since the oldest pending tally, with
	// consecutive times coalesced; replayMessages counts its messages.
	replay         []link.Delivery
	replayMessages int
	// deadline is the session time by which the snapshot must have been
	// announced.
	deadline int64
	// loading is the announced snapshot being downloaded (Replica.loading
	// is its URL).
	loading *island.SnapshotAnnouncement
	// replaying: the kept deliveries are being applied again.
	replaying bool
	// talliesSinceRecovery counts snapshot votes since the last recovery
	// (-1: none yet); streak counts the recoveries in a row; gaveUp: the
	// streak reached RecoveriesInARowMax.
	talliesSinceRecovery int
	streak               int
	gaveUp               bool
	recoveries           int
	// announce holds this replica's uploads of majority snapshots to
	// announce once they are stored.
	announce []island.Upload
}

func newHealer() healer { return healer{talliesSinceRecovery: -1} }

// Recoveries returns how many times this replica reloaded the majority's
// snapshot after a vote it was outside the majority of.
func (r *Replica[M]) Recoveries() int { return r.heal.recoveries }

// diverged handles a divergence the island reported at a tally: report it
// now, or hold the report and wait for the majority's snapshot.
func (r *Replica[M]) diverged(now int64, d island.Divergence) {
	h := &r.heal
	if h.replaying {
		return // reported when the message was first applied
	}
	if !d.Local {
		r.report(now, d)
		return
	}
	d.Repeated = h.talliesSinceRecovery >= 1 && h.talliesSinceRecovery <= RecoveryRepeatTallies
	switch {
	case !d.Majority:
		d.Reason = "no hash has more than half of the votes, so no replica's state is known to be the session's"
	case len(h.pending) > 0:
		h.pending = append(h.pending, d) // the same episode: one reload repairs both
		return
	case h.gaveUp || d.Repeated && h.streak >= RecoveriesInARowMax:
		h.gaveUp = true
		d.Reason = fmt.Sprintf("not reloading again: it diverged within %d votes (RecoveryRepeatTallies) after each of %d recoveries in a row (RecoveriesInARowMax), "+
			"so the model computes differently here even on the messages it replays (see Suspect; run metronome vet)",
			RecoveryRepeatTallies, h.streak)
	default:
		if !d.Repeated {
			h.streak = 0
		}
		h.pending = []island.Divergence{d}
		h.deadline = r.island.Time() + RecoveryWaitMs
		h.replay, h.replayMessages = nil, 0
		return
	}
	r.report(now, d)
}

// afterDelivery keeps what the replay needs while a recovery waits, counts
// snapshot votes, and starts loading an announced majority snapshot.
func (r *Replica[M]) afterDelivery(now int64, d *link.Delivery, message *island.Message) {
	h := &r.heal
	if h.replaying {
		return
	}
	if message != nil && message.Tally != nil && strings.HasPrefix(message.Tally.Key, island.SnapshotKeyPrefix) && h.talliesSinceRecovery >= 0 {
		h.talliesSinceRecovery++
	}
	if len(h.pending) == 0 || h.loading != nil {
		return
	}
	if d.Kind == link.DeliverTime && len(h.replay) > 0 && h.replay[len(h.replay)-1].Kind == link.DeliverTime {
		h.replay[len(h.replay)-1] = *d
	} else {
		h.replay = append(h.replay, *d)
	}
	if d.Kind == link.DeliverMessage {
		h.replayMessages++
	}
	if message != nil && message.Envelope != nil && message.Envelope.Kind == island.KindSnapshot {
		var announced island.SnapshotAnnouncement
		if island.Decode(message.Envelope.Data, &announced) == nil && r.awaits(announced.Seq) && announced.URL != "" {
			h.loading = &announced
			r.loading = announced.URL
			r.options.Files.Download(announced.URL)
			return
		}
	}
	switch {
	case r.island.Time() > h.deadline:
		r.endEpisode(now, false, fmt.Sprintf("the majority's snapshot was not announced within %d ms of session time (RecoveryWaitMs): "+
			"its upload may have failed; the next split vote tries again", RecoveryWaitMs))
	case h.replayMessages > RecoveryMessagesMax:
		r.endEpisode(now, false, fmt.Sprintf("the majority's snapshot was not announced within %d messages (RecoveryMessagesMax); the next split vote tries again",
			RecoveryMessagesMax))
	}
}

// awaits reports whether seq is the tally of a pending divergence.
func (r *Replica[M]) awaits(seq uint32) bool {
	for _, d := range r.heal.pending {
		if d.Seq == seq {
			return true
		}
	}
	return false
}

// recoveryLoaded restores the majority's snapshot, replays what followed
// it, and applies what was held during the download.
func (r *Replica[M]) recoveryLoaded(now int64, loaded SnapshotLoaded) {
	h := &r.heal
	announced := *h.loading
	h.loading, r.loading = nil, ""
	held := r.held
	r.held = nil
	restored, err := r.restoreAnnounced(announced, loaded)
	if err != nil {
		r.endEpisode(now, false, err.Error())
	} else if r.replayOn(now, announced, restored) {
		r.endEpisode(now, true, "")
	}
	for i := range held {
		if r.failed != nil || r.loading != "" {
			r.held = append(r.held, held[i:]...)
			return
		}
		r.apply(now, &held[i])
	}
}

func (r *Replica[M]) restoreAnnounced(announced island.SnapshotAnnouncement, loaded SnapshotLoaded) (*island.Island[M], error) {
	if loaded.Err != nil {
		return nil, fmt.Errorf("downloading the majority's snapshot %s: %w", loaded.URL, loaded.Err)
	}
	data, err := r.options.Codec.OpenSnapshot(loaded.Data)
	if err != nil {
		return nil, fmt.Errorf("opening the majority's snapshot %s: %w", loaded.URL, err)
	}
	restored, err := island.Restore(r.options.App, r.options.Link.ViewID, data)
	if err != nil {
		return nil, fmt.Errorf("the majority's snapshot %s does not restore: %w", loaded.URL, err)
	}
	if seq, _ := restored.Seq(); seq != announced.Seq || restored.Hash() != announced.Hash {
		return nil, fmt.Errorf("the majority's snapshot %s holds seq %d, hash %.16s, not the announced seq %d, hash %.16s",
			loaded.URL, seq, restored.Hash(), announced.Seq, announced.Hash)
	}
	return restored, nil
}

// replayOn replaces the model with restored and applies again the kept
// deliveries that follow the snapshot; false if the replica failed.
func (r *Replica[M]) replayOn(now int64, announced island.SnapshotAnnouncement, restored *island.Island[M]) bool {
	h := &r.heal
	start := 0
	for k, d := range h.replay {
		if d.Kind == link.DeliverMessage && d.Message.Seq == announced.Seq {
			start = k + 1 // kept since an older pending tally
		}
	}
	replay := h.replay[start:]
	r.island, r.fromSnapshot = restored, true
	timeline, _, _, _ := r.link.Position()
	sync := protocol.ServerSync{URL: announced.URL, Time: announced.Time, Seq: announced.Seq, Timeline: timeline,
		HasSnapshot: true, SnapshotTime: announced.Time, SnapshotSeq: announced.Seq}
	if err := r.options.Observer.Reset(&sync, true); err != nil {
		r.fail(now, err)
		return false
	}
	h.replaying = true
	for k := range replay {
		if r.failed != nil {
			break
		}
		r.apply(now, &replay[k])
	}
	h.replaying = false
	return r.failed == nil
}

// endEpisode reports the pending divergences with the outcome.
func (r *Replica[M]) endEpisode(now int64, recovered bool, reason string) {
	h := &r.heal
	pending := h.pending
	h.pending, h.replay, h.replayMessages, h.loading = nil, nil, 0, nil
	if recovered {
		h.recoveries++
		h.streak++
		h.talliesSinceRecovery = 0
	}
	for _, d := range pending {
		d.Recovered, d.Reason = recovered, reason
		if r.failed == nil {
			r.report(now, d)
		}
	}
}

// resetHealing forgets self-healing state when the model is rebuilt from a
// SYNC (a reconnect that could not continue): that rebuild replaces the
// state, and a pending recovery is moot.
func (r *Replica[M]) resetHealing(now int64) {
	if len(r.heal.pending) > 0 {
		r.endEpisode(now, false, "interrupted: a reconnect rebuilt the model from the session's latest snapshot first")
	}
	announce := r.heal.announce
	r.heal = newHealer()
	r.heal.announce = announce
}

// report hands a divergence to the Observer.
func (r *Replica[M]) report(now int64, d island.Divergence) {
	if err := r.options.Observer.Diverged(d); err != nil {
		r.fail(now, err)
	}
}

// uploading remembers an upload of a majority snapshot to announce.
func (r *Replica[M]) uploading(upload island.Upload) {
	if !upload.Announce {
		return
	}
	r.heal.announce = append(r.heal.announce, island.Upload{Time: upload.Time, Seq: upload.Seq, Hash: upload.Hash})
	if len(r.heal.announce) > announcementsPendingMax {
		r.heal.announce = r.heal.announce[1:]
	}
}

// stored announces a stored majority snapshot to the session: an input
// every replica receives, so those outside the majority can reload it.
func (r *Replica[M]) stored(now int64, e SnapshotStored) {
	for k, upload := range r.heal.announce {
		if upload.Seq != e.Seq || upload.Time != e.Time {
			continue
		}
		r.heal.announce = append(r.heal.announce[:k], r.heal.announce[k+1:]...)
		data, err := island.Encode(island.SnapshotAnnouncement{Time: e.Time, Seq: e.Seq, Hash: e.Hash, URL: e.URL})
		if err != nil {
			panic(fmt.Sprintf("replica: a snapshot announcement does not encode: %v", err))
		}
		payload, err := r.options.Codec.Seal(island.Envelope{Kind: island.KindSnapshot, Data: data})
		if err != nil {
			r.options.Observer.Note("the majority's snapshot cannot be announced: " + err.Error())
			return
		}
		r.stepLink(now, link.Submit{Payload: payload})
		return
	}
}
