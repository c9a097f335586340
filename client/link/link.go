// Package link is the pure state machine of one client's connection to a
// Croquet-protocol reflector: join, sync, sequence continuity, keep-alive,
// reconnect with back-off, and re-sending inputs that were not seen
// reflected (docs/protocol.md §17B).
//
// Like the reflector core it does no I/O: the caller steps events (a frame
// arrived, a connection opened or closed, time passed) and executes the
// Effects (dial, write frames, close, hand deliveries to the model). Time
// enters as the now argument of Step, in integer milliseconds of the
// caller's monotonic clock; back-off jitter comes from a generator seeded
// by Config.Seed. The same events give the same effects, which is what
// lets the simulator (package sim) run real links under a seeded schedule.
//
// Inputs are exactly-once in effect: every Submit gets an InputTag
// (viewId, number) that travels with the message; the link keeps the input
// until it sees it reflected and re-sends it after a reconnect. A re-sent
// input can be stamped twice (when the first copy was stamped but its echo
// was lost with the connection), so models drop inputs whose tag they have
// already applied — the tags are in the reflected stream, so every replica
// makes the same decision.
//
// A Link is not safe for concurrent use.
package link

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/metronome-sync/metronome/protocol"
)

// Phase is where a link is in its life.
type Phase int

// Phases.
const (
	PhaseIdle       Phase = iota // not started
	PhaseConnecting              // dialled, waiting for Opened
	PhaseSyncing                 // JOIN sent, waiting for SYNC
	PhaseSynced                  // receiving the session's messages
	PhaseWaiting                 // disconnected, waiting to reconnect
	PhaseStopped                 // left or failed; nothing more happens
)

func (p Phase) String() string {
	switch p {
	case PhaseIdle:
		return "idle"
	case PhaseConnecting:
		return "connecting"
	case PhaseSyncing:
		return "syncing"
	case PhaseSynced:
		return "synced"
	case PhaseWaiting:
		return "waiting"
	case PhaseStopped:
		return "stopped"
	}
	return "phase(" + strconv.Itoa(int(p)) + ")"
}

const never = Never

// Never is the wake time of a link that needs no Wake (NextWake).
const Never = int64(1<<63 - 1)

// pendingInput is a submitted input not yet seen reflected.
type pendingInput struct {
	seq     uint64
	payload json.RawMessage
	sentOn  ConnID // the connection it was last sent on (0: never sent)
}

// Link is the state of one client's connection to one session.
type Link struct {
	config Config
	random uint64 // splitmix64 state for back-off jitter

	phase Phase
	conn  ConnID // the current (or last) connection attempt

	// What the client has processed: the timeline of its model, the last
	// seq and the latest session time it saw.
	timeline string
	lastSeq  uint32
	hasSeq   bool
	lastTime int64

	joinComplete bool // own view seen joined (or a rejoin on the same timeline)
	userKey      string

	nextInput uint64 // number of the next submitted input
	pending   []pendingInput

	// Rate limiting of SENDs (token bucket in thousandths of a frame).
	tokensMilli int64
	refilledAt  int64

	backoffMs    int64
	syncDeadline int64
	silenceAt    int64 // close the connection if nothing arrives by then
	pulseAt      int64 // send PULSE if nothing was sent by then
	reconnectAt  int64
	flushAt      int64 // pending inputs wait for rate tokens until then
	// rejectedResendAt is when inputs marked after a rejection are sent
	// again (resendAfterRejection).
	rejectedResendAt  int64
	rejectedBackoffMs int64

	// The ephemeral channel (ephemeral.go).
	ephemeral ephemeralSender

	stats Stats
}

// Stats count what a link did, for tests, logs and the simulator. Every
// SYNC after the first is a rejoin, which either continues the model or
// rebuilds it: Syncs = 1 + SeamlessRejoins + Resets once joined.
type Stats struct {
	// Connects counts connection attempts, the first included (an attempt
	// that fails counts too): Connects - 1 is the number of reconnects.
	Connects int
	// Syncs counts the SYNCs received (one per connection that got as far
	// as joining).
	Syncs int
	// SeamlessRejoins counts rejoins that continued the model where it
	// was: same timeline, nothing missed.
	SeamlessRejoins int
	// Resets counts rejoins that had to rebuild the model (from the
	// reflector's snapshot, or from nothing if it has none) because what
	// followed this replica's last message was no longer available or the
	// reflector's timeline changed: this replica's state was replaced by
	// the session's. The first join is not one.
	Resets int
	// Gaps counts sequence gaps seen (a message missing; each ends the
	// connection, and the rejoin fills the gap). Duplicates counts
	// messages received twice and dropped.
	Gaps, Duplicates int
	// InputsSent counts inputs sent (re-sends included); InputsResent the
	// re-sends of inputs not yet seen reflected, after a reconnect or a
	// rejection (each still takes effect once). Pulses counts the
	// keep-alives sent on an otherwise quiet connection.
	InputsSent, InputsResent, Pulses int
	// The ephemeral channel (docs/protocol.md §22): EphemeralSent counts
	// the broadcasts sent; EphemeralCoalesced those replaced by a newer
	// one under the same name before they went out; EphemeralDropped
	// those dropped because the link was not joined (or lost its
	// connection before sending them); EphemeralReceived the other
	// views' broadcasts that arrived.
	EphemeralSent, EphemeralCoalesced, EphemeralDropped, EphemeralReceived int
}

// New returns a link that starts connecting at the first Start event.
func New(config Config) (*Link, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	config.setDefaults()
	l := &Link{
		config:       config,
		random:       config.Seed,
		nextInput:    1,
		userKey:      string(config.user()),
		syncDeadline: never,
		silenceAt:    never,
		pulseAt:      never,
		reconnectAt:  never,
		flushAt:      never,
		tokensMilli:  config.SendBurstMax * 1000,
		ephemeral:    ephemeralSender{tokensMilli: config.EphemeralSendBurstMax * 1000, flushAt: never},
	}
	return l, nil
}

// Phase returns the link's phase.
func (l *Link) Phase() Phase { return l.phase }

// Joined reports whether the link is synced and its join completed, so
// inputs flow.
func (l *Link) Joined() bool { return l.phase == PhaseSynced && l.joinComplete }

// Position returns the timeline, last processed seq and latest session
// time (ok is false before the first SYNC).
func (l *Link) Position() (timeline string, seq uint32, time int64, ok bool) {
	return l.timeline, l.lastSeq, l.lastTime, l.hasSeq
}

// NextInput returns the tag number (InputTag.Seq) the next Submit will
// give its input, so that the caller can recognise it when it comes back
// reflected (speculation, package client/replica).
func (l *Link) NextInput() uint64 { return l.nextInput }

// InputPending reports whether the input with tag number seq was submitted
// and not yet seen reflected.
func (l *Link) InputPending(seq uint64) bool {
	for i := range l.pending {
		if l.pending[i].seq == seq {
			return true
		}
	}
	return false
}

// PendingInputs returns how many submitted inputs were not yet seen
// reflected.
func (l *Link) PendingInputs() int { return len(l.pending) }

// Stats returns the link's counters.
func (l *Link) Stats() Stats { return l.stats }

// NextWake returns when the link next needs a Wake (Never when none).
func (l *Link) NextWake() int64 {
	return min(l.syncDeadline, l.silenceAt, l.pulseAt, l.reconnectAt, l.flushAt, l.ephemeral.flushAt)
}

// Step processes one event at time now and appends its effects to out.
func (l *Link) Step(now int64, event Event, out *Effects) {
	if out.Close != nil || out.Dial != 0 {
		// A connection's close and the next dial are ordered with the
		// frames around them; an Effects that already holds one would
		// lose it or reorder it. Execute and Reset before stepping again.
		panic("link: Step into Effects that still hold a Close or Dial (execute them and Reset first)")
	}
	if l.phase == PhaseStopped {
		return
	}
	l.runTimers(now, out)
	if l.phase == PhaseStopped {
		return
	}
	switch e := event.(type) {
	case Start:
		if l.phase == PhaseIdle {
			l.dial(now, out)
		}
	case Opened:
		if e.Conn == l.conn && l.phase == PhaseConnecting {
			l.opened(now, out)
		}
	case Received:
		if e.Conn == l.conn && (l.phase == PhaseSyncing || l.phase == PhaseSynced) {
			l.received(now, e.Data, out)
		}
	case Closed:
		if e.Conn == l.conn && l.phase != PhaseWaiting && l.phase != PhaseIdle {
			l.closed(now, e.Code, e.Reason, out)
		}
	case Wake:
	case Submit:
		l.submit(now, e.Payload, out)
	case Snapshot:
		if l.phase == PhaseSynced {
			l.sendFrame(now, protocol.AppendSnapFrame(nil, l.config.SessionID, e.Time, e.Seq, e.Hash, e.URL), out)
		}
	case Save:
		if l.phase == PhaseSynced {
			l.sendFrame(now, protocol.AppendSaveFrame(nil, l.config.SessionID, e.PersistTime, e.URL), out)
		}
	case Poll:
		if l.Joined() {
			l.sendFrame(now, protocol.AppendPollFrame(nil, l.config.SessionID, now, e.Payload, PollMsgID, PollDebounceMs), out)
		}
	case Vote:
		if l.Joined() {
			l.sendFrame(now, protocol.AppendTuttiFrame(nil, l.config.SessionID, e.SendTime, e.Vote, true, e.TallyTarget, e.Key), out)
		}
	case Broadcast:
		l.broadcast(now, e, out)
	case Leave:
		if l.phase == PhaseConnecting || l.phase == PhaseSyncing || l.phase == PhaseSynced {
			out.Close = &Close{Conn: l.conn, Code: protocol.CloseNormal, Reason: "leaving"}
		}
		l.stop()
	default:
		panic(fmt.Sprintf("link: unknown event %T", event))
	}
}

func (l *Link) runTimers(now int64, out *Effects) {
	if now >= l.reconnectAt {
		l.reconnectAt = never
		l.dial(now, out)
	}
	if now >= l.syncDeadline {
		l.fault(now, fmt.Sprintf("no SYNC within %d ms of JOIN (SyncTimeoutMs)", l.config.SyncTimeoutMs), out)
	}
	if now >= l.silenceAt {
		l.fault(now, fmt.Sprintf("nothing received for %d ms (SilenceTimeoutMs)", l.config.SilenceTimeoutMs), out)
	}
	if now >= l.pulseAt {
		l.pulseAt = never
		if l.phase == PhaseSynced {
			l.stats.Pulses++
			l.sendFrame(now, protocol.AppendPulseFrame(nil, l.config.SessionID), out)
		}
	}
	if now >= l.flushAt {
		l.flushAt = never
		l.flush(now, out)
	}
	if now >= l.ephemeral.flushAt {
		l.ephemeral.flushAt = never
		l.flushEphemeral(now, out)
	}
}

func (l *Link) stop() {
	l.phase = PhaseStopped
	l.syncDeadline, l.silenceAt, l.pulseAt, l.reconnectAt, l.flushAt = never, never, never, never, never
	l.dropEphemeral()
}

func (l *Link) dial(now int64, out *Effects) {
	l.conn++
	l.phase = PhaseConnecting
	l.stats.Connects++
	out.Dial = l.conn
	// Opening the connection counts against the SYNC deadline too: a dial
	// that neither opens nor fails must not hang the link.
	l.syncDeadline = now + l.config.SyncTimeoutMs
}

func (l *Link) opened(now int64, out *Effects) {
	l.phase = PhaseSyncing
	l.syncDeadline = now + l.config.SyncTimeoutMs
	l.silenceAt = now + l.config.SilenceTimeoutMs
	l.sendFrame(now, protocol.AppendJoinFrame(nil, l.config.SessionID, &l.config.Join), out)
}

// fault closes the current connection with a client error (4000) and
// schedules a reconnect.
func (l *Link) fault(now int64, reason string, out *Effects) {
	out.Notes = append(out.Notes, "reconnecting: "+reason)
	out.Close = &Close{Conn: l.conn, Code: protocol.CloseClientError, Reason: protocol.TruncateReason(reason)}
	l.waitToReconnect(now)
}

func (l *Link) closed(now int64, code int, reason string, out *Effects) {
	if protocol.CloseIsFatal(code) {
		err := fmt.Errorf("the reflector closed the connection with %d (%s): %s; not reconnecting", code, protocol.CloseCodeText(code), reason)
		out.Notes = append(out.Notes, err.Error())
		out.Failed = err
		l.stop()
		return
	}
	out.Notes = append(out.Notes, fmt.Sprintf("connection closed with %d %q; reconnecting", code, reason))
	l.waitToReconnect(now)
}

// waitToReconnect schedules the next attempt: at once after a connection
// that had synced, then with growing, jittered delays (docs/protocol.md §5.3).
func (l *Link) waitToReconnect(now int64) {
	l.phase = PhaseWaiting
	l.syncDeadline, l.silenceAt, l.pulseAt, l.flushAt = never, never, never, never
	l.dropEphemeral()
	l.reconnectAt = now + l.backoffMs
	jitter := float64(l.nextRandom()>>11) / (1 << 53) // [0, 1)
	//metronome:allow in range: backoffMs stays at most ReconnectDelayMaxMs, jitter is in [0, 1)
	l.backoffMs = min(l.config.ReconnectDelayMaxMs, int64(float64(float64(l.backoffMs+100)*(1+jitter))+0.5))
}

// nextRandom is splitmix64.
func (l *Link) nextRandom() uint64 {
	l.random += 0x9e3779b97f4a7c15
	z := l.random
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (l *Link) sendFrame(now int64, data []byte, out *Effects) {
	out.Frames = append(out.Frames, Frame{Conn: l.conn, Data: data})
	l.pulseAt = now + l.config.PulseAfterMs
}

func (l *Link) received(now int64, data []byte, out *Effects) {
	l.silenceAt = now + l.config.SilenceTimeoutMs
	frame, err := protocol.DecodeServerFrame(data)
	if err != nil {
		l.fault(now, "unusable frame from the reflector: "+err.Error(), out)
		return
	}
	switch frame.Action {
	case protocol.ActionSync:
		if l.phase == PhaseSyncing {
			l.sync(now, frame.Sync, out)
		}
	case protocol.ActionRecv:
		if l.phase == PhaseSynced {
			l.recv(now, frame.Message, out)
		}
	case protocol.ActionTick:
		if l.phase == PhaseSynced {
			l.advanceTime(frame.Time, out)
		}
	case protocol.ActionInfo:
		out.Notes = append(out.Notes, fmt.Sprintf("reflector INFO %s: %s", frame.Info.Code, frame.Info.Message))
		if frame.Info.Code == protocol.InfoMessageRejected {
			l.resendAfterRejection(now)
		}
	case protocol.ActionRequ:
		out.SnapshotRequested = true
	case protocol.ActionEphemeral:
		l.receivedEphemeral(frame.Ephemeral, out)
	}
}

// after reports whether seq a comes after b (uint32 wrap-around).
func after(a, b uint32) bool { return int32(a-b) > 0 }

func (l *Link) sync(now int64, sync *protocol.ServerSync, out *Effects) {
	l.syncDeadline = never
	l.backoffMs = 0
	l.phase = PhaseSynced
	l.stats.Syncs++
	sameTimeline := l.hasSeq && sync.Timeline == l.timeline
	if sameTimeline && l.seamless(sync) {
		l.stats.SeamlessRejoins++
		for _, message := range sync.Messages {
			if after(message.Seq, l.lastSeq) {
				l.deliver(message, out)
			}
		}
	} else {
		if l.hasSeq {
			l.stats.Resets++ // the first SYNC builds the model; later ones rebuild it
		}
		l.timeline = sync.Timeline
		l.hasSeq = true
		l.joinComplete = false
		out.Deliveries = append(out.Deliveries, Delivery{Kind: DeliverReset, Sync: sync})
		for _, message := range sync.Messages {
			l.deliver(message, out)
		}
	}
	l.lastSeq = sync.Seq
	l.advanceTime(sync.Time, out)
	if sameTimeline && !l.joinComplete {
		// A rejoin on the same timeline: the reflector cancels our leave and
		// join against each other, so no users message will name us.
		l.completeJoin(now, out)
	} else if l.joinComplete {
		l.completeJoin(now, out)
	}
}

// seamless reports whether the model can continue across this SYNC
// (docs/protocol.md §8.2): the SYNC covers everything after our last seq.
func (l *Link) seamless(sync *protocol.ServerSync) bool {
	oldest := sync.Seq
	switch {
	case sync.HasSnapshot:
		oldest = sync.SnapshotSeq
	case len(sync.Messages) > 0:
		oldest = sync.Messages[0].Seq - 1
	}
	if after(oldest, l.lastSeq) || after(l.lastSeq, sync.Seq) || sync.Time < l.lastTime {
		return false
	}
	for _, message := range sync.Messages {
		if !after(message.Seq, l.lastSeq) {
			continue
		}
		if change, ok := protocol.DecodeUsers(message.Payload); ok && l.listed(change.Left) {
			return false
		}
	}
	return true
}

func (l *Link) listed(users []json.RawMessage) bool {
	for _, user := range users {
		if string(user) == l.userKey {
			return true
		}
	}
	return false
}

func (l *Link) recv(now int64, message protocol.StampedMessage, out *Effects) {
	expected := l.lastSeq + 1
	switch {
	case message.Seq == expected:
		l.lastSeq = message.Seq
		l.deliver(message, out)
		if !l.joinComplete {
			if change, ok := protocol.DecodeUsers(message.Payload); ok && l.listed(change.Joined) {
				l.completeJoin(now, out)
			}
		}
	case !after(message.Seq, l.lastSeq):
		l.stats.Duplicates++
		out.Notes = append(out.Notes, fmt.Sprintf("ignored a duplicate message seq %d (last %d)", message.Seq, l.lastSeq))
	default:
		l.stats.Gaps++
		l.fault(now, fmt.Sprintf("sequence gap: got seq %d after %d", message.Seq, l.lastSeq), out)
	}
}

func (l *Link) deliver(message protocol.StampedMessage, out *Effects) {
	delivery := Delivery{Kind: DeliverMessage, Message: message}
	if tag, ok := parseInputTag(message); ok {
		delivery.Input, delivery.IsInput = tag, true
		if tag.ViewID == l.config.ViewID {
			l.acknowledge(tag.Seq)
		}
	}
	if message.Time > l.lastTime {
		l.lastTime = message.Time
	}
	out.Deliveries = append(out.Deliveries, delivery)
}

func (l *Link) advanceTime(t int64, out *Effects) {
	if t > l.lastTime {
		l.lastTime = t
		out.Deliveries = append(out.Deliveries, Delivery{Kind: DeliverTime, Time: t})
	}
}

func (l *Link) acknowledge(seq uint64) {
	l.rejectedBackoffMs = 0 // the buffer takes this link's inputs again
	for i, input := range l.pending {
		if input.seq == seq {
			l.pending = append(l.pending[:i], l.pending[i+1:]...)
			return
		}
	}
}

func (l *Link) completeJoin(now int64, out *Effects) {
	if !l.joinComplete {
		l.joinComplete = true
		out.Joined = true
	}
	l.flush(now, out)
}

func (l *Link) submit(now int64, payload json.RawMessage, out *Effects) {
	if len(payload) == 0 || payload[0] != '"' {
		out.Rejected = append(out.Rejected, errors.New("link: an input payload must be a JSON string"))
		return
	}
	if len(l.pending) >= l.config.PendingInputsMax {
		out.Rejected = append(out.Rejected, fmt.Errorf("link: %d inputs are waiting to be sent (PendingInputsMax)", len(l.pending)))
		return
	}
	l.pending = append(l.pending, pendingInput{seq: l.nextInput, payload: payload})
	l.nextInput++
	if l.Joined() {
		l.flush(now, out)
	}
}

// flush sends every pending input not yet sent on this connection, as the
// send rate allows; the rest wait for the next Wake.
func (l *Link) flush(now int64, out *Effects) {
	if !l.Joined() {
		return
	}
	l.refill(now)
	for i := range l.pending {
		input := &l.pending[i]
		if input.sentOn == l.conn {
			continue
		}
		if input.sentOn == rejectedConn && now < l.rejectedResendAt {
			l.flushAt = min(l.flushAt, l.rejectedResendAt)
			continue
		}
		if l.tokensMilli < 1000 {
			l.flushAt = now + (1000-l.tokensMilli+l.config.SendRatePerSecond-1)/l.config.SendRatePerSecond
			return
		}
		l.tokensMilli -= 1000
		if input.sentOn != 0 {
			l.stats.InputsResent++
		}
		l.stats.InputsSent++
		input.sentOn = l.conn
		tag := InputTag{ViewID: l.config.ViewID, Seq: input.seq}
		l.sendFrame(now, protocol.AppendSendFrame(nil, l.config.SessionID, now, input.payload,
			[]json.RawMessage{tag.encode(), json.RawMessage("0")}), out)
	}
}

// resendAfterRejection marks every unconfirmed input for sending again:
// one of them was rejected, and nothing but a re-send would ever deliver
// it. The first rejection after a re-send starts an episode: the re-send
// waits RejectedResendDelayMs, doubling with every episode up to
// RejectedResendDelayMaxMs until one of this link's inputs is stamped
// again, so that a buffer that stays full is not hammered.
func (l *Link) resendAfterRejection(now int64) {
	for i := range l.pending {
		if l.pending[i].sentOn == l.conn {
			l.pending[i].sentOn = rejectedConn
		}
	}
	if now >= l.rejectedResendAt {
		l.rejectedBackoffMs = min(max(2*l.rejectedBackoffMs, RejectedResendDelayMs), RejectedResendDelayMaxMs)
		l.rejectedResendAt = now + l.rejectedBackoffMs
	}
	l.flushAt = min(l.flushAt, l.rejectedResendAt)
}

// rejectedConn marks an input sent on the current connection whose
// outcome is unknown after a rejection: flush sends it again.
const rejectedConn = ConnID(1<<64 - 1)

func (l *Link) refill(now int64) {
	if elapsed := now - l.refilledAt; elapsed > 0 {
		l.tokensMilli = min(l.config.SendBurstMax*1000, l.tokensMilli+elapsed*l.config.SendRatePerSecond)
		l.refilledAt = now
	}
}

// encode returns the tag as the JSON string "viewId:seq".
func (t InputTag) encode() json.RawMessage {
	return json.RawMessage(`"` + t.ViewID + ":" + strconv.FormatUint(t.Seq, 10) + `"`)
}

// parseInputTag finds the input tag in element 3 of a message array.
func parseInputTag(message protocol.StampedMessage) (InputTag, bool) {
	if len(message.Extra) == 0 {
		return InputTag{}, false
	}
	raw := message.Extra[0]
	if len(raw) < 4 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return InputTag{}, false
	}
	view, number, ok := strings.Cut(string(raw[1:len(raw)-1]), ":")
	if !ok || !validViewID(view) {
		return InputTag{}, false
	}
	seq, err := strconv.ParseUint(number, 10, 64)
	if err != nil || seq == 0 {
		return InputTag{}, false
	}
	return InputTag{ViewID: view, Seq: seq}, true
}
