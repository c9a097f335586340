// Package model is the shared model of the balls example: a box of
// bouncing balls that every participant sees move identically and anyone
// can push, with each participant's pointer.
//
// It is a replicated model (see package client/island): plain data changed
// only by the handlers of App. Balls move in steps of StepMs of session
// time, scheduled with Context.Future; views publish EventPush;
// view-join and view-exit add and remove a view's pointer (its color).
// Where a pointer is does not go through the model: views broadcast it to
// each other on the ephemeral channel (BroadcastPointer, PointerMove), so
// pointer moves are not stamped, stored or replayed to later joiners.
// Every float computation uses dmath and dmath.Vec2 with products rounded
// explicitly, and nothing iterates over a map, so the state hash is the
// same on amd64, arm64 and in the browser (wasm): `metronome vet` checks
// this package.
package model

import (
	"math"
	"slices"
	"strings"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/dmath"
)

// The application's identity: sessions of another ID or Version are other
// sessions.
const (
	AppID = "io.metronome.example.balls"
	// Version 2: pointer positions left the model for the ephemeral
	// channel.
	Version = "2"
)

// Event names.
const (
	// EventStep is the model's own future message that moves the balls.
	EventStep = "step"
	// EventPush is published by a view: a Push.
	EventPush = "push"
)

// BroadcastPointer is the name under which views broadcast their pointer
// (client.Session.Broadcast, data: EncodePointer of a PointerMove). It is
// view-to-view data: never an event of the model.
const BroadcastPointer = "pointer"

// Limits and tuning of the simulation.
const (
	// StepMs is the session time between two simulation steps.
	StepMs = 50
	// SnapshotIntervalMs is the session time between snapshots: the
	// shortest allowed (island.SnapshotIntervalMsMin, 5 s), so that late
	// joiners start from a recent snapshot and replicas compare state
	// hashes often.
	SnapshotIntervalMs = island.SnapshotIntervalMsMin
	// WorldWidth and WorldHeight are the size of the box, in world units.
	WorldWidth  = 800.0
	WorldHeight = 500.0
	// BallCount is the number of balls of a new session.
	BallCount = 8
	// BallRadiusMin and BallRadiusMax bound a ball's radius, in world units.
	BallRadiusMin = 18.0
	BallRadiusMax = 40.0
	// SpeedInitialMin and SpeedInitialMax bound a new ball's speed, in
	// world units per second.
	SpeedInitialMin = 60.0
	SpeedInitialMax = 220.0
	// SpeedMax caps a ball's speed after a push, in world units per second.
	SpeedMax = 1500.0
	// DampingPerStep multiplies every velocity once per step (friction).
	DampingPerStep = 0.998
	// PushRadius is how far from a point push balls are affected, in world
	// units.
	PushRadius = 160.0
	// PushSpeed is the speed a point push adds to a ball at the push point
	// (falling off linearly to 0 at PushRadius), in world units per second.
	PushSpeed = 700.0
	// ColorCount is the number of colors balls and pointers are drawn in.
	ColorCount = 8
	// PointersMax bounds the pointers kept (one per view present).
	PointersMax = 1000
)

// NoBall in Push.Ball asks for a point push.
const NoBall = -1

// Model is the replicated state.
type Model struct {
	// Size is the box, from (0, 0) to (Size.X, Size.Y).
	Size  dmath.Vec2
	Balls []Ball
	// Pointers has one entry per view present, sorted by View: the views
	// draw each one's pointer, where its broadcasts say it is, in its
	// color.
	Pointers []Pointer
	// Steps counts simulation steps.
	Steps int64
	// Pushes counts the pushes applied.
	Pushes int64
}

// Ball is one ball.
type Ball struct {
	Position dmath.Vec2
	// Velocity is in world units per second.
	Velocity dmath.Vec2
	Radius   float64
	Color    int
}

// Pointer is a view's pointer: whose it is and its color. Its position is
// not replicated: the view broadcasts it (PointerMove).
type Pointer struct {
	View  string
	Color int
}

// Push is the data of EventPush.
type Push struct {
	// Ball is the index of the ball to push with Impulse, or NoBall: then
	// every ball within PushRadius of At is pushed away from At, and also
	// gets Impulse.
	Ball int `cbor:"ball"`
	// At is the point of a point push, in world units.
	At dmath.Vec2 `cbor:"at"`
	// Impulse is a velocity change, in world units per second.
	Impulse dmath.Vec2 `cbor:"impulse"`
}

// PointerMove is what a view broadcasts under BroadcastPointer: where its
// pointer is, in world units, and whether it is in the box.
type PointerMove struct {
	At     dmath.Vec2 `cbor:"at"`
	Active bool       `cbor:"active"`
}

// EncodePointer encodes a PointerMove for Session.Broadcast.
func EncodePointer(move PointerMove) ([]byte, error) { return island.Encode(move) }

// DecodePointer decodes the data of a BroadcastPointer broadcast, with
// the point moved into the box. It refuses data that does not decode and
// points that are not finite (any view may send anything).
func DecodePointer(data []byte) (PointerMove, bool) {
	var move PointerMove
	if island.Decode(data, &move) != nil || !finite(move.At) {
		return PointerMove{}, false
	}
	move.At = dmath.Vec2{
		X: dmath.Max(0, dmath.Min(WorldWidth, move.At.X)),
		Y: dmath.Max(0, dmath.Min(WorldHeight, move.At.Y)),
	}
	return move, true
}

// App is the balls application.
var App = island.App[Model]{
	ID:                 AppID,
	Version:            Version,
	SnapshotIntervalMs: SnapshotIntervalMs,
	Init:               initialize,
	Events: map[string]island.Handler[Model]{
		EventStep:            step,
		EventPush:            push,
		island.EventViewJoin: viewJoin,
		island.EventViewExit: viewExit,
	},
}

// initialize places BallCount balls at random positions with random
// velocities and starts the simulation.
func initialize(m *Model, ctx *island.Context) {
	m.Size = dmath.Vec2{X: WorldWidth, Y: WorldHeight}
	for i := 0; i < BallCount; i++ {
		radius := between(ctx, BallRadiusMin, BallRadiusMax)
		x := between(ctx, radius, m.Size.X-radius)
		y := between(ctx, radius, m.Size.Y-radius)
		angle := between(ctx, 0, 2*math.Pi)
		speed := between(ctx, SpeedInitialMin, SpeedInitialMax)
		m.Balls = append(m.Balls, Ball{
			Position: dmath.Vec2{X: x, Y: y},
			Velocity: dmath.Vec2{X: dmath.Cos(angle), Y: dmath.Sin(angle)}.Scale(speed),
			Radius:   radius,
			Color:    i % ColorCount,
		})
	}
	ctx.Future(StepMs, EventStep, nil)
}

// between returns a random number in [low, high).
func between(ctx *island.Context, low, high float64) float64 {
	return low + float64(ctx.Float64()*(high-low))
}

// step moves every ball by one step, bounces it off the walls and off the
// other balls, and schedules the next step.
func step(m *Model, ctx *island.Context, _ island.Event) {
	m.Step()
	ctx.Future(StepMs, EventStep, nil)
}

// Step advances the simulation by StepMs (exported for tests and tools).
func (m *Model) Step() {
	const seconds = StepMs / 1000.0
	for i := range m.Balls {
		ball := &m.Balls[i]
		ball.Velocity = ball.Velocity.Scale(DampingPerStep)
		ball.Position = ball.Position.Add(ball.Velocity.Scale(seconds))
		bounceOffWalls(ball, m.Size)
	}
	// Pairs in index order: the same order in every replica.
	for i := range m.Balls {
		for j := i + 1; j < len(m.Balls); j++ {
			collide(&m.Balls[i], &m.Balls[j])
		}
	}
	m.Steps++
}

// bounceOffWalls keeps the ball inside the box, reflecting its velocity
// at the wall it crossed.
func bounceOffWalls(ball *Ball, size dmath.Vec2) {
	if ball.Position.X < ball.Radius {
		ball.Position.X = ball.Radius
		ball.Velocity.X = dmath.Abs(ball.Velocity.X)
	}
	if ball.Position.X > size.X-ball.Radius {
		ball.Position.X = size.X - ball.Radius
		ball.Velocity.X = -dmath.Abs(ball.Velocity.X)
	}
	if ball.Position.Y < ball.Radius {
		ball.Position.Y = ball.Radius
		ball.Velocity.Y = dmath.Abs(ball.Velocity.Y)
	}
	if ball.Position.Y > size.Y-ball.Radius {
		ball.Position.Y = size.Y - ball.Radius
		ball.Velocity.Y = -dmath.Abs(ball.Velocity.Y)
	}
}

// collide separates two overlapping balls and, if they approach each
// other, exchanges momentum along the line between their centers (an
// elastic collision; a ball's mass is its radius squared).
func collide(a, b *Ball) {
	delta := b.Position.Sub(a.Position)
	distance := delta.Length()
	overlap := a.Radius + b.Radius - distance
	if overlap <= 0 || distance == 0 {
		return
	}
	normal := delta.Scale(1 / distance)
	massA, massB := float64(a.Radius*a.Radius), float64(b.Radius*b.Radius)
	total := massA + massB
	a.Position = a.Position.Sub(normal.Scale(float64(overlap*massB) / total))
	b.Position = b.Position.Add(normal.Scale(float64(overlap*massA) / total))
	approach := a.Velocity.Sub(b.Velocity).Dot(normal)
	if approach <= 0 {
		return
	}
	a.Velocity = a.Velocity.Sub(normal.Scale(float64(2*approach*massB) / total))
	b.Velocity = b.Velocity.Add(normal.Scale(float64(2*approach*massA) / total))
}

// push applies a view's Push. Data that does not decode or is not finite
// is ignored (every replica ignores it alike).
func push(m *Model, _ *island.Context, event island.Event) {
	var p Push
	if event.Decode(&p) != nil || !finite(p.At) || !finite(p.Impulse) {
		return
	}
	impulse := limit(p.Impulse, SpeedMax)
	switch {
	case p.Ball >= 0 && p.Ball < len(m.Balls):
		ball := &m.Balls[p.Ball]
		ball.Velocity = limit(ball.Velocity.Add(impulse), SpeedMax)
	case p.Ball == NoBall:
		for i := range m.Balls {
			ball := &m.Balls[i]
			away := ball.Position.Sub(p.At)
			distance := away.Length()
			if distance >= PushRadius {
				continue
			}
			strength := float64(PushSpeed*(PushRadius-distance)) / PushRadius
			kick := away.Normalize().Scale(strength).Add(impulse)
			ball.Velocity = limit(ball.Velocity.Add(kick), SpeedMax)
		}
	default:
		return
	}
	m.Pushes++
}

// viewJoin adds the view's pointer.
func viewJoin(m *Model, ctx *island.Context, event island.Event) {
	i, found := m.pointerIndex(event.View)
	if found || len(m.Pointers) >= PointersMax {
		return
	}
	m.Pointers = slices.Insert(m.Pointers, i, Pointer{View: event.View, Color: ctx.Intn(ColorCount)})
}

// viewExit removes the view's pointer.
func viewExit(m *Model, _ *island.Context, event island.Event) {
	if i, found := m.pointerIndex(event.View); found {
		m.Pointers = slices.Delete(m.Pointers, i, i+1)
	}
}

// pointerIndex finds view's pointer, or where it would be inserted.
func (m *Model) pointerIndex(view string) (int, bool) {
	return slices.BinarySearchFunc(m.Pointers, view, func(p Pointer, view string) int {
		return strings.Compare(p.View, view)
	})
}

// Pointer returns view's pointer.
func (m *Model) Pointer(view string) (Pointer, bool) {
	if i, found := m.pointerIndex(view); found {
		return m.Pointers[i], true
	}
	return Pointer{}, false
}

// BallAt returns the index of the ball containing point, or NoBall.
func (m *Model) BallAt(point dmath.Vec2) int {
	for i := len(m.Balls) - 1; i >= 0; i-- { // the topmost (last drawn) first
		if point.Sub(m.Balls[i].Position).Length() <= m.Balls[i].Radius {
			return i
		}
	}
	return NoBall
}

// limit scales v down to length at most maxLength.
func limit(v dmath.Vec2, maxLength float64) dmath.Vec2 {
	length := v.Length()
	if length <= maxLength {
		return v
	}
	return v.Scale(maxLength / length)
}

func finite(v dmath.Vec2) bool {
	return !dmath.IsNaN(v.X) && !dmath.IsNaN(v.Y) && !dmath.IsInf(v.X, 0) && !dmath.IsInf(v.Y, 0)
}
