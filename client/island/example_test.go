package island_test

import (
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/protocol"
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

// The entries of a users message are the raw JSON "user" values of the
// members' JOINs. The Go SDK's is its view id as a JSON string; other
// clients may send an object with an "id", or any other JSON value, which
// is then the view id as it is written.
func ExampleMessage_users() {
	app := island.App[struct{}]{ID: "io.example.room", Version: "1",
		Events: map[string]island.Handler[struct{}]{
			island.EventViewJoin: func(_ *struct{}, ctx *island.Context, e island.Event) {
				fmt.Printf("join %s\n", e.View)
			},
			island.EventViewExit: func(_ *struct{}, ctx *island.Context, e island.Event) {
				fmt.Printf("exit %s, present: %q\n", e.View, ctx.Views())
			},
		}}
	var out island.Effects
	i := island.New(app, "k2j4h5g6f7", &out)
	i.Apply(island.Message{Time: 200, Seq: 1, Users: &protocol.UsersChange{Active: 4, Total: 4, Joined: []json.RawMessage{
		json.RawMessage(`"k2j4h5g6f7"`),                   // the Go SDK
		json.RawMessage(`{"id":"a9s8d7f6g5","data":"x"}`), // a client with view data
		json.RawMessage(`["q1w2e3r4t5"]`),                 // any other value
		json.RawMessage(`"k2j4h5g6f7"`),                   // a second connection of the same view
	}}}, &out)
	i.Apply(island.Message{Time: 400, Seq: 2, Users: &protocol.UsersChange{Active: 2, Total: 2, Left: []json.RawMessage{
		json.RawMessage(`"k2j4h5g6f7"`), // one of its two connections: still present
		json.RawMessage(`{"id":"a9s8d7f6g5","data":"x"}`),
	}}}, &out)
	// Output:
	// join k2j4h5g6f7
	// join a9s8d7f6g5
	// join ["q1w2e3r4t5"]
	// exit a9s8d7f6g5, present: ["[\"q1w2e3r4t5\"]" "k2j4h5g6f7"]
}
