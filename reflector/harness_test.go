package reflector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	metronomestore "github.com/metronome-sync/metronome/store"
)

// This file holds what the scenario interpreter and the property test
// share: a driver that runs the session through the one host every shell
// runs (package host), a model of the durable store that is the host's
// Store and applies batches exactly as the documented contract says, and a
// checker that watches every executed effect for the protocol's delivery
// and timing invariants (docs/protocol.md §4, §6B, §17).

// hostDriver steps a session through package host, one event per flush,
// and keeps a copy of what each flush executed for the checker.
type hostDriver struct {
	host     *host.Session
	executed reflector.Effects
	// failure is the storage error the host reported (a violation here:
	// the model store fails only on a contract breach).
	failure error
}

// open opens the session from store through the host (fresh with
// timeline if nothing is stored).
func (d *hostDriver) open(config reflector.Config, id, timeline string, store *modelStore, now int64) error {
	d.failure = nil
	d.host = host.Open(context.Background(), id, now, host.Options{
		Config: config, Timeline: timeline, Store: store, Conns: nopConns{}, Observer: d})
	return d.failure
}

// step steps one event and flushes it; the returned effects (valid until
// the next step) are what the host executed.
func (d *hostDriver) step(now int64, event reflector.Event) (*reflector.Effects, error) {
	d.executed.Reset()
	d.host.Step(now, event)
	d.host.Flush(context.Background())
	d.host.TakeLookups() // answered by the drivers from executed.LookupPointers
	return &d.executed, d.failure
}

func (d *hostDriver) Opened(string, reflector.Record, int, bool) {}

func (d *hostDriver) StorageFailed(_ string, err error) { d.failure = err }
func (d *hostDriver) Quarantined(_ string, err error)   { d.failure = err }

func (d *hostDriver) PointerFailed(_, key string, err error) {
	d.failure = fmt.Errorf("pointer %s: %w", key, err)
}

// Flushed copies the executed effects (the slices' contents are immutable
// or copied here; the host reuses the slices themselves).
func (d *hostDriver) Flushed(_ string, out *reflector.Effects) {
	e := &d.executed
	e.Storage.Append = append(e.Storage.Append, out.Storage.Append...)
	e.Storage.DropFront = out.Storage.DropFront
	e.Storage.Record = out.Storage.Record
	e.Storage.Pointers = append(e.Storage.Pointers, out.Storage.Pointers...)
	e.LookupPointers = append(e.LookupPointers, out.LookupPointers...)
	e.Outbound = append(e.Outbound, out.Outbound...)
	e.Notes = append(e.Notes, out.Notes...)
	e.Ended = out.Ended
	e.MessagesStamped, e.TicksSent = out.MessagesStamped, out.TicksSent
	e.LatencySamplesMs = append(e.LatencySamplesMs, out.LatencySamplesMs...)
}

// nopConns is the drivers' transport: the checker reads the frames from
// the executed effects.
type nopConns struct{}

func (nopConns) Send(*reflector.Outbound)            {}
func (nopConns) Close(reflector.ConnID, int, string) {}
func (nopConns) CloseAll(int, string)                {}
func (nopConns) Flush()                              {}
func (m *modelStore) LoadSession(_ context.Context, _ string) (metronomestore.Session, error) {
	if m.record == nil {
		return metronomestore.Session{}, metronomestore.ErrNotFound
	}
	stored := metronomestore.Session{Record: m.record}
	for _, message := range m.log {
		stored.Messages = append(stored.Messages, metronomestore.Message{Seq: message.Seq, Data: message.Data})
	}
	return stored, nil
}

// Commit applies a batch through apply, which checks the contract.
func (m *modelStore) Commit(_ context.Context, _ string, batch metronomestore.Batch) error {
	storage := reflector.Storage{DropFront: batch.DropFront, Record: batch.Record}
	for _, message := range batch.Append {
		storage.Append = append(storage.Append, reflector.StoredMessage{Seq: message.Seq, Data: message.Data})
	}
	return m.apply(&storage)
}

func (m *modelStore) PutPointer(_ context.Context, key string, value []byte) error {
	return m.apply(&reflector.Storage{Pointers: []reflector.Pointer{{Key: key, Value: value}}})
}

func (m *modelStore) GetPointer(_ context.Context, key string) ([]byte, error) {
	value, ok := m.pointers[key]
	if !ok {
		return nil, metronomestore.ErrNotFound
	}
	return value, nil
}

// errNoLookup: a pointer answer was asked for with no lookup pending.
var errNoLookup = errors.New("no pointer lookup to answer")

// modelStore is an in-memory store fed only by Storage effects. It is what
// survives a crash.
type modelStore struct {
	record   []byte
	log      []reflector.StoredMessage
	pointers map[string][]byte
	// version counts the applied Storage effects that changed something,
	// so checks can reuse what they derived from an unchanged store.
	version int
	// lastDropped are the messages the last applied DropFront removed, so
	// a torn commit (record written, drop lost) can be modelled.
	lastDropped []reflector.StoredMessage
}

// apply makes one Effects' Storage durable in the documented order: Append,
// then DropFront, then Record; pointers beside.
func (m *modelStore) apply(storage *reflector.Storage) error {
	if !storage.Empty() {
		m.version++
	}
	for _, message := range storage.Append {
		if n := len(m.log); n > 0 && message.Seq != m.log[n-1].Seq+1 {
			return fmt.Errorf("store: append of seq %d after seq %d leaves a gap", message.Seq, m.log[n-1].Seq)
		}
		m.log = append(m.log, reflector.StoredMessage{Seq: message.Seq, Data: bytes.Clone(message.Data)})
	}
	if storage.DropFront < 0 || storage.DropFront > len(m.log) {
		return fmt.Errorf("store: drop %d of a log holding %d messages", storage.DropFront, len(m.log))
	}
	if len(storage.Append) > 0 || storage.DropFront > 0 || storage.Record != nil {
		m.lastDropped = append([]reflector.StoredMessage(nil), m.log[:storage.DropFront]...)
	}
	m.log = append([]reflector.StoredMessage(nil), m.log[storage.DropFront:]...)
	if storage.Record != nil {
		m.record = bytes.Clone(storage.Record)
	}
	for _, pointer := range storage.Pointers {
		if m.pointers == nil {
			m.pointers = make(map[string][]byte)
		}
		m.pointers[pointer.Key] = bytes.Clone(pointer.Value)
	}
	return nil
}

// tear models a crash in the middle of the last commit: its record was
// written but its DropFront was not. It reports whether anything changed.
func (m *modelStore) tear() bool {
	if len(m.lastDropped) == 0 {
		return false
	}
	m.log = append(m.lastDropped, m.log...)
	m.lastDropped = nil
	m.version++
	return true
}

// messages returns a copy of the log, as a store would hand it back.
func (m *modelStore) messages() []reflector.StoredMessage {
	return append([]reflector.StoredMessage(nil), m.log...)
}

// pointerURL answers a lookup as the host does (host.Session.LookupPointer).
func (d *hostDriver) pointerURL(key string) (string, error) {
	if key == "" {
		return "", errNoLookup
	}
	loaded, err := d.host.LookupPointer(context.Background(), key)
	return loaded.URL, err
}

// connState is what the checker knows about one connection, from the
// client's point of view.
type connState struct {
	name         string
	synced       bool // received a SYNC
	closed       bool // a close effect was emitted for it
	disconnected bool // the caller stepped Disconnect (or the session crashed)
	lastSeq      uint32
	lastTime     int64
	hasTime      bool
	received     int // frames received
	// joinSeen: a JOIN that decodes was received (the first one decides
	// the user and the ephemeral channel); ephemeral: it asked for the
	// channel (docs/protocol.md §22).
	joinSeen, ephemeral bool
}

func (c *connState) live() bool { return !c.closed && !c.disconnected }

// checker validates effects against the protocol invariants. Violations are
// collected, not fatal, so the caller decides how to report them.
type checker struct {
	sessionID  string
	conns      map[reflector.ConnID]*connState
	stamped    map[uint32][]byte // data of every message stamped (this incarnation of seq numbers)
	lastStamp  uint32
	anyStamp   bool
	maxTime    int64 // the largest "current time" ever sent (SYNC.time, RECV time, TICK)
	anyTime    bool
	violations []string
	// disconnecting is the connection whose Disconnect is being stepped; it
	// counts as disconnected once the step's effects are observed.
	disconnecting reflector.ConnID
	// receiving is the connection whose frame is being stepped (the
	// sender of an EPHM the step relays).
	receiving reflector.ConnID
	order     []reflector.ConnID // connections in connection order

	// What was derived from the store at storeVersion (decoding is the
	// expensive part of the checks; the store changes far less often than
	// the session is stepped).
	storeVersion int
	stored       *reflector.Record
	restored     *reflector.Session
}

func newChecker(sessionID string) *checker {
	return &checker{
		sessionID: sessionID,
		conns:     make(map[reflector.ConnID]*connState),
		stamped:   make(map[uint32][]byte),
	}
}

func (c *checker) violate(format string, args ...any) {
	c.violations = append(c.violations, fmt.Sprintf(format, args...))
}

// takeViolations returns and clears the violations found so far.
func (c *checker) takeViolations() []string {
	v := c.violations
	c.violations = nil
	return v
}

func (c *checker) connect(id reflector.ConnID, name string) {
	c.conns[id] = &connState{name: name}
	c.order = append(c.order, id)
}

// receive notes a frame about to be stepped on connection id: its sender,
// and whether a first JOIN asks for the ephemeral channel.
func (c *checker) receive(id reflector.ConnID, frame protocol.ClientFrame, err error) {
	c.receiving = id
	conn := c.conns[id]
	if conn == nil || err != nil || frame.Action != protocol.ActionJoin || conn.joinSeen {
		return
	}
	if join, err := protocol.DecodeJoin(frame.Args); err == nil {
		conn.joinSeen, conn.ephemeral = true, join.Ephemeral
	}
}

func (c *checker) disconnect(id reflector.ConnID) {
	if conn := c.conns[id]; conn != nil {
		conn.disconnected = true
	}
}

// dropAll forgets every connection: the session crashed or ended and its
// sockets are gone.
func (c *checker) dropAll() {
	for _, conn := range c.conns {
		conn.disconnected = true
	}
}

func (c *checker) name(id reflector.ConnID) string {
	if conn := c.conns[id]; conn != nil {
		return conn.name
	}
	return "conn" + strconv.FormatUint(uint64(id), 10)
}

type wireFrame struct {
	ID     *string         `json:"id"`
	Action string          `json:"action"`
	Args   json.RawMessage `json:"args"`
}

type wireSync struct {
	URL          *string           `json:"url"`
	Messages     []json.RawMessage `json:"messages"`
	Time         *int64            `json:"time"`
	Seq          *uint32           `json:"seq"`
	Timeline     string            `json:"timeline"`
	Flags        json.RawMessage   `json:"flags"`
	SnapshotTime *int64            `json:"snapshotTime"`
	SnapshotSeq  *uint32           `json:"snapshotSeq"`
	Persisted    bool              `json:"persisted"`
}

// parseMessage reads time and seq of a message array; both must be
// integers (docs/protocol.md §4.4).
func parseMessage(raw []byte) (time int64, seq uint32, err error) {
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil {
		return 0, 0, fmt.Errorf("message is not an array: %s", raw)
	}
	if len(elements) < 3 {
		return 0, 0, fmt.Errorf("message has %d elements: %s", len(elements), raw)
	}
	if err := json.Unmarshal(elements[0], &time); err != nil {
		return 0, 0, fmt.Errorf("message time is not an integer: %s", raw)
	}
	if err := json.Unmarshal(elements[1], &seq); err != nil {
		return 0, 0, fmt.Errorf("message seq is not a uint32: %s", raw)
	}
	return time, seq, nil
}

// observeTime checks that a "current time" value never decreases, globally
// and for the connection (docs/protocol.md §4.1 MUST: monotonic across SYNC/RECV/TICK).
func (c *checker) observeTime(what string, t int64, to []*connState) {
	if c.anyTime && t < c.maxTime {
		c.violate("%s time %d is before time %d already sent", what, t, c.maxTime)
	}
	if !c.anyTime || t > c.maxTime {
		c.maxTime, c.anyTime = t, true
	}
	for _, conn := range to {
		if conn.hasTime && t < conn.lastTime {
			c.violate("%s: %s time %d is before %d it already received", conn.name, what, t, conn.lastTime)
		}
		conn.lastTime, conn.hasTime = t, true
	}
}

// observe checks one step's effects, in the order the caller executes them.
func (c *checker) observe(out *reflector.Effects) {
	for _, message := range out.Storage.Append {
		if c.anyStamp && message.Seq != c.lastStamp+1 {
			c.violate("stamped seq %d after seq %d", message.Seq, c.lastStamp)
		}
		c.lastStamp, c.anyStamp = message.Seq, true
		c.stamped[message.Seq] = bytes.Clone(message.Data)
	}
	if out.MessagesStamped != len(out.Storage.Append) {
		c.violate("MessagesStamped %d but %d messages appended to storage", out.MessagesStamped, len(out.Storage.Append))
	}
	for i := range out.Outbound {
		c.observeOutbound(&out.Outbound[i])
	}
	if c.disconnecting != 0 {
		c.disconnect(c.disconnecting)
		c.disconnecting = 0
	}
	c.receiving = 0
}

func (c *checker) recipients(ob *reflector.Outbound) []*connState {
	to := make([]*connState, 0, len(ob.To))
	seen := make(map[reflector.ConnID]bool, len(ob.To))
	for _, id := range ob.To {
		if seen[id] {
			c.violate("%s listed twice as recipient of one effect", c.name(id))
			continue
		}
		seen[id] = true
		conn := c.conns[id]
		if conn == nil {
			c.violate("effect addressed to unknown connection %d", id)
			continue
		}
		if conn.disconnected {
			c.violate("%s: effect after Disconnect", conn.name)
		} else if conn.closed {
			c.violate("%s: effect after its close", conn.name)
		}
		conn.received++
		to = append(to, conn)
	}
	return to
}

func (c *checker) observeOutbound(ob *reflector.Outbound) {
	if len(ob.To) == 0 {
		c.violate("effect without recipients")
		return
	}
	if ob.CloseCode != 0 {
		if len(ob.To) != 1 || ob.Frame != nil {
			c.violate("close effect with %d recipients and a frame", len(ob.To))
		}
		if ob.CloseCode == protocol.CloseNormal || ob.CloseCode < 4000 || ob.CloseCode > 4999 {
			c.violate("close code %d: a server closes with 40xx (retry) or 41xx (fatal), never 1000 (docs/protocol.md §5.3)", ob.CloseCode)
		}
		for _, conn := range c.recipients(ob) {
			conn.closed = true
		}
		return
	}
	whole := ob.Bytes()
	var frame wireFrame
	if err := json.Unmarshal(whole, &frame); err != nil {
		c.violate("frame is not a JSON object: %s", whole)
		return
	}
	to := c.recipients(ob)
	if frame.Action == protocol.ActionPong {
		if frame.ID != nil {
			c.violate("PONG carries an id: %s", whole)
		}
	} else if frame.ID == nil || *frame.ID != c.sessionID {
		c.violate("%s frame without the session id (docs/protocol.md §3.4): %s", frame.Action, whole)
	}
	if ob.Tick != (frame.Action == protocol.ActionTick) {
		c.violate("Tick flag %v on a %s frame", ob.Tick, frame.Action)
	}
	if ob.Droppable != (frame.Action == protocol.ActionEphemeral) {
		c.violate("Droppable flag %v on a %s frame", ob.Droppable, frame.Action)
	}
	switch frame.Action {
	case protocol.ActionSync:
		c.observeSync(frame.Args, to)
	case protocol.ActionRecv:
		t, seq, err := parseMessage(frame.Args)
		if err != nil {
			c.violate("RECV: %v", err)
			return
		}
		if stored, ok := c.stamped[seq]; !ok || !bytes.Equal(stored, frame.Args) {
			c.violate("RECV of seq %d that differs from what was stored: %s", seq, frame.Args)
		}
		for _, conn := range to {
			if !conn.synced {
				c.violate("%s: RECV seq %d before its SYNC", conn.name, seq)
			} else if seq != conn.lastSeq+1 {
				c.violate("%s: RECV seq %d after seq %d (gap or duplicate)", conn.name, seq, conn.lastSeq)
			}
			conn.lastSeq = seq
		}
		c.observeTime("RECV", t, to)
	case protocol.ActionTick:
		var t int64
		if err := json.Unmarshal(frame.Args, &t); err != nil {
			c.violate("TICK args is not an integer: %s", whole)
			return
		}
		for _, conn := range to {
			if !conn.synced {
				c.violate("%s: TICK before its SYNC", conn.name)
			}
		}
		c.observeTime("TICK", t, to)
	case protocol.ActionRequ:
		for _, conn := range to {
			if !conn.synced {
				c.violate("%s: REQU before its SYNC", conn.name)
			}
		}
	case protocol.ActionEphemeral:
		c.observeEphemeral(whole, to)
	case protocol.ActionInfo, protocol.ActionPong:
	default:
		c.violate("unexpected action %q", frame.Action)
	}
}

// observeEphemeral checks a relayed EPHM (docs/protocol.md §22): it goes
// to exactly the synced live members that asked for the channel, other
// than its sender, and carries no time or seq (it is never stamped: the
// settle checks find it neither stored nor in a SYNC).
func (c *checker) observeEphemeral(whole []byte, to []*connState) {
	frame, err := protocol.DecodeServerFrame(whole)
	if err != nil {
		c.violate("EPHM: %v", err)
		return
	}
	if c.receiving == 0 {
		c.violate("EPHM %s relayed in a step that received no frame", whole)
		return
	}
	if len(frame.Ephemeral.Payload) == 0 {
		c.violate("EPHM without a payload: %s", whole)
	}
	sender := c.conns[c.receiving]
	want := map[*connState]bool{}
	for _, conn := range c.sortedConns() {
		if conn != sender && conn.synced && conn.live() && conn.ephemeral {
			want[conn] = true
		}
	}
	for _, conn := range to {
		switch {
		case conn == sender:
			c.violate("%s: its own EPHM relayed back to it", conn.name)
		case !conn.ephemeral:
			c.violate("%s: EPHM to a member that did not ask for the ephemeral channel", conn.name)
		case !conn.synced:
			c.violate("%s: EPHM before its SYNC", conn.name)
		}
		delete(want, conn)
	}
	for _, conn := range c.sortedConns() {
		if want[conn] {
			c.violate("%s: asked for the ephemeral channel but was not sent %s's EPHM", conn.name, sender.name)
		}
	}
}

func (c *checker) observeSync(args json.RawMessage, to []*connState) {
	var sync wireSync
	if err := json.Unmarshal(args, &sync); err != nil {
		c.violate("SYNC args: %v", err)
		return
	}
	if sync.URL == nil || sync.Time == nil || sync.Seq == nil || sync.Messages == nil || sync.Timeline == "" || sync.Flags == nil {
		c.violate("SYNC lacks one of url, messages, time, seq, timeline, flags (docs/protocol.md §17 MUST 2): %s", args)
		return
	}
	if (sync.SnapshotSeq != nil) != (sync.SnapshotTime != nil) {
		c.violate("SYNC has only one of snapshotTime and snapshotSeq")
	}
	if sync.SnapshotSeq != nil && (*sync.URL == "" || sync.Persisted) {
		c.violate("SYNC with snapshotSeq but url %q persisted %v", *sync.URL, sync.Persisted)
	}
	// The SYNC continues the snapshot, or the session's start (docs/protocol.md §6B).
	previous := protocol.SeqInitial
	if sync.SnapshotSeq != nil {
		previous = *sync.SnapshotSeq
	}
	var lastTime int64 = -1
	for _, raw := range sync.Messages {
		t, seq, err := parseMessage(raw)
		if err != nil {
			c.violate("SYNC message: %v", err)
			return
		}
		if seq != previous+1 {
			c.violate("SYNC messages: seq %d after seq %d", seq, previous)
		}
		if t < lastTime {
			c.violate("SYNC messages: time %d after time %d", t, lastTime)
		}
		if stored, ok := c.stamped[seq]; ok && !bytes.Equal(stored, raw) {
			c.violate("SYNC message seq %d differs from what was stamped: %s", seq, raw)
		}
		previous, lastTime = seq, t
	}
	if *sync.Seq != previous {
		c.violate("SYNC seq %d but its messages end at seq %d", *sync.Seq, previous)
	}
	if *sync.Time < lastTime {
		c.violate("SYNC time %d before its last message's time %d", *sync.Time, lastTime)
	}
	for _, conn := range to {
		conn.synced = true
		conn.lastSeq = *sync.Seq
	}
	c.observeTime("SYNC", *sync.Time, to)
}

// settle checks the state after a step: every synced live connection has
// received everything stamped so far (docs/protocol.md §17 MUST 4, 5), and the store
// holds exactly the session's buffer.
func (c *checker) settle(session *reflector.Session, store *modelStore) {
	record := session.Record()
	if !session.Ended() {
		for _, conn := range c.sortedConns() {
			if conn.synced && conn.live() && conn.lastSeq != record.Seq {
				c.violate("%s: last received seq %d but the session is at seq %d (a stamped message did not reach a synced member)", conn.name, conn.lastSeq, record.Seq)
			}
		}
	}
	if record.Timeline == "" {
		return // no island yet
	}
	if n := len(store.log); n != session.BufferedMessages() {
		c.violate("store log holds %d messages, the session buffers %d", n, session.BufferedMessages())
	} else if n > 0 && store.log[n-1].Seq != record.Seq {
		c.violate("store log ends at seq %d, the session is at seq %d", store.log[n-1].Seq, record.Seq)
	}
	for _, message := range store.log {
		if stamped, ok := c.stamped[message.Seq]; ok && !bytes.Equal(stamped, message.Data) {
			c.violate("store log seq %d differs from the stamped message", message.Seq)
		}
	}
	if store.record == nil {
		c.violate("the session has an island but nothing was stored")
		return
	}
	stored, err := c.storedRecord(store)
	if err != nil {
		c.violate("stored record: %v", err)
		return
	}
	if stored.Timeline != record.Timeline {
		c.violate("stored timeline %q, session timeline %q", stored.Timeline, record.Timeline)
	}
	if c.anyTime && max(stored.Time, stored.TimeReserved) < c.maxTime {
		c.violate("stored record time %d / lease %d is below time %d already sent: a crash now would make time go backwards",
			stored.Time, stored.TimeReserved, c.maxTime)
	}
}

// checkRestore restores a session from the store (as after a crash at now)
// and checks it continues the live one (docs/protocol.md §11.3, §12).
func (c *checker) checkRestore(config reflector.Config, live *reflector.Session, store *modelStore, now int64) {
	if store.record == nil {
		return
	}
	if _, err := c.storedRecord(store); err != nil {
		return // reported by settle
	}
	restored := c.restored
	if restored == nil {
		var err error
		restored, err = reflector.Restore(config, live.ID(), now, store.record, store.messages())
		if err != nil {
			c.violate("restore: %v", err)
			return
		}
		c.restored = restored
	}
	want, got := live.Record(), restored.Record()
	if got.Timeline != want.Timeline {
		c.violate("restore: timeline %q, want %q", got.Timeline, want.Timeline)
	}
	if got.Seq != want.Seq {
		c.violate("restore: seq %d, want %d", got.Seq, want.Seq)
	}
	if c.anyTime && got.Time < c.maxTime {
		c.violate("restore: time %d is below time %d already sent", got.Time, c.maxTime)
	}
	// After a crash, time jumps forward by at most the lease.
	if got.Time > want.Time+config.TimeLeaseMs {
		c.violate("restore: time %d is more than TimeLeaseMs (%d) ahead of the session's time %d", got.Time, config.TimeLeaseMs, want.Time)
	}
	if got.SnapshotSeq != want.SnapshotSeq || got.SnapshotTime != want.SnapshotTime || got.SnapshotURL != want.SnapshotURL {
		c.violate("restore: snapshot %d/%d/%q, want %d/%d/%q", got.SnapshotTime, got.SnapshotSeq, got.SnapshotURL,
			want.SnapshotTime, want.SnapshotSeq, want.SnapshotURL)
	}
	if restored.BufferedMessages() != live.BufferedMessages() {
		c.violate("restore: %d buffered messages, want %d", restored.BufferedMessages(), live.BufferedMessages())
	}
}

func (c *checker) sortedConns() []*connState {
	conns := make([]*connState, len(c.order))
	for i, id := range c.order {
		conns[i] = c.conns[id]
	}
	return conns
}

// storedRecord decodes the store's record, once per store version.
func (c *checker) storedRecord(store *modelStore) (*reflector.Record, error) {
	if c.stored != nil && c.storeVersion == store.version {
		return c.stored, nil
	}
	record, err := reflector.DecodeRecord(store.record)
	if err != nil {
		return nil, err
	}
	c.stored, c.restored, c.storeVersion = &record, nil, store.version
	return c.stored, nil
}

var noteKindNames = map[reflector.NoteKind]string{
	reflector.NoteClientLog:       "client-log",
	reflector.NoteRejected:        "rejected",
	reflector.NoteSnapshot:        "snapshot",
	reflector.NoteSnapshotIgnored: "snapshot-ignored",
	reflector.NoteSave:            "save",
	reflector.NoteBufferFull:      "buffer-full",
	reflector.NoteSessionCreated:  "session-created",
}

// renderEffects writes effects one per line in execution order: storage
// first (it is made durable before anything is sent), then the network.
func renderEffects(out *reflector.Effects, name func(reflector.ConnID) string) []string {
	var lines []string
	for _, key := range out.LookupPointers {
		lines = append(lines, "lookup-pointer "+key)
	}
	for _, message := range out.Storage.Append {
		lines = append(lines, fmt.Sprintf("store append seq=%d %s", message.Seq, message.Data))
	}
	if out.Storage.DropFront != 0 {
		lines = append(lines, fmt.Sprintf("store drop %d", out.Storage.DropFront))
	}
	if out.Storage.Record != nil {
		lines = append(lines, "store record "+string(out.Storage.Record))
	}
	for _, pointer := range out.Storage.Pointers {
		lines = append(lines, fmt.Sprintf("store pointer %s %s", pointer.Key, pointer.Value))
	}
	for _, ob := range out.Outbound {
		names := make([]string, len(ob.To))
		for i, id := range ob.To {
			names[i] = name(id)
		}
		to := strings.Join(names, ",")
		switch {
		case ob.CloseCode != 0:
			lines = append(lines, fmt.Sprintf("%s <- CLOSE %d %q", to, ob.CloseCode, ob.CloseReason))
		case ob.Tick:
			lines = append(lines, fmt.Sprintf("%s <- %s (tick)", to, ob.Bytes()))
		default:
			lines = append(lines, fmt.Sprintf("%s <- %s", to, ob.Bytes()))
		}
	}
	for _, latency := range out.LatencySamplesMs {
		lines = append(lines, "latency-sample "+strconv.FormatFloat(latency, 'g', -1, 64))
	}
	for _, note := range out.Notes {
		kind := noteKindNames[note.Kind]
		if kind == "" {
			kind = "kind" + strconv.Itoa(int(note.Kind))
		}
		if note.Conn != 0 {
			lines = append(lines, fmt.Sprintf("note %s %s: %s", kind, name(note.Conn), note.Text))
		} else {
			lines = append(lines, fmt.Sprintf("note %s: %s", kind, note.Text))
		}
	}
	if out.Ended {
		lines = append(lines, "ended")
	}
	return lines
}

func renderWake(wake int64) string {
	if wake == reflectorNever {
		return "next-wake never"
	}
	return "next-wake " + strconv.FormatInt(wake, 10)
}

// reflectorNever is what NextWake returns when no timer is set.
const reflectorNever = int64(^uint64(0) >> 1)
