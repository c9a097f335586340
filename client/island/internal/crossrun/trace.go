package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/island/internal/crossrun/model"
	"github.com/metronome-sync/metronome/protocol"
)

// Record kinds: one line of a trace.
const (
	KindTick  = "tick"  // session time advances (a TICK): no seq
	KindEvent = "event" // a view's event: View, Input, Name, Data
	KindPoll  = "poll"  // a snapshot poll
	KindJoin  = "join"  // View joined (a users message)
	KindExit  = "exit"  // View left (a users message)
	KindOther = "other" // a message the island cannot use: time and seq only
)

// Record is one line of a trace file (JSON lines): a reflected message as
// the session shell hands it to the island, or a tick.
type Record struct {
	Kind  string          `json:"kind"`
	Time  int64           `json:"time"`
	Seq   uint32          `json:"seq,omitempty"`
	View  string          `json:"view,omitempty"`
	Input uint64          `json:"input,omitempty"`
	Name  string          `json:"name,omitempty"`
	Data  json.RawMessage `json:"data,omitempty"`
}

// eventData returns a new value of the type the event name's data decodes
// into: the trace stores data as JSON, the island gets it as CBOR.
func eventData(name string) (any, bool) {
	switch name {
	case "thrust":
		return &model.Thrust{}, true
	case "spawn":
		return &model.Spawn{}, true
	case "paint":
		return &model.Paint{}, true
	case "remove":
		return &model.Remove{}, true
	case "chat": // no handler: the model ignores it
		return new(string), true
	}
	return nil, false
}

// step is a parsed record: a message to Apply, or a tick to Advance to.
type step struct {
	tick    bool
	time    int64
	message island.Message
}

// parseTrace reads a trace and checks it: known kinds and event names,
// session time never going back, seq increasing by one.
func parseTrace(r io.Reader) ([]step, error) {
	var steps []step
	scanner := bufio.NewScanner(r)
	scanner.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	var lastTime int64
	var lastSeq uint32
	messages := 0
	for scanner.Scan() {
		line++
		text := bytes.TrimSpace(scanner.Bytes())
		if len(text) == 0 {
			continue
		}
		var record Record
		decoder := json.NewDecoder(bytes.NewReader(text))
		decoder.DisallowUnknownFields()
		if err := decoder.Decode(&record); err != nil {
			return nil, fmt.Errorf("trace line %d: %w", line, err)
		}
		if record.Time < lastTime {
			return nil, fmt.Errorf("trace line %d: time %d is before the previous %d", line, record.Time, lastTime)
		}
		lastTime = record.Time
		if record.Kind == KindTick {
			steps = append(steps, step{tick: true, time: record.Time})
			continue
		}
		if messages > 0 && record.Seq != lastSeq+1 {
			return nil, fmt.Errorf("trace line %d: seq %d does not follow %d", line, record.Seq, lastSeq)
		}
		lastSeq = record.Seq
		messages++
		message := island.Message{Time: record.Time, Seq: record.Seq, View: record.View, Input: record.Input}
		switch record.Kind {
		case KindEvent:
			value, ok := eventData(record.Name)
			if !ok {
				return nil, fmt.Errorf("trace line %d: unknown event name %q", line, record.Name)
			}
			if err := json.Unmarshal(record.Data, value); err != nil {
				return nil, fmt.Errorf("trace line %d: data of %q: %w", line, record.Name, err)
			}
			data, err := island.Encode(value)
			if err != nil {
				return nil, fmt.Errorf("trace line %d: %w", line, err)
			}
			message.Envelope = &island.Envelope{Kind: island.KindEvent, Name: record.Name, Data: data}
		case KindPoll:
			message.Envelope = &island.Envelope{Kind: island.KindPoll}
		case KindJoin, KindExit:
			user, _ := json.Marshal(record.View)
			change := &protocol.UsersChange{}
			if record.Kind == KindJoin {
				change.Joined = []json.RawMessage{user}
			} else {
				change.Left = []json.RawMessage{user}
			}
			message.Users = change
		case KindOther:
		default:
			return nil, fmt.Errorf("trace line %d: unknown kind %q", line, record.Kind)
		}
		steps = append(steps, step{time: record.Time, message: message})
	}
	if err := scanner.Err(); err != nil {
		return nil, err
	}
	return steps, nil
}

// generator is SplitMix64, seeded: the trace generator's only randomness.
type generator struct{ state uint64 }

func (g *generator) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}

func (g *generator) intn(n int) int { return int(g.next() % uint64(n)) }

// float returns a number in [low, high) rounded to 1/64, so the trace
// stays short and readable (any float64 would round-trip through JSON).
func (g *generator) float(low, high float64) float64 {
	unit := float64(g.next()>>11) / (1 << 53)
	x := low + float64(unit*(high-low))
	return float64(int64(x*64)) / 64
}

// Trace generation parameters.
const (
	generatorSeed     = 0x6372_6f73_7372_756e // "crossrun"
	traceMessages     = 4000
	traceViews        = 8
	tickGapMs         = 100 // a tick when no message came for this long
	messageGapMaxMs   = 120
	pollIntervalMinMs = 5000
)

// generate writes a trace of traceMessages reflected messages (views
// joining, sending inputs — some re-sent, some out of order — leaving and
// returning, snapshot polls, unusable messages) plus ticks in the gaps.
func generate(w io.Writer) error {
	g := &generator{state: generatorSeed}
	var records []Record
	var now int64
	var seq uint32
	present := make([]bool, traceViews)
	inputs := make([]uint64, traceViews)
	var held *Record                     // an input delayed to arrive after the view's next one
	sent := make([][]Record, traceViews) // each view's latest inputs
	lastPoll := int64(0)
	viewName := func(v int) string { return "view" + strconv.Itoa(v+1) }
	emit := func(r Record) {
		seq++
		r.Seq = seq
		r.Time = now
		records = append(records, r)
	}
	emitInput := func(v int, r Record) {
		emit(r)
		sent[v] = append(sent[v], r)
		if len(sent[v]) > 5 {
			sent[v] = sent[v][1:]
		}
	}
	for seq < traceMessages {
		gap := int64(g.intn(messageGapMaxMs + 1))
		if g.intn(50) == 0 {
			gap += int64(200 + g.intn(800)) // a quiet spell: ticks only
		}
		for t := now + tickGapMs; t < now+gap; t += tickGapMs {
			records = append(records, Record{Kind: KindTick, Time: t})
		}
		now += gap
		v := g.intn(traceViews)
		roll := g.intn(1000)
		switch {
		case !present[v] && roll < 300, roll < 4 && present[v]:
			present[v] = !present[v]
			kind := KindExit
			if present[v] {
				kind = KindJoin
			}
			emit(Record{Kind: kind, View: viewName(v)})
		case !present[v]:
			emit(Record{Kind: KindOther})
		case now-lastPoll >= pollIntervalMinMs && roll < 40:
			lastPoll = now
			emit(Record{Kind: KindPoll})
		case roll < 50 && len(sent[v]) > 0:
			// the link re-sends an input that the island already applied
			emit(sent[v][g.intn(len(sent[v]))])
		default:
			inputs[v]++
			name, data := randomEvent(g)
			r := Record{Kind: KindEvent, View: viewName(v), Input: inputs[v], Name: name, Data: data}
			if held == nil && roll < 80 {
				held = &r // arrives after the view's next input
				continue
			}
			emitInput(v, r)
			if held != nil && held.View == r.View {
				emitInput(v, *held)
				held = nil
			}
		}
	}
	if held != nil {
		emit(*held)
	}
	out := bufio.NewWriter(w)
	for _, r := range records {
		line, err := json.Marshal(r)
		if err != nil {
			return err
		}
		out.Write(line)
		out.WriteByte('\n')
	}
	return out.Flush()
}

func randomEvent(g *generator) (string, json.RawMessage) {
	var value any
	name := ""
	switch roll := g.intn(100); {
	case roll < 45:
		name, value = "thrust", model.Thrust{Angle: g.float(-4, 4), Power: g.float(0, 6)}
	case roll < 60:
		name, value = "spawn", model.Spawn{X: g.float(-120, 120), Y: g.float(-120, 120), Mass: g.float(0, 9)}
	case roll < 90:
		name, value = "paint", model.Paint{X: g.float(-110, 110), Y: g.float(-110, 110), Color: g.intn(12)}
	case roll < 97:
		name, value = "remove", model.Remove{ID: int64(1 + g.intn(200))}
	default:
		name, value = "chat", "hello"
	}
	data, err := json.Marshal(value)
	if err != nil {
		panic(err)
	}
	return name, data
}
