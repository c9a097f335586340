package island_test

import (
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
)

// Counter is a model: plain data with exported fields.
type Counter struct {
	Count int
	Beats int
}

// counterApp is the app: how a session starts and the handlers of its
// events. Handlers change the model only through their arguments, read
// time only from ctx.Now, and schedule work with ctx.Future.
var counterApp = island.App[Counter]{
	ID:      "io.example.counter",
	Version: "1",
	Init: func(m *Counter, ctx *island.Context) {
		ctx.Future(1000, "beat", nil)
	},
	Events: map[string]island.Handler[Counter]{
		"add": func(m *Counter, ctx *island.Context, e island.Event) {
			var n int
			if err := e.Decode(&n); err == nil {
				m.Count += n
				ctx.Emit("count", m.Count)
			}
		},
		"beat": func(m *Counter, ctx *island.Context, e island.Event) {
			m.Beats++
			ctx.Future(1000, "beat", nil)
		},
	},
}

// Two replicas that apply the same reflected messages have the same state,
// and a replica restored from a snapshot continues identically.
func Example() {
	var out island.Effects
	a := island.New(counterApp, "view-a", &out)
	b := island.New(counterApp, "view-b", &out)

	data, _ := island.Encode(5)
	add := island.Message{Time: 2500, Seq: 1, View: "view-a", Input: 1,
		Envelope: &island.Envelope{Kind: island.KindEvent, Name: "add", Data: data}}
	a.Apply(add, &out)
	b.Apply(add, &out)
	a.Advance(4000, &out) // a TICK: the future "beat" messages run
	b.Advance(4000, &out)
	fmt.Println("count", a.Model().Count, "beats", a.Model().Beats, "same state:", a.Hash() == b.Hash())

	snapshot, _ := a.Snapshot()
	c, _ := island.Restore(counterApp, "view-c", snapshot)
	fmt.Println("restored replica agrees:", c.Hash() == a.Hash())

	// A re-sent copy of input 1 of view-a takes no effect.
	a.Apply(island.Message{Time: 4100, Seq: 2, View: "view-a", Input: 1, Envelope: add.Envelope}, &out)
	fmt.Println("count after a duplicate", a.Model().Count)
	// Output:
	// count 5 beats 4 same state: true
	// restored replica agrees: true
	// count after a duplicate 5
}
