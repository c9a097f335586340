package island

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

// counter is a test model: a total, per-view counts, a log of ticks from a
// future message loop, and random draws.
type counter struct {
	Total  int
	ByView map[string]int
	Ticks  []int64
	Draws  []uint64
	Joined []string
}

var counterApp = App[counter]{
	ID: "io.metronome.test", Version: "1",
	Init: func(m *counter, ctx *Context) {
		m.ByView = map[string]int{}
		ctx.Future(100, "tick", nil)
	},
	Events: map[string]Handler[counter]{
		"add": func(m *counter, ctx *Context, e Event) {
			var n int
			if err := e.Decode(&n); err != nil {
				panic(err)
			}
			m.Total += n
			m.ByView[e.View] += n
			m.Draws = append(m.Draws, ctx.Random()%1000)
			ctx.Publish("added", n)
			ctx.Emit("total", m.Total)
		},
		"added": func(m *counter, ctx *Context, e Event) {
			var n int
			e.Decode(&n)
			if n > 5 {
				ctx.Future(250, "bonus", n)
			}
		},
		"bonus": func(m *counter, ctx *Context, e Event) { m.Total++ },
		"tick": func(m *counter, ctx *Context, e Event) {
			m.Ticks = append(m.Ticks, ctx.Now())
			if len(m.Ticks) < 50 {
				ctx.Future(100, "tick", nil)
			}
		},
		EventViewJoin: func(m *counter, ctx *Context, e Event) { m.Joined = append(m.Joined, e.View) },
		"boom":        func(m *counter, ctx *Context, e Event) { panic("boom") },
	},
}

func addMessage(t int64, seq uint32, view string, input uint64, n int) Message {
	data, _ := Encode(n)
	return Message{Time: t, Seq: seq, View: view, Input: input, Envelope: &Envelope{Kind: KindEvent, Name: "add", Data: data}}
}

func usersMessage(t int64, seq uint32, joined ...string) Message {
	change := &protocol.UsersChange{}
	for _, view := range joined {
		change.Joined = append(change.Joined, json.RawMessage(`"`+view+`"`))
	}
	return Message{Time: t, Seq: seq, Users: change}
}

// script is a session's reflected history.
func script() []Message {
	messages := []Message{usersMessage(10, 1, "a", "b")}
	seq := uint32(1)
	for k := range 40 {
		seq++
		view := []string{"a", "b"}[k%2]
		messages = append(messages, addMessage(int64(50+k*97), seq, view, uint64(k/2+1), k%9))
	}
	// A re-sent input: view a's input 3 again.
	seq++
	messages = append(messages, addMessage(4000, seq, "a", 3, 100))
	return messages
}

func run(t *testing.T, island *Island[counter], messages []Message) *Effects {
	t.Helper()
	out := &Effects{}
	for _, m := range messages {
		island.Apply(m, out)
		island.Advance(m.Time+30, out) // ticks between messages
	}
	for _, err := range out.Errors {
		t.Fatal(err)
	}
	return out
}

func TestReplicasAgreeAndDropResentInputs(t *testing.T) {
	a := New(counterApp, "a", &Effects{})
	b := New(counterApp, "b", &Effects{})
	run(t, a, script())
	out := &Effects{}
	for _, m := range script() { // b sees no ticks: only messages
		b.Apply(m, out)
	}
	b.Advance(a.Time(), out)
	if a.Hash() != b.Hash() {
		t.Fatalf("replicas differ: %+v vs %+v", *a.Model(), *b.Model())
	}
	m := a.Model()
	if m.ByView["a"] == 0 || m.ByView["b"] == 0 || len(m.Ticks) != 40 || a.state.Duplicates != 1 || len(m.Joined) != 2 {
		t.Fatalf("model %+v, duplicates %d", *m, a.state.Duplicates)
	}
	if len(out.Emits) != 40 {
		t.Fatalf("%d emits, want 40", len(out.Emits))
	}
}

func TestSnapshotRestoreContinuesIdentically(t *testing.T) {
	messages := script()
	for cut := 1; cut < len(messages); cut += 7 {
		whole := New(counterApp, "a", &Effects{})
		run(t, whole, messages)

		first := New(counterApp, "b", &Effects{})
		run(t, first, messages[:cut])
		snapshot, hash := first.Snapshot()
		restored, err := Restore(counterApp, "c", snapshot)
		if err != nil {
			t.Fatal(err)
		}
		if restored.Hash() != hash {
			t.Fatalf("cut %d: restored hash %s, snapshot hash %s", cut, restored.Hash(), hash)
		}
		run(t, restored, messages[cut:])
		if restored.Hash() != whole.Hash() {
			t.Fatalf("cut %d: snapshot + replay %+v, continuous %+v", cut, *restored.Model(), *whole.Model())
		}
	}
}

func vote(view, hash string, cpu float64) string {
	data, _ := json.Marshal(snapshotVote{CPUTime: cpu, Hash: hash, ViewID: view})
	return string(data)
}

func TestSnapshotPollVoteAndUpload(t *testing.T) {
	a := New(counterApp, "a", &Effects{})
	out := run(t, a, script())
	out.Reset()
	a.Apply(Message{Time: 5000, Seq: 100, Envelope: &Envelope{Kind: KindPoll}}, out)
	if len(out.Votes) != 1 || out.Votes[0].Key != "snapshot@5000" || !strings.Contains(out.Votes[0].Payload, a.Hash()) {
		t.Fatalf("votes %+v", out.Votes)
	}
	// A second poll within SnapshotPollGapMs is ignored.
	a.Apply(Message{Time: 6000, Seq: 101, Envelope: &Envelope{Kind: KindPoll}}, out)
	if len(out.Votes) != 1 {
		t.Fatalf("a poll 1 s after the last one voted again: %+v", out.Votes)
	}
	// b has the least cpuTime in the majority: a does not upload.
	tally := &protocol.Tally{SendTime: 5000, Key: "snapshot@5000", Votes: map[string]int{
		vote("a", "h1", 2): 1, vote("b", "h1", 1): 1, vote("c", "h2", 0.5): 1}}
	out.Reset()
	a.Apply(Message{Time: 5013, Seq: 102, Tally: tally}, out)
	if len(out.Uploads) != 0 || len(out.Divergences) != 1 {
		t.Fatalf("uploads %d, divergences %+v", len(out.Uploads), out.Divergences)
	}
	d := out.Divergences[0]
	if d.Time != 5000 || d.Groups[0].Hash != "h1" || d.Groups[1].Views[0] != "c" || d.Local || !strings.Contains(d.Error(), "h1 (a, b) vs h2 (c)") {
		t.Fatalf("divergence %+v: %v", d, d)
	}
	// Agreement, a is the cheapest: a uploads its state at the tally.
	tally = &protocol.Tally{SendTime: 9000, Key: "snapshot@9000", Votes: map[string]int{vote("a", "h3", 1): 1, vote("b", "h3", 2): 1}}
	out.Reset()
	a.Apply(Message{Time: 9011, Seq: 103, Tally: tally}, out)
	if len(out.Uploads) != 1 || len(out.Divergences) != 0 {
		t.Fatalf("uploads %+v divergences %+v", out.Uploads, out.Divergences)
	}
	upload := out.Uploads[0]
	restored, err := Restore(counterApp, "z", upload.Data)
	if err != nil || upload.Seq != 103 || upload.Time != 9011 || restored.Hash() != upload.Hash {
		t.Fatalf("upload %d/%d %s: %v", upload.Time, upload.Seq, upload.Hash, err)
	}
}

func TestModelPanicsAndLimitsAreReported(t *testing.T) {
	a := New(counterApp, "a", &Effects{})
	out := &Effects{}
	a.Apply(Message{Time: 5, Seq: 1, Envelope: &Envelope{Kind: KindEvent, Name: "boom"}}, out)
	if len(out.Errors) != 1 || !strings.Contains(out.Errors[0].Error(), "boom") {
		t.Fatalf("errors %v", out.Errors)
	}
	loop := App[counter]{Events: map[string]Handler[counter]{
		"ping": func(m *counter, ctx *Context, e Event) { ctx.Publish("ping", nil) },
		"late": func(m *counter, ctx *Context, e Event) { ctx.Future(-1, "x", nil) },
	}}
	b := New(loop, "b", &Effects{})
	out.Reset()
	b.Apply(Message{Time: 5, Seq: 1, Envelope: &Envelope{Kind: KindEvent, Name: "ping"}}, out)
	b.Apply(Message{Time: 6, Seq: 2, Envelope: &Envelope{Kind: KindEvent, Name: "late"}}, out)
	text := fmt.Sprint(out.Errors)
	if !strings.Contains(text, "PublishDepthMax") || !strings.Contains(text, "FutureDelayMaxMs") {
		t.Fatalf("errors %v", out.Errors)
	}
}

// TestValidateNamesFieldLimitAndValue: a snapshot interval the replicas
// and the reflector cannot honour is refused, not silently raised.
func TestValidateNamesFieldLimitAndValue(t *testing.T) {
	for _, test := range []struct {
		interval int64
		want     string // "" for valid
	}{
		{0, ""},
		{SnapshotIntervalMsMin, ""},
		{SnapshotIntervalMsDefault, ""},
		{1 << 50, ""},
		{SnapshotIntervalMsMin - 1, "App.SnapshotIntervalMs is 4999 ms; it must be 0 (the default, 30000 ms) or at least 5000 ms (SnapshotIntervalMsMin)"},
		{2000, "App.SnapshotIntervalMs is 2000 ms"},
		{-1, "App.SnapshotIntervalMs is -1 ms"},
	} {
		app := counterApp
		app.SnapshotIntervalMs = test.interval
		err := app.Validate()
		if test.want == "" && err != nil {
			t.Errorf("SnapshotIntervalMs %d: %v, want valid", test.interval, err)
		}
		if test.want != "" && (err == nil || !strings.Contains(err.Error(), test.want)) {
			t.Errorf("SnapshotIntervalMs %d: %v, want an error containing %q", test.interval, err, test.want)
		}
	}
	app := counterApp
	app.ID = ""
	if err := app.Validate(); err == nil || !strings.Contains(err.Error(), "App.ID is required") {
		t.Errorf("no ID: %v", err)
	}
}

// TestDivergenceNamesTheFirstMessageAfterTheLastAgreeingVote: a replica
// outside the majority is told which message reached the model first
// after its last vote that agreed (Suspect), whether the majority is
// strict, and the seq of the tally the majority's snapshot is taken at;
// the majority's uploader is told to announce its snapshot.
func TestDivergenceNamesTheFirstMessageAfterTheLastAgreeingVote(t *testing.T) {
	c := New(counterApp, "c", &Effects{})
	out := run(t, c, script())
	out.Reset()
	c.Apply(Message{Time: 5000, Seq: 100, Envelope: &Envelope{Kind: KindPoll}}, out)
	_, agreed := c.LastVote()
	c.Apply(addMessage(5005, 101, "a", 100, 1), out)
	c.Apply(addMessage(5006, 102, "b", 100, 1), out)
	c.Apply(Message{Time: 5010, Seq: 103, Tally: &protocol.Tally{SendTime: 5000, Key: "snapshot@5000", Votes: map[string]int{
		vote("a", agreed, 2): 1, vote("b", agreed, 3): 1, vote("c", agreed, 4): 1}}}, out)
	c.Apply(addMessage(9000, 104, "a", 101, 1), out)
	c.Apply(Message{Time: 10000, Seq: 105, Envelope: &Envelope{Kind: KindPoll}}, out)
	_, own := c.LastVote()
	out.Reset()
	c.Apply(Message{Time: 10010, Seq: 106, Tally: &protocol.Tally{SendTime: 10000, Key: "snapshot@10000", Votes: map[string]int{
		vote("a", "h1", 2): 1, vote("b", "h1", 3): 1, vote("c", own, 1): 1}}}, out)
	if len(out.Divergences) != 1 || len(out.Uploads) != 0 {
		t.Fatalf("divergences %+v, uploads %d", out.Divergences, len(out.Uploads))
	}
	d := out.Divergences[0]
	if !d.Local || !d.Majority || d.Seq != 106 || d.LocalHash != own || d.Groups[0].Hash != "h1" {
		t.Fatalf("divergence %+v", d)
	}
	if d.Suspect == nil || *d.Suspect != (MessageRef{Seq: 101, Time: 5005, What: `event "add" from view a`}) {
		t.Fatalf("suspect %v, want the add at seq 101, the first after the agreeing vote at 5000", d.Suspect)
	}
	if !strings.Contains(d.Error(), "seq 101 at session time 5005 (event \"add\" from view a)") {
		t.Errorf("report %q", d.Error())
	}

	// a uploads the majority's snapshot and announces it; a split without
	// a strict majority is not announced.
	a := New(counterApp, "a", &Effects{})
	out.Reset()
	a.Apply(Message{Time: 10010, Seq: 106, Tally: &protocol.Tally{SendTime: 10000, Key: "snapshot@10000", Votes: map[string]int{
		vote("a", "h1", 2): 1, vote("b", "h1", 3): 1, vote("c", "h2", 1): 1}}}, out)
	if len(out.Uploads) != 1 || !out.Uploads[0].Announce || out.Divergences[0].Local {
		t.Fatalf("uploads %+v, divergences %+v", out.Uploads, out.Divergences)
	}
	out.Reset()
	a.Apply(Message{Time: 15010, Seq: 107, Tally: &protocol.Tally{SendTime: 15000, Key: "snapshot@15000", Votes: map[string]int{
		vote("a", "h1", 2): 1, vote("b", "h1", 3): 1, vote("c", "h2", 1): 1, vote("d", "h2", 1): 1}}}, out)
	if len(out.Uploads) != 1 || out.Uploads[0].Announce || out.Divergences[0].Majority {
		t.Fatalf("a 2-2 split: uploads %+v, divergences %+v", out.Uploads, out.Divergences)
	}
}
