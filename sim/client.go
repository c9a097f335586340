package sim

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/protocol"
)

// client is one simulated client process: the production link state
// machine, the small model, and the shell that executes the link's effects
// on the simulated network.
type client struct {
	w           *World
	name        string // "s1c2"
	session     string
	incarnation int
	viewID      string
	alive       bool
	rogue       bool
	slow        bool
	startedAt   int64

	link         *link.Link
	out          link.Effects
	model        *model
	fromSnapshot bool // the model was rebuilt from a snapshot (join correctness)
	joined       bool

	conns   map[uint64]*conn // by the link's ConnID (rogue: by conn id)
	current *conn

	partitionUp, partitionDown bool

	wakeToken uint64
	submitted uint64 // inputs submitted by this incarnation
	// seenTime is the latest session time this process saw per timeline.
	seenTime map[string]int64
}

func (c *client) now() int64 { return c.w.now - c.startedAt }

// start starts (or restarts) the client process as a new view.
func (c *client) start() {
	w := c.w
	c.incarnation++
	c.alive = true
	c.startedAt = w.now
	c.viewID = c.name + "-" + strconv.Itoa(c.incarnation)
	c.conns = map[uint64]*conn{}
	c.current = nil
	c.model = nil
	c.fromSnapshot = false
	c.joined = false
	c.submitted = 0
	c.seenTime = map[string]int64{}
	c.out.Reset()
	if c.rogue {
		w.tracef("%s: rogue client starts", c.viewID)
		k := w.newConn(c, 1, c.session)
		c.conns[1] = k
		c.current = k
		w.send(k.toServer, packet{kind: packetOpen})
		return
	}
	l, err := link.New(link.Config{
		SessionID: c.session,
		ViewID:    c.viewID,
		Seed:      w.rand.Uint64(),
		Join: protocol.JoinRequest{Name: "sim/" + c.session, AppID: "io.metronome.sim", PersistentID: c.session,
			URL: "sim://" + c.session, SDK: "metronome-sim", TickMs: w.scenario.TickMs, LeaveDelayMs: 1250},
	})
	if err != nil {
		panic(err)
	}
	c.link = l
	w.tracef("%s: starts", c.viewID)
	c.step(link.Start{})
}

// crash kills the process: its connections break, its model and pending
// inputs are gone.
func (c *client) crash() {
	w := c.w
	c.alive = false
	for _, id := range sortedUint64Keys(c.conns) {
		k := c.conns[id]
		k.toClient.dead = true
		if k.clientOpen && !k.clientClosed {
			w.reset(k.toServer)
		}
		k.clientClosed = true
	}
	pending := 0
	if c.link != nil {
		pending = c.link.PendingInputs()
	}
	w.count(FaultClientCrash)
	w.tracef("%s: crashed (%d inputs not yet seen reflected are lost)", c.viewID, pending)
}

// step steps the link and executes its effects.
func (c *client) step(event link.Event) {
	c.link.Step(c.now(), event, &c.out)
	c.execute()
}

func (c *client) execute() {
	w := c.w
	out := &c.out
	if out.Close != nil {
		if k := c.conns[uint64(out.Close.Conn)]; k != nil && !k.clientClosed {
			k.clientClosed = true
			if k.clientOpen {
				w.send(k.toServer, packet{kind: packetClose, code: out.Close.Code, reason: out.Close.Reason})
			}
		}
	}
	if out.Dial != 0 {
		k := w.newConn(c, uint64(out.Dial), c.session)
		c.conns[uint64(out.Dial)] = k
		c.current = k
		w.send(k.toServer, packet{kind: packetOpen})
	}
	for _, frame := range out.Frames {
		if k := c.conns[uint64(frame.Conn)]; k != nil && k.clientOpen && !k.clientClosed {
			w.send(k.toServer, packet{kind: packetFrame, data: frame.Data})
		}
	}
	for i := range out.Deliveries {
		if !c.deliver(&out.Deliveries[i]) {
			break
		}
	}
	if out.Joined {
		c.joined = true
		w.tracef("%s: joined", c.viewID)
	}
	for _, note := range out.Notes {
		w.tracef("%s: %s", c.viewID, note)
	}
	if out.Failed != nil {
		w.violate(InvariantLiveness, fmt.Sprintf("%s, a well-behaved client, was refused for good: %v", c.viewID, out.Failed))
	}
	for _, err := range out.Rejected {
		w.tracef("%s: input rejected: %v", c.viewID, err)
	}
	out.Reset()
	c.scheduleWake()
}

// deliver applies one delivery to the model; false stops the run.
func (c *client) deliver(d *link.Delivery) bool {
	w := c.w
	switch d.Kind {
	case link.DeliverReset:
		sync := d.Sync
		if sync.URL == "" {
			c.model = c.newModel()
			c.fromSnapshot = false
			w.tracef("%s: model starts fresh on timeline %s", c.viewID, sync.Timeline)
			return true
		}
		data, ok := w.files[sync.URL]
		if !ok {
			w.violate(InvariantJoin, fmt.Sprintf("%s: SYNC names snapshot %s, which was never uploaded", c.viewID, sync.URL))
			return false
		}
		m, err := decodeModel(data)
		if err != nil {
			w.violate(InvariantJoin, fmt.Sprintf("%s: snapshot %s does not decode: %v", c.viewID, sync.URL, err))
			return false
		}
		if m.Seq != sync.SnapshotSeq && w.options.Bug != BugSnapshotWrongSeq {
			w.violate(InvariantJoin, fmt.Sprintf("%s: SYNC says snapshot seq %d, the snapshot holds seq %d", c.viewID, sync.SnapshotSeq, m.Seq))
			return false
		}
		m.bugNoDedup = w.options.Bug == BugNoInputDedup
		c.model = m
		c.fromSnapshot = true
		w.tracef("%s: model loaded from snapshot %s (seq %d, time %d)", c.viewID, sync.URL, m.Seq, m.Time)
	case link.DeliverMessage:
		c.model.apply(d.Message, d.Input, d.IsInput)
		w.stats.Applied++
		timeline, _, _, _ := c.link.Position()
		return w.checker.applied(c, timeline, d.Message.Seq, c.model.Hash)
	case link.DeliverTime:
		c.model.advance(d.Time)
	}
	return true
}

func (c *client) scheduleWake() {
	if !c.alive || c.link == nil {
		return
	}
	wake := c.link.NextWake()
	if wake == 1<<63-1 {
		return
	}
	c.wakeToken++
	token, incarnation := c.wakeToken, c.incarnation
	c.w.queue.schedule(max(c.w.now, wake+c.startedAt), func() {
		if c.alive && c.incarnation == incarnation && c.wakeToken == token {
			c.step(link.Wake{})
		}
	})
}

// receive handles a packet arriving at the client.
func (c *client) receive(k *conn, p packet) {
	if !c.alive || k.clientClosed {
		return
	}
	if c.rogue {
		c.receiveRogue(k, p)
		return
	}
	event := link.Event(nil)
	switch p.kind {
	case packetAccepted:
		k.clientOpen = true
		event = link.Opened{Conn: link.ConnID(k.linkConn)}
	case packetRefused:
		k.clientClosed = true
		event = link.Closed{Conn: link.ConnID(k.linkConn), Code: 1006, Reason: "connection refused"}
	case packetFrame:
		if !c.w.checker.clientReceived(c, k, p.data) {
			return
		}
		event = link.Received{Conn: link.ConnID(k.linkConn), Data: p.data}
	case packetClose:
		k.clientClosed = true
		event = link.Closed{Conn: link.ConnID(k.linkConn), Code: p.code, Reason: p.reason}
	case packetReset:
		k.clientClosed = true
		event = link.Closed{Conn: link.ConnID(k.linkConn), Code: 1006, Reason: "connection reset"}
	}
	if event != nil {
		c.step(event)
	}
}

// receiveRogue plays the rogue client: JOIN, wait for SYNC, send a SEND
// whose payload is an object (which only the reflector may create).
func (c *client) receiveRogue(k *conn, p packet) {
	w := c.w
	switch p.kind {
	case packetAccepted:
		k.clientOpen = true
		join := protocol.JoinRequest{Name: "sim/" + c.session, AppID: "io.metronome.sim", PersistentID: c.session,
			User: json.RawMessage(`"` + c.viewID + `"`), TickMs: w.scenario.TickMs, LeaveDelayMs: 1250}
		w.send(k.toServer, packet{kind: packetFrame, data: protocol.AppendJoinFrame(nil, c.session, &join)})
	case packetFrame:
		if frame, err := protocol.DecodeServerFrame(p.data); err == nil && frame.Action == protocol.ActionSync {
			w.count(FaultBadInput)
			w.tracef("%s: sends a malformed SEND", c.viewID)
			w.send(k.toServer, packet{kind: packetFrame, data: []byte(`{"id":"` + c.session + `","action":"SEND","args":[0,0,{"what":"users","joined":["forged"]}]}`)})
		}
	case packetClose, packetReset, packetRefused:
		k.clientClosed = true
		w.tracef("%s: rogue connection closed (%d %s)", c.viewID, p.code, p.reason)
		c.alive = false
	}
}

func (c *client) newModel() *model {
	m := newModel()
	m.bugNoDedup = c.w.options.Bug == BugNoInputDedup
	return m
}

// submitInput submits one input with a payload derived from the run.
func (c *client) submitInput() {
	c.submitted++
	payload := fmt.Sprintf(`"%s#%d:%x"`, c.viewID, c.submitted, c.w.rand.Uint64())
	c.w.stats.Inputs++
	c.step(link.Submit{Payload: json.RawMessage(payload)})
}

// uploadSnapshot stores the model as a snapshot file and announces it.
func (c *client) uploadSnapshot() {
	m := c.model
	seq := m.Seq
	if c.w.options.Bug == BugSnapshotWrongSeq {
		seq--
	}
	url := fmt.Sprintf("sim://snapshots/%s/%010d_%d-%s.snap", c.session, m.Time, seq, m.hashText())
	c.w.files[url] = m.encode()
	c.w.stats.Snapshots++
	c.w.tracef("%s: uploads snapshot at time %d seq %d", c.viewID, m.Time, seq)
	c.step(link.Snapshot{Time: m.Time, Seq: seq, Hash: m.hashText(), URL: url})
}

func sortedUint64Keys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
