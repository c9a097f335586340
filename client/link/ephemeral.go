package link

import (
	"errors"
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
)

// The ephemeral channel (docs/protocol.md §22): Broadcast events become
// EPHM frames, paced by their own token bucket and coalesced per name;
// EPHM frames from the reflector become Effects.Ephemeral. None of it
// touches the session's messages, sequence numbers or inputs.

// ephemeralSender is the broadcasts waiting for the send rate, oldest
// name first, each the latest under its name.
type ephemeralSender struct {
	pending []Broadcast
	// tokensMilli and refilledAt are the token bucket, in thousandths of
	// a frame; flushAt is when the next token is due while broadcasts wait.
	tokensMilli int64
	refilledAt  int64
	flushAt     int64
}

func (l *Link) broadcast(now int64, e Broadcast, out *Effects) {
	if len(e.Payload) < 2 || e.Payload[0] != '"' {
		out.Rejected = append(out.Rejected, errors.New("link: a broadcast payload must be a JSON string"))
		return
	}
	if !l.Joined() {
		l.stats.EphemeralDropped++
		return
	}
	sender := &l.ephemeral
	for i := range sender.pending {
		if sender.pending[i].Name == e.Name {
			sender.pending[i] = e
			l.stats.EphemeralCoalesced++
			return // the older one is replaced: its place in line and its timer stay
		}
	}
	if len(sender.pending) >= EphemeralPendingNamesMax {
		out.Rejected = append(out.Rejected, fmt.Errorf("link: broadcasts under %d names are waiting to be sent (EphemeralPendingNamesMax)", len(sender.pending)))
		return
	}
	sender.pending = append(sender.pending, e)
	l.flushEphemeral(now, out)
}

// flushEphemeral sends the waiting broadcasts as the send rate allows;
// the rest wait for the next token.
func (l *Link) flushEphemeral(now int64, out *Effects) {
	sender := &l.ephemeral
	sender.flushAt = never
	if !l.Joined() || len(sender.pending) == 0 {
		return
	}
	rate, burst := l.config.EphemeralSendRatePerSecond, l.config.EphemeralSendBurstMax
	if elapsed := now - sender.refilledAt; elapsed > 0 {
		sender.tokensMilli = min(burst*1000, sender.tokensMilli+elapsed*rate)
		sender.refilledAt = now
	}
	sent := 0
	for sent < len(sender.pending) {
		if sender.tokensMilli < 1000 {
			sender.flushAt = now + (1000-sender.tokensMilli+rate-1)/rate
			break
		}
		sender.tokensMilli -= 1000
		l.stats.EphemeralSent++
		l.sendFrame(now, protocol.AppendEphemeralFrame(nil, l.config.SessionID, sender.pending[sent].Payload), out)
		sent++
	}
	remaining := copy(sender.pending, sender.pending[sent:])
	clear(sender.pending[remaining:])
	sender.pending = sender.pending[:remaining]
}

// dropEphemeral forgets the waiting broadcasts (the connection is gone:
// they would arrive late).
func (l *Link) dropEphemeral() {
	sender := &l.ephemeral
	l.stats.EphemeralDropped += len(sender.pending)
	clear(sender.pending)
	sender.pending = sender.pending[:0]
	sender.flushAt = never
}

// receivedEphemeral hands another view's broadcast to the views, if this
// link asked for them. The reflector sends EPHM only to clients that did
// (and never before their SYNC).
func (l *Link) receivedEphemeral(e protocol.ServerEphemeral, out *Effects) {
	l.stats.EphemeralReceived++
	if !l.config.Join.Ephemeral || l.phase != PhaseSynced {
		out.Notes = append(out.Notes, "ignored an EPHM frame: this link did not ask for the ephemeral channel, or is not synced")
		return
	}
	out.Ephemeral = append(out.Ephemeral, Ephemeral{From: e.From, Payload: e.Payload})
}
