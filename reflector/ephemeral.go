package reflector

import "github.com/metronome-sync/metronome/protocol"

// The ephemeral channel (docs/protocol.md §22), a Metronome extension:
// an EPHM frame from a joined member is relayed at once to the other
// synced members that asked for the channel in their JOIN, and to no one
// else. It is not stamped (no time, no seq), not stored, not buffered and
// never part of a SYNC, so it changes nothing a standard client sees. The
// frame is Droppable: the shell skips recipients whose socket is behind.
//
// Limits: the payload is bounded by protocol.EphemeralPayloadBytesMax
// (4102 beyond it, from the decoder), and an EPHM takes a token of the
// connection's frame budget like every frame (FramesPerSecondMax,
// FramesBurstMax: 4104 beyond it). It has no budget of its own: it costs
// the reflector less than a SEND (no time, no storage) and reaches no more
// recipients, so a separate limit would bound nothing the frame budget
// does not; clients pace and coalesce their broadcasts well below it
// (client/link).

// relayEphemeral relays an EPHM from m.
func (s *Session) relayEphemeral(m *member, frame protocol.ClientFrame, out *Effects) {
	if !m.joined {
		s.closeMember(m, protocol.CloseMalformed, "EPHM before JOIN", out)
		out.note(NoteRejected, m.id, "EPHM before JOIN")
		return
	}
	payload, err := protocol.DecodeEphemeral(frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	to := s.ephemeralRecipients(m.id)
	if len(to) == 0 {
		return
	}
	out.Outbound = append(out.Outbound, Outbound{To: to, Frame: protocol.AppendEphemeral(nil, s.id, m.from, payload), Droppable: true})
}

// ephemeralRecipients returns, in connection order, the synced, connected
// members that asked for the ephemeral channel, except sender.
func (s *Session) ephemeralRecipients(sender ConnID) []ConnID {
	var to []ConnID
	for _, id := range s.activeRecipients() {
		if id != sender && s.members[id].ephemeral {
			to = append(to, id)
		}
	}
	return to
}
