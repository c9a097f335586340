package reflector_test

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// The property test drives a session with a seeded random mix of
// connections, JOINs, SENDs, TUTTIs, SNAPs, EPHMs, disconnects, crashes and
// time advances, and after every step checks (harness_test.go):
//
//   - every relayed EPHM goes to exactly the synced live members that
//     asked for the ephemeral channel, except its sender;
//   - per connection, the frames after its SYNC form a gap-free,
//     duplicate-free seq run continuing the SYNC (snapshot seq or messages);
//   - times never decrease across SYNC, RECV and TICK, globally and per
//     connection, also across crashes;
//   - every stamped message reached every synced connected member;
//   - the store's log equals the session's buffer and its record's lease
//     covers every time sent;
//   - Restore from the store gives the same timeline, seq, snapshot and
//     buffer, with a time at or above every time sent;
//   - of the messages the session generates, each TUTTI key's first
//     message and tally are stamped at most once, and every users message's
//     active/total match a reference count of the members.
//
// One seed decides everything; a failure prints the seed and the last
// steps. Replay one seed with: go test ./reflector -run TestProperty -seed N -v

var (
	seedFlag  = flag.Int64("seed", -1, "property test: run only this seed")
	seedsFlag = flag.Int("seeds", 200, "property test: number of seeds")
	stepsFlag = flag.Int("steps", 500, "property test: steps per seed")
)

func TestProperty(t *testing.T) {
	first, count := uint64(0), *seedsFlag
	if *seedFlag >= 0 {
		first, count = uint64(*seedFlag), 1
	} else if testing.Short() {
		count = 20
	}
	for seed := first; seed < first+uint64(count); seed++ {
		s := newSim(seed)
		if err := s.run(*stepsFlag); err != nil {
			t.Fatalf("seed %d: %v\n--- last steps:\n%s\nreplay: go test ./reflector -run TestProperty -seed %d -v",
				seed, err, strings.Join(s.trace, "\n"), seed)
		}
		if *seedFlag >= 0 {
			t.Logf("seed %d: %s", seed, s.summary())
		}
	}
}

// simConn is the driver's view of one connection.
type simConn struct {
	id       reflector.ConnID
	name     string
	joinSent bool
	user     string // JSON of the user value ("" for none)
	// leaveAt is when the session removes the member after its Disconnect
	// (the island-wide leave delay of that moment, docs/protocol.md §10.2).
	leaveAt int64
}

type sim struct {
	seed   uint64
	rng    *rand.Rand
	config reflector.Config

	now         int64
	session     *reflector.Session // driver.host.Core()
	driver      hostDriver
	sessionID   string
	incarnation int
	store       modelStore
	check       *checker
	conns       []*simConn // connections of the current session
	nextConn    reflector.ConnID
	lookup      string // pending LookupPointer key
	appJoin     bool   // JOINs carry appId and persistentId
	trace       []string
	// broadcasts counts, per TUTTI key, the first messages and tallies
	// stamped in this incarnation: each at most once (docs/protocol.md §6.3).
	firstMessages map[string]int
	tallies       map[string]int
	// leaveDelay is the island-wide leave delay: the last accepted JOIN's
	// (0 when it had none, quirk Q4).
	leaveDelay int64

	// counters for the summary
	steps, stamped, ticks, closes, syncs, crashes, ends int
}

const traceLinesMax = 60

func newSim(seed uint64) *sim {
	rng := rand.New(rand.NewPCG(seed, 0x6d657472_6f6e6f6d))
	config := reflector.DefaultConfig()
	config.TalliesOpenMax = 1 + rng.IntN(4)
	// Few completed tallies make keys get evicted out of order
	// (testdata/tutti_evicted_key.txt).
	config.TalliesCompletedMax = 1 + rng.IntN(6)
	config.MessagesSinceSnapshotMax = 10 + rng.IntN(40)
	config.MessagesRequestSnapshotFrom = config.MessagesSinceSnapshotMax / 2
	config.InactivityTimeoutMs = 20_000
	config.NeverJoinedTimeoutMs = 8_000
	config.WatchdogIntervalMs = 2_000
	config.FramesPerSecondMax = 20
	config.FramesBurstMax = 40
	config.DebounceKeysMax = 4
	config.TimeLeaseMs = 1_000 + int64(rng.IntN(4_000))
	if err := config.Validate(); err != nil {
		panic(err)
	}
	s := &sim{seed: seed, rng: rng, config: config, sessionID: "S", appJoin: rng.IntN(2) == 0}
	s.startNew()
	return s
}

func (s *sim) summary() string {
	return fmt.Sprintf("%d steps, %d messages stamped, %d tick deliveries, %d SYNCs, %d closes, %d crashes, %d session ends",
		s.steps, s.stamped, s.ticks, s.syncs, s.closes, s.crashes, s.ends)
}

func (s *sim) log(format string, args ...any) {
	s.trace = append(s.trace, fmt.Sprintf("@%d ", s.now)+fmt.Sprintf(format, args...))
	if len(s.trace) > traceLinesMax {
		s.trace = s.trace[len(s.trace)-traceLinesMax:]
	}
}

func (s *sim) startNew() {
	s.incarnation++
	s.store.record, s.store.log = nil, nil
	s.check = newChecker(s.sessionID)
	if err := s.driver.open(s.config, s.sessionID, fmt.Sprintf("T%d", s.incarnation), &s.store, s.now); err != nil {
		panic(err) // an empty store cannot fail to load
	}
	s.session = s.driver.host.Core()
	s.conns = nil
	s.lookup = ""
	s.firstMessages, s.tallies = make(map[string]int), make(map[string]int)
	s.leaveDelay = 0
	s.log("new session, timeline T%d", s.incarnation)
}

// restart replaces the session after a crash or its end: from the store if
// anything was stored, else fresh. Every connection is gone.
func (s *sim) restart(why string) error {
	s.check.dropAll()
	s.conns = nil
	s.lookup = ""
	// Tallies open at a crash are forgotten; their keys may be voted again.
	s.firstMessages, s.tallies = make(map[string]int), make(map[string]int)
	s.leaveDelay = 0
	if s.store.record == nil {
		s.startNew()
		return nil
	}
	timeline := s.session.Record().Timeline
	if err := s.driver.open(s.config, s.sessionID, "", &s.store, s.now); err != nil {
		return fmt.Errorf("restore after %s: %w", why, err)
	}
	session := s.driver.host.Core()
	if got := session.Record().Timeline; timeline != "" && got != timeline {
		return fmt.Errorf("restore after %s: timeline %q, want %q", why, got, timeline)
	}
	if s.check.anyTime && session.Record().Time < s.check.maxTime {
		return fmt.Errorf("restore after %s: time %d is below time %d already sent", why, session.Record().Time, s.check.maxTime)
	}
	s.session = session
	s.log("restored after %s: time %d seq %d buffered %d", why, session.Record().Time, session.Record().Seq, session.BufferedMessages())
	return nil
}

func (s *sim) run(steps int) error {
	for i := 0; i < steps; i++ {
		s.steps++
		if err := s.action(); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	// Liveness phase: with time passing and clients gone, the session
	// settles (tallies complete, users flushed) and finally ends.
	for _, conn := range s.liveConns() {
		if err := s.disconnect(conn); err != nil {
			return err
		}
	}
	for _, conn := range s.conns {
		if !s.check.conns[conn.id].disconnected {
			if err := s.disconnect(conn); err != nil {
				return err
			}
		}
	}
	if err := s.advance(200_000, false); err != nil {
		return fmt.Errorf("liveness: %w", err)
	}
	if !s.session.Ended() {
		return errors.New("liveness: the session did not end 200 s after its last connection closed")
	}
	return nil
}

// step runs one event and checks everything.
func (s *sim) step(event reflector.Event) error {
	// Users messages are stamped by timers, which run before the event: they
	// count the members as they are before it.
	active, total := s.expectedUsers()
	out, err := s.driver.step(s.now, event)
	for _, line := range renderEffects(out, s.check.name) {
		s.log("  %s", line)
	}
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	if n := len(out.LookupPointers); n > 0 {
		s.lookup = out.LookupPointers[n-1]
	}
	s.check.observe(out)
	s.check.settle(s.session, &s.store)
	s.check.checkRestore(s.config, s.session, &s.store, s.now)
	if violations := s.check.takeViolations(); len(violations) > 0 {
		return errors.New(strings.Join(violations, "\n"))
	}
	if err := s.checkGenerated(out, active, total); err != nil {
		return err
	}
	if wake := s.session.NextWake(); wake <= s.now {
		return fmt.Errorf("NextWake %d is not after the step at %d", wake, s.now)
	}
	s.stamped += out.MessagesStamped
	s.ticks += out.TicksSent
	for _, ob := range out.Outbound {
		if ob.CloseCode != 0 {
			s.closes++
		} else if strings.Contains(string(ob.Frame[:min(len(ob.Frame), 40)]), `"SYNC"`) {
			s.syncs++
		}
	}
	if out.Ended {
		s.ends++
		s.check.dropAll()
	}
	return nil
}

// advance moves the clock by up to dt, stepping Wake at every due time
// (or, when late, jumping and letting the next step run the timers late).
func (s *sim) advance(dt int64, late bool) error {
	until := s.now + dt
	if late {
		s.log("late jump to %d", until)
		s.now = until
		return nil
	}
	for {
		wake := s.session.NextWake()
		if wake > until {
			break
		}
		s.now = wake
		s.log("wake")
		if err := s.step(reflector.Wake{}); err != nil {
			return err
		}
	}
	s.now = until
	return nil
}

func (s *sim) liveConns() []*simConn {
	var live []*simConn
	for _, conn := range s.conns {
		if state := s.check.conns[conn.id]; state.live() {
			live = append(live, conn)
		}
	}
	return live
}

func (s *sim) pick(conns []*simConn) *simConn {
	if len(conns) == 0 {
		return nil
	}
	return conns[s.rng.IntN(len(conns))]
}

func (s *sim) joined(conns []*simConn) []*simConn {
	var joined []*simConn
	for _, conn := range conns {
		if conn.joinSent {
			joined = append(joined, conn)
		}
	}
	return joined
}

func (s *sim) disconnect(conn *simConn) error {
	s.log("disconnect %s", conn.name)
	conn.leaveAt = s.now + s.leaveDelay
	// Timers due before the event run first and may still address the
	// connection; the Disconnect itself never does.
	s.check.disconnecting = conn.id
	return s.step(reflector.Disconnect{Conn: conn.id})
}

func (s *sim) receive(conn *simConn, frame string) error {
	s.log("recv %s %s", conn.name, frame)
	decoded, err := protocol.DecodeClientFrame([]byte(frame))
	s.check.receive(conn.id, decoded, err)
	return s.step(reflector.Receive{Conn: conn.id, Frame: decoded, Err: err})
}

// action performs one random action.
func (s *sim) action() error {
	if s.session.Ended() {
		// The shell starts the next incarnation when a client comes back.
		return s.restart("end")
	}
	live := s.liveConns()
	joined := s.joined(live)
	// Closed connections are disconnected by the shell soon after.
	for _, conn := range s.conns {
		state := s.check.conns[conn.id]
		if state.closed && !state.disconnected && s.rng.IntN(3) == 0 {
			return s.disconnect(conn)
		}
	}
	if s.lookup != "" && s.rng.IntN(4) == 0 {
		url, err := s.driver.pointerURL(s.lookup)
		if err != nil {
			return err
		}
		if s.rng.IntN(4) == 0 {
			url = "" // a failed lookup
		}
		s.lookup = ""
		s.log("pointer loaded %q", url)
		return s.step(reflector.PointerLoaded{URL: url})
	}
	roll := s.rng.IntN(100)
	if len(live) < 2 && s.rng.IntN(3) == 0 {
		roll = 0 // keep the session populated most of the time
	}
	switch {
	case roll < 8 && len(live) < 6:
		s.nextConn++
		conn := &simConn{id: s.nextConn, name: fmt.Sprintf("c%d", s.nextConn)}
		s.conns = append(s.conns, conn)
		s.check.connect(conn.id, conn.name)
		s.log("connect %s", conn.name)
		return s.step(reflector.Connect{Conn: conn.id})
	case roll < 20:
		var candidates []*simConn
		for _, conn := range live {
			if !conn.joinSent {
				candidates = append(candidates, conn)
				continue
			}
			// Sometimes a second JOIN, also before the first SYNC
			// (testdata/join_twice_pending.txt).
			if s.rng.IntN(8) == 0 {
				candidates = append(candidates, conn)
			}
		}
		if conn := s.pick(candidates); conn != nil {
			return s.join(conn)
		}
	case roll < 48:
		if conn := s.pick(joined); conn != nil {
			return s.receive(conn, s.sendFrame())
		}
	case roll < 58:
		if conn := s.pick(joined); conn != nil {
			return s.receive(conn, s.tuttiFrame())
		}
	case roll < 65:
		if conn := s.pick(joined); conn != nil {
			return s.receive(conn, s.snapFrame())
		}
	case roll < 67:
		if conn := s.pick(joined); conn != nil {
			return s.receive(conn, s.otherFrame())
		}
	case roll < 69:
		if conn := s.pick(live); conn != nil {
			return s.receive(conn, s.oddFrame())
		}
	case roll < 73:
		if conn := s.pick(live); conn != nil {
			return s.disconnect(conn)
		}
	case roll < 77:
		if s.rng.IntN(3) == 0 {
			s.crashes++
			if s.rng.IntN(2) == 0 && s.store.tear() {
				s.log("crash, torn: the last commit's drop was lost")
			} else {
				s.log("crash")
			}
			return s.restart("crash")
		}
		if s.rng.IntN(4) == 0 {
			s.log("shutdown")
			return s.step(reflector.Shutdown{})
		}
	}
	return s.advance(s.randomDelta(), s.rng.IntN(10) == 0)
}

func (s *sim) randomDelta() int64 {
	switch r := s.rng.IntN(20); {
	case r < 4:
		return 0
	case r < 10:
		return 1 + s.rng.Int64N(50)
	case r < 16:
		return 50 + s.rng.Int64N(500)
	case r < 19:
		return 500 + s.rng.Int64N(3_000)
	default:
		if s.rng.IntN(4) == 0 {
			return 5_000 + s.rng.Int64N(20_000) // long enough for watchdogs and deletion
		}
		return 2_000 + s.rng.Int64N(3_000)
	}
}

var simUsers = []string{`"v1"`, `"v2"`, `"v3"`, `"v4"`, `{"id":"v5","data":"d"}`, `["v6"]`}

func (s *sim) join(conn *simConn) error {
	if !conn.joinSent {
		conn.joinSent = true
		if s.rng.IntN(8) != 0 {
			conn.user = simUsers[s.rng.IntN(len(simUsers))]
		}
	}
	var fields []string
	fields = append(fields, `"version":1`, `"apiKey":"none"`)
	if conn.user != "" {
		fields = append(fields, `"user":`+conn.user)
	}
	if s.appJoin {
		fields = append(fields, `"appId":"app.x"`, `"persistentId":"P"`)
	}
	if s.rng.IntN(4) != 0 {
		tick := []int{20, 50, 100, 500, 2_000}[s.rng.IntN(5)]
		delay := 0
		if s.rng.IntN(3) == 0 {
			delay = s.rng.IntN(2 * tick)
		}
		fields = append(fields, fmt.Sprintf(`"ticks":{"tick":%d,"delay":%d}`, tick, delay))
	}
	leaveDelay := int64(0)
	if s.rng.IntN(2) == 0 {
		leaveDelay = []int64{0, 300, 1250}[s.rng.IntN(3)]
		fields = append(fields, fmt.Sprintf(`"leaveDelay":%d`, leaveDelay))
	}
	if s.rng.IntN(5) == 0 {
		fields = append(fields, `"tove":"TOVE"`)
	}
	if s.rng.IntN(2) == 0 {
		fields = append(fields, `"ephemeral":true`) // docs/protocol.md §22
	}
	if err := s.receive(conn, `{"action":"JOIN","args":{`+strings.Join(fields, ",")+`}}`); err != nil {
		return err
	}
	if state := s.check.conns[conn.id]; !state.closed && !s.session.Ended() {
		s.leaveDelay = leaveDelay // a valid JOIN sets the island-wide value
	}
	return nil
}

func (s *sim) sendFrame() string {
	payload := fmt.Sprintf(`"p%d"`, s.rng.IntN(1_000_000))
	extra := ""
	for i := s.rng.IntN(3); i > 0; i-- {
		extra += fmt.Sprintf(",%d", s.rng.IntN(100))
	}
	tags := ""
	if s.rng.IntN(5) == 0 {
		tags = fmt.Sprintf(`,"tags":{"debounce":%d,"msgID":"id%d"}`, s.rng.IntN(3_000), s.rng.IntN(6))
	}
	if s.rng.IntN(40) == 0 {
		return `{"action":"SEND","args":[0,0,{"what":"forged"}]}` // rejected, no seq used
	}
	return fmt.Sprintf(`{"action":"SEND","args":[0,0,%s%s]%s}`, payload, extra, tags)
}

func (s *sim) tuttiFrame() string {
	// Votes cluster on a few keys per second of session time, so several
	// clients vote on the same key.
	sendTime := s.session.Record().Time / 1000 * 1000
	if s.rng.IntN(10) == 0 {
		sendTime = s.rng.Int64N(sendTime + 1)
	}
	key := fmt.Sprintf("k%d@%d", s.rng.IntN(2), sendTime)
	first := "null"
	if s.rng.IntN(3) == 0 {
		first = fmt.Sprintf(`[%d,0,"first|%s|%d"]`, sendTime, key, s.rng.IntN(1000))
	}
	return fmt.Sprintf(`{"action":"TUTTI","args":[%d,0,%q,%s,%v,["t"],%q]}`,
		sendTime, []string{"A", "B"}[s.rng.IntN(2)], first, s.rng.IntN(2) == 0, key)
}

func (s *sim) snapFrame() string {
	log := s.store.log
	var seq uint32
	var t int64
	if len(log) > 0 && s.rng.IntN(6) != 0 {
		message := log[s.rng.IntN(len(log))]
		seq = message.Seq
		var elements []json.RawMessage
		if err := json.Unmarshal(message.Data, &elements); err == nil {
			_ = json.Unmarshal(elements[0], &t)
		}
		if s.rng.IntN(5) == 0 {
			t += s.rng.Int64N(3) - 1
		}
	} else {
		seq = s.rng.Uint32()
		t = s.rng.Int64N(s.session.Record().Time + 1)
	}
	dissident := "null"
	if s.rng.IntN(8) == 0 {
		dissident = `{"groupVotes":1,"allVotes":2}`
	}
	return fmt.Sprintf(`{"action":"SNAP","args":{"time":%d,"seq":%d,"hash":"H","url":"http://f/snap-%d-%d","dissident":%s}}`,
		max(t, 0), seq, seq, t, dissident)
}

func (s *sim) otherFrame() string {
	switch s.rng.IntN(6) {
	case 5:
		return fmt.Sprintf(`{"action":"EPHM","args":"e%d"}`, s.rng.IntN(1_000_000))
	case 0:
		return fmt.Sprintf(`{"action":"SAVE","args":{"url":"http://f/save/%d"}}`, s.rng.IntN(100))
	case 1:
		tick := []int{0, 20, 100, 1_000}[s.rng.IntN(4)]
		scale := []string{"", `,"scale":2`, `,"scale":0.5`, `,"scale":64`}[s.rng.IntN(4)]
		return fmt.Sprintf(`{"action":"TICKS","args":{"tick":%d,"delay":%d%s}}`, tick, s.rng.IntN(60), scale)
	case 2:
		return `{"action":"PING","args":1}`
	case 3:
		return `{"action":"PULSE"}`
	default:
		return `{"action":"LOG","args":"text"}`
	}
}

// oddFrame is a frame a standard client does not send: malformed, out of
// order, or unknown.
func (s *sim) oddFrame() string {
	return []string{
		`not json`,
		`null`,
		`{"action":"SEND","args":"x"}`,
		`{"action":"TUTTI","args":[1]}`,
		`{"action":"WHAT"}`,
		`{"action":"PULSE"}`,
		`{"action":"JOIN","args":{"apiKey":"none"}}`,
		`{"action":"EPHM","args":["e"]}`,
		`{"action":"EPHM","args":"e"}`, // before JOIN when the connection has not joined
	}[s.rng.IntN(9)]
}

// checkGenerated checks the messages a step stamped: each TUTTI key's first
// message and tally at most once (a late vote for a completed key is
// ignored, docs/protocol.md §6.3), and users messages with the members' counts.
func (s *sim) checkGenerated(out *reflector.Effects, active, total int) error {
	for _, message := range out.Storage.Append {
		var elements []json.RawMessage
		if err := json.Unmarshal(message.Data, &elements); err != nil || len(elements) < 3 {
			return fmt.Errorf("stored message is not a message array: %s", message.Data)
		}
		var text string
		if json.Unmarshal(elements[2], &text) == nil {
			if parts := strings.Split(text, "|"); len(parts) == 3 && parts[0] == "first" {
				if s.firstMessages[parts[1]]++; s.firstMessages[parts[1]] > 1 {
					return fmt.Errorf("TUTTI %s: first message stamped twice (seq %d)", parts[1], message.Seq)
				}
			}
			continue
		}
		var payload struct {
			What     string `json:"what"`
			TuttiKey string `json:"tuttiKey"`
			Active   int    `json:"active"`
			Total    int    `json:"total"`
		}
		if json.Unmarshal(elements[2], &payload) != nil {
			return fmt.Errorf("stored message payload is neither a string nor an object: %s", message.Data)
		}
		switch payload.What {
		case "tally":
			if s.tallies[payload.TuttiKey]++; s.tallies[payload.TuttiKey] > 1 {
				return fmt.Errorf("TUTTI %s: tally stamped twice (seq %d)", payload.TuttiKey, message.Seq)
			}
		case "users":
			if payload.Active != active || payload.Total != total {
				return fmt.Errorf("users message seq %d says active %d total %d; the members are active %d total %d (docs/protocol.md §7.3, §10.3)",
					message.Seq, payload.Active, payload.Total, active, total)
			}
		}
	}
	return nil
}

// expectedUsers counts the members as the spec defines them (§7.3): synced
// connections, including those in their leave delay (removed at leaveAt,
// before the users timer runs); active ones have a user.
func (s *sim) expectedUsers() (active, total int) {
	for _, conn := range s.conns {
		state := s.check.conns[conn.id]
		if !state.synced || (state.disconnected && conn.leaveAt <= s.now) {
			continue
		}
		total++
		if conn.user != "" {
			active++
		}
	}
	return active, total
}
