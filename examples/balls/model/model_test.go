package model

import (
	"encoding/json"
	"testing"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/dmath"
	"github.com/metronome-sync/metronome/protocol"
)

// replay feeds the same messages to a fresh island and returns it.
func replay(t *testing.T, view string, messages []island.Message, until int64) *island.Island[Model] {
	t.Helper()
	var out island.Effects
	i := island.New(App, view, &out)
	for _, m := range messages {
		i.Apply(m, &out)
	}
	i.Advance(until, &out)
	if len(out.Errors) > 0 {
		t.Fatalf("model errors: %v", out.Errors)
	}
	return i
}

func event(t *testing.T, time int64, seq uint32, view string, input uint64, name string, data any) island.Message {
	t.Helper()
	encoded, err := island.Encode(data)
	if err != nil {
		t.Fatal(err)
	}
	return island.Message{Time: time, Seq: seq, View: view, Input: input,
		Envelope: &island.Envelope{Kind: island.KindEvent, Name: name, Data: encoded}}
}

func users(time int64, seq uint32, joined, left []string) island.Message {
	raw := func(views []string) []json.RawMessage {
		var out []json.RawMessage
		for _, v := range views {
			encoded, _ := json.Marshal(v)
			out = append(out, encoded)
		}
		return out
	}
	return island.Message{Time: time, Seq: seq, Users: &protocol.UsersChange{Joined: raw(joined), Left: raw(left)}}
}

func script(t *testing.T) []island.Message {
	return []island.Message{
		users(10, 1, []string{"b", "a"}, nil),
		event(t, 900, 2, "b", 1, EventPush, Push{Ball: NoBall, At: dmath.Vec2{X: 400, Y: 250}}),
		event(t, 1300, 3, "a", 1, EventPush, Push{Ball: 3, Impulse: dmath.Vec2{X: 5000, Y: -20}}),
		users(2000, 4, nil, []string{"b"}),
	}
}

func TestReplicasAgree(t *testing.T) {
	messages := script(t)
	a := replay(t, "a", messages, 60_000)
	b := replay(t, "b", messages, 60_000)
	if a.Hash() != b.Hash() {
		t.Fatalf("replicas differ: %s vs %s", a.Hash(), b.Hash())
	}
	m := a.Model()
	if m.Pushes != 2 {
		t.Errorf("Pushes = %d, want 2", m.Pushes)
	}
	if m.Steps != 60_000/StepMs {
		t.Errorf("Steps = %d, want %d", m.Steps, 60_000/StepMs)
	}
	if len(m.Pointers) != 1 || m.Pointers[0].View != "a" {
		t.Errorf("Pointers = %+v, want only a's", m.Pointers)
	}
	for i, ball := range m.Balls {
		p := ball.Position
		if p.X < ball.Radius || p.X > m.Size.X-ball.Radius || p.Y < ball.Radius || p.Y > m.Size.Y-ball.Radius {
			t.Errorf("ball %d left the box: %+v", i, ball)
		}
		if speed := ball.Velocity.Length(); speed > SpeedMax {
			t.Errorf("ball %d is faster than SpeedMax: %v", i, speed)
		}
	}
}

func TestRestoredReplicaContinuesIdentically(t *testing.T) {
	messages := script(t)
	var out island.Effects
	original := island.New(App, "a", &out)
	for _, m := range messages[:3] {
		original.Apply(m, &out)
	}
	snapshot, _ := original.Snapshot()
	restored, err := island.Restore(App, "c", snapshot)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range messages[3:] {
		original.Apply(m, &out)
		restored.Apply(m, &out)
	}
	original.Advance(30_000, &out)
	restored.Advance(30_000, &out)
	if original.Hash() != restored.Hash() {
		t.Fatal("the replica restored from a snapshot diverged")
	}
}

func TestPushesChangeVelocitiesAndBadDataIsIgnored(t *testing.T) {
	base := replay(t, "a", nil, 0).Model()
	push := func(p any) *Model {
		return replay(t, "a", []island.Message{event(t, 0, 1, "a", 1, EventPush, p)}, 0).Model()
	}
	pushed := push(Push{Ball: 2, Impulse: dmath.Vec2{X: 10, Y: 0}})
	if pushed.Pushes != 1 || pushed.Balls[2].Velocity.X != base.Balls[2].Velocity.X+10 {
		t.Errorf("a ball push must add the impulse: before %+v, after %+v", base.Balls[2], pushed.Balls[2])
	}
	near := push(Push{Ball: NoBall, At: base.Balls[0].Position.Add(dmath.Vec2{X: -1, Y: 0})})
	if near.Balls[0].Velocity.X <= base.Balls[0].Velocity.X {
		t.Errorf("a point push just left of ball 0 must push it right: before %+v, after %+v", base.Balls[0], near.Balls[0])
	}
	for _, bad := range []any{
		Push{Ball: 99},
		Push{Ball: -7},
		Push{Ball: 0, Impulse: dmath.Vec2{X: dmath.CanonicalNaN()}},
		Push{Ball: NoBall, At: dmath.Vec2{X: dmath.Inf(1)}},
		"not a push",
	} {
		if got := push(bad); got.Pushes != 0 {
			t.Errorf("push %+v was applied", bad)
		}
	}
}

func TestBallAt(t *testing.T) {
	m := replay(t, "a", nil, 0).Model()
	if got := m.BallAt(m.Balls[5].Position); got != 5 && m.Balls[got].Position.Sub(m.Balls[5].Position).Length() > m.Balls[got].Radius {
		t.Errorf("BallAt(center of ball 5) = %d", got)
	}
	if got := m.BallAt(dmath.Vec2{X: -100, Y: -100}); got != NoBall {
		t.Errorf("BallAt(outside) = %d, want NoBall", got)
	}
}

func TestPointerBroadcasts(t *testing.T) {
	data, err := EncodePointer(PointerMove{At: dmath.Vec2{X: 100, Y: 120}, Active: true})
	if err != nil {
		t.Fatal(err)
	}
	if move, ok := DecodePointer(data); !ok || move.At != (dmath.Vec2{X: 100, Y: 120}) || !move.Active {
		t.Errorf("DecodePointer = %+v, %v", move, ok)
	}
	outside, _ := EncodePointer(PointerMove{At: dmath.Vec2{X: -5, Y: 9000}})
	if move, ok := DecodePointer(outside); !ok || move.At != (dmath.Vec2{X: 0, Y: WorldHeight}) {
		t.Errorf("a point outside the box: %+v, %v; want it moved onto the border", move, ok)
	}
	bad, _ := EncodePointer(PointerMove{At: dmath.Vec2{X: dmath.CanonicalNaN()}})
	for _, data := range [][]byte{bad, []byte("junk"), nil} {
		if move, ok := DecodePointer(data); ok {
			t.Errorf("DecodePointer(%x) = %+v, want refused", data, move)
		}
	}
}
