package sim

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// client is one simulated client process: the production replica
// (package client/replica: the link state machine, the model runtime and
// how their effects are executed — the code the Go SDK runs) with the
// small model, behind the simulated network, file server and codec.
type client struct {
	w           *World
	name        string // "s1c2"
	session     string
	incarnation int
	viewID      string
	alive       bool
	rogue       bool
	rogueAct    int // index into rogueActs
	slow        bool
	// speculative: the replica speculates (client/replica speculation.go)
	// and a view reads its speculative state after every step.
	speculative bool
	startedAt   int64

	replica *replica.Replica[simModel]
	// link is the replica's link, for inspection.
	link   *link.Link
	joined bool

	conns   map[uint64]*conn // by the link's ConnID (rogue: by conn id)
	current *conn

	partitionUp, partitionDown bool
	// latencyMinMs and latencyMaxMs are this client's link: each client
	// has its own delay distribution within the scenario's range.
	latencyMinMs, latencyMaxMs int64

	wakeToken uint64
	submitted uint64 // inputs submitted by this incarnation
	// submittedBeforeDamage is submitted when the session's stored data
	// was last lost (found damaged, or deleted by the retention): the
	// inputs up to it may be lost, or applied again from persisted data,
	// on the new timeline.
	submittedBeforeDamage uint64
	// seenTime and seenSeq are the latest session time and seq this
	// process saw per timeline.
	seenTime map[string]int64
	seenSeq  map[string]uint32
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
	c.replica, c.link = nil, nil
	c.joined = false
	c.submitted, c.submittedBeforeDamage = 0, 0
	c.seenTime = map[string]int64{}
	c.seenSeq = map[string]uint32{}
	if c.rogue {
		w.tracef("%s: rogue client starts", c.viewID)
		k := w.newConn(c, 1, c.session)
		c.conns[1] = k
		c.current = k
		w.send(k.toServer, packet{kind: packetOpen})
		return
	}
	r, err := replica.New(replica.Options[simModel]{
		App: w.app,
		Link: link.Config{
			SessionID: c.session,
			ViewID:    c.viewID,
			Seed:      w.rand.Uint64(),
			Join: protocol.JoinRequest{Name: "sim/" + c.session, AppID: "io.metronome.sim", PersistentID: w.persistentID(c.session),
				URL: "sim://" + c.session, SDK: "metronome-sim", TickMs: w.scenario.TickMs, DelayMs: w.scenario.JoinDelayMs, LeaveDelayMs: link.LeaveDelayMs},
		},
		Transport:     (*clientTransport)(c),
		Files:         (*clientFiles)(c),
		Codec:         simCodec{},
		Observer:      (*clientObserver)(c),
		DropInputTags: w.options.Bug == BugNoInputDedup,
		Speculation:   replica.SpeculationOptions{Enabled: c.speculative, Leak: w.options.Bug == BugSpeculationLeak},
	})
	if err != nil {
		panic(err)
	}
	c.replica, c.link = r, r.Link()
	w.tracef("%s: starts", c.viewID)
	c.step(link.Start{})
}

// model returns the replica's model runtime (nil before its first SYNC).
func (c *client) model() *island.Island[simModel] {
	if c.replica == nil {
		return nil
	}
	return c.replica.Island()
}

// leave ends the process deliberately (the user closes the page): the
// replica leaves (close 1000, no reconnect), its unconfirmed inputs are
// gone, and nothing more reaches it.
func (c *client) leave() {
	w := c.w
	pending := c.link.PendingInputs()
	c.replica.Leave(c.now())
	c.alive = false
	for _, id := range sortedUint64Keys(c.conns) {
		c.conns[id].toClient.dead = true
	}
	w.count(FaultClientCrash)
	w.tracef("%s: leaves (%d inputs not yet seen reflected are dropped)", c.viewID, pending)
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

// step steps the replica and schedules its next wake.
func (c *client) step(event replica.Event) {
	c.replica.Step(c.now(), event)
	c.frame()
	c.scheduleWake()
}

// frame is a speculative client's view drawing a frame: it reads the
// speculative state (rebuilt if the confirmed state changed), which must
// hold at least what the confirmed state holds. Reading it must never
// change the confirmed state: the convergence checker compares every
// replica's confirmed hash at every position, speculative or not.
func (c *client) frame() {
	if !c.speculative || !c.alive || c.replica == nil {
		return
	}
	view, confirmed := c.replica.View(), c.replica.Island()
	if view != nil && confirmed != nil && view.Model().Inputs < confirmed.Model().Inputs {
		c.w.violate(InvariantConvergence, fmt.Sprintf("%s: the speculative state holds %d inputs, fewer than the confirmed state's %d",
			c.viewID, view.Model().Inputs, confirmed.Model().Inputs))
	}
}

func (c *client) scheduleWake() {
	if !c.alive || c.replica == nil {
		return
	}
	wake := c.replica.NextWake()
	if wake == link.Never {
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
		// The WebSocket layer answers the close frame (the handshake).
		c.w.send(k.toServer, packet{kind: packetClose, code: p.code})
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

// receiveRogue plays the rogue client: a connection that does one odd or
// hostile thing (rogueActs, chosen when it starts), then goes away. Each
// must be answered without harm to the session: a close with a code that
// names the problem, or nothing.
func (c *client) receiveRogue(k *conn, p packet) {
	w := c.w
	act := rogueActs[c.rogueAct]
	switch p.kind {
	case packetAccepted:
		k.clientOpen = true
		if act.beforeJoin != nil {
			w.count(FaultBadInput)
			w.tracef("%s: %s", c.viewID, act.name)
			c.rogueSend(k, act.beforeJoin(c))
			return
		}
		join := protocol.JoinRequest{Name: "sim/" + c.session, AppID: "io.metronome.sim", PersistentID: w.persistentID(c.session),
			User: json.RawMessage(`"` + c.viewID + `"`), TickMs: w.scenario.TickMs, LeaveDelayMs: link.LeaveDelayMs}
		w.send(k.toServer, packet{kind: packetFrame, data: protocol.AppendJoinFrame(nil, c.session, &join)})
	case packetFrame:
		if frame, err := protocol.DecodeServerFrame(p.data); err == nil && frame.Action == protocol.ActionSync && act.afterSync != nil {
			w.count(FaultBadInput)
			w.tracef("%s: %s", c.viewID, act.name)
			c.rogueSend(k, act.afterSync(c)...)
			if act.leaves {
				k.clientClosed = true
				w.send(k.toServer, packet{kind: packetClose, code: protocol.CloseNormal, reason: "rogue leaves"})
				c.alive = false
			}
		}
	case packetClose, packetReset, packetRefused:
		k.clientClosed = true
		w.tracef("%s: rogue connection closed (%d %s)", c.viewID, p.code, p.reason)
		c.alive = false
	}
}

func (c *client) rogueSend(k *conn, frames ...[]byte) {
	for _, frame := range frames {
		c.w.send(k.toServer, packet{kind: packetFrame, data: frame})
	}
}

// rogueAct is one thing a rogue client does: before joining (instead of
// its JOIN), or right after its SYNC; leaves: it then closes normally.
type rogueAct struct {
	name       string
	beforeJoin func(c *client) []byte
	afterSync  func(c *client) [][]byte
	leaves     bool
}

func rogueFrame(c *client, action, args string) []byte {
	return []byte(`{"id":"` + c.session + `","action":"` + action + `","args":` + args + `}`)
}

// rogueActs are the rogue clients' acts; the seed picks one per rogue.
var rogueActs = []rogueAct{
	{name: "sends a SEND with an object payload (a forged users message)", afterSync: func(c *client) [][]byte {
		return [][]byte{rogueFrame(c, "SEND", `[0,0,{"what":"users","joined":["forged"]}]`)}
	}},
	{name: "sends a frame that is not JSON", beforeJoin: func(c *client) []byte { return []byte(`{"id":`) }},
	{name: "sends TICKS before JOIN", beforeJoin: func(c *client) []byte { return rogueFrame(c, "TICKS", `{"tick":50}`) }},
	{name: "sends SNAP before JOIN", beforeJoin: func(c *client) []byte {
		return rogueFrame(c, "SNAP", `{"time":1,"seq":1,"hash":"h","url":"sim://none"}`)
	}},
	{name: "sends a JOIN with an impossible tick", beforeJoin: func(c *client) []byte {
		return rogueFrame(c, "JOIN", `{"name":"n","version":1,"apiKey":"k","ticks":{"tick":1e12}}`)
	}},
	{name: "sends a SEND before JOIN", beforeJoin: func(c *client) []byte { return rogueFrame(c, "SEND", `[0,0,"early"]`) }},
	{name: "pings, pulses, logs, sends an unknown action and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		return [][]byte{rogueFrame(c, "PING", `{"n":1}`), rogueFrame(c, "PULSE", `null`), rogueFrame(c, "LOG", `"rogue was here"`),
			rogueFrame(c, "NOSUCH", `{}`)}
	}},
	{name: "announces a snapshot at a seq the reflector never stamped and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		return [][]byte{rogueFrame(c, "SNAP", `{"time":1,"seq":7,"hash":"h","url":"sim://no-such-snapshot","dissident":null}`)}
	}},
	{name: "changes the session's time scale and tick, and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		scale := []string{"0.5", "1.5", "2", "1"}[c.w.rand.Intn(4)]
		return [][]byte{rogueFrame(c, "TICKS", `{"tick":`+strconv.FormatInt(c.w.scenario.TickMs, 10)+`,"scale":`+scale+`}`)}
	}},
	{name: "sends a malformed TUTTI", afterSync: func(c *client) [][]byte { return [][]byte{rogueFrame(c, "TUTTI", `[1,2]`)} }},
	{name: "sends a malformed SAVE", afterSync: func(c *client) [][]byte { return [][]byte{rogueFrame(c, "SAVE", `{"url":""}`)} }},
	{name: "sends TUTTI before JOIN", beforeJoin: func(c *client) []byte {
		return protocol.AppendTuttiFrame(nil, c.session, 0, "v", true, nil, "rogue")
	}},
	{name: "sends SAVE before JOIN", beforeJoin: func(c *client) []byte {
		return protocol.AppendSaveFrame(nil, c.session, 0, "sim://none")
	}},
	{name: "sends a malformed SNAP", afterSync: func(c *client) [][]byte { return [][]byte{rogueFrame(c, "SNAP", `{"time":"soon"}`)} }},
	{name: "announces a dissident snapshot, one from the future and a dissident SAVE, and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		return [][]byte{rogueFrame(c, "SNAP", `{"time":1,"seq":1,"hash":"h","url":"sim://none","dissident":true}`),
			rogueFrame(c, "SNAP", `{"time":9007199254740991,"seq":1,"hash":"h","url":"sim://none","dissident":null}`),
			rogueFrame(c, "SAVE", `{"persistTime":1,"url":"sim://none","dissident":true}`)}
	}},
	{name: "sends malformed TICKS", afterSync: func(c *client) [][]byte { return [][]byte{rogueFrame(c, "TICKS", `{"tick":"fast"}`)} }},
	{name: "changes the message batching delay, logs a long text, and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		return [][]byte{rogueFrame(c, "TICKS", `{"delay":`+strconv.FormatInt(c.w.rand.Between(1, 50), 10)+`}`),
			rogueFrame(c, "LOG", `"`+strings.Repeat("x", 2000)+`"`)}
	}},
	{name: "joins again and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		join := protocol.JoinRequest{Name: "sim/" + c.session, AppID: "io.metronome.sim", PersistentID: c.w.persistentID(c.session),
			TickMs: c.w.scenario.TickMs, LeaveDelayMs: link.LeaveDelayMs}
		return [][]byte{protocol.AppendJoinFrame(nil, c.session, &join)}
	}},
	{name: "opens more tallies than the reflector keeps open, votes twice, and leaves", leaves: true, afterSync: func(c *client) [][]byte {
		var frames [][]byte
		for i := range 6 {
			key := "rogue-" + c.viewID + "-" + strconv.Itoa(i)
			frames = append(frames, protocol.AppendTuttiFrame(nil, c.session, 0, "v", true, nil, key))
		}
		return append(frames, protocol.AppendTuttiFrame(nil, c.session, 0, "v", true, nil, "rogue-"+c.viewID+"-0"))
	}},
	{name: "floods the reflector with PULSEs", afterSync: func(c *client) [][]byte {
		frames := make([][]byte, 500)
		for i := range frames {
			frames[i] = rogueFrame(c, "PULSE", `null`)
		}
		return frames
	}},
}

// submitInput submits one input.
func (c *client) submitInput() {
	c.submitted++
	text := fmt.Sprintf("%s#%d:%x", c.viewID, c.submitted, c.w.rand.Uint64())
	data, err := island.Encode(simInput{View: c.viewID, N: c.submitted, Digest: digest([]byte(text))})
	if err != nil {
		panic(err)
	}
	c.w.stats.Inputs++
	if err := c.replica.Publish(c.now(), island.Envelope{Kind: island.KindEvent, Name: "input", Data: data}); err != nil {
		c.w.tracef("%s: input refused: %v", c.viewID, err)
	}
	c.frame()
	c.scheduleWake()
}

func sortedUint64Keys[V any](m map[uint64]V) []uint64 {
	return slices.Sorted(maps.Keys(m))
}
