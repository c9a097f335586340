// Package model is the test model of crossrun: a small physics world that
// uses what real models use — float64 state stepped with dmath (Sin, Cos,
// Atan2, Exp, Sqrt, Pow, Hypot, Vec2), integer counters, maps (encoded in
// key order by the island's deterministic CBOR), the session's random
// source, a future-message loop, model-to-model Publish, Emit, and
// view-join/view-exit. It follows the rules that metronome vet enforces
// (TestModelPassesVet in the parent package runs it): no map ranging,
// every float product rounded with float64(...), no math functions but the
// exact ones.
package model

import (
	"math"
	"slices"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/dmath"
)

// Limits and constants of the world.
const (
	// StepIntervalMs is the session time between physics steps.
	StepIntervalMs = 50
	// WaveIntervalMs is the session time between spawn waves.
	WaveIntervalMs = 2000
	// BodiesMax bounds the bodies in the world (pairwise forces are
	// quadratic).
	BodiesMax = 32
	// WorldRadius is the radius of the circular wall.
	WorldRadius = 100.0
	// GridCellSize is the side of a cell of the paint grid.
	GridCellSize = 10.0
	// gridCells is the number of cells along one side of the paint grid
	// (the grid covers [-WorldRadius, WorldRadius]²).
	gridCells = 20
)

// Body is one moving object.
type Body struct {
	Position dmath.Vec2 `cbor:"p"`
	Velocity dmath.Vec2 `cbor:"v"`
	Angle    float64    `cbor:"a"`
	Spin     float64    `cbor:"s"`
	Mass     float64    `cbor:"m"`
	Charge   float64    `cbor:"q"`
	Owner    string     `cbor:"o"`
	Born     int64      `cbor:"b"`
	Bounces  int        `cbor:"n"`
}

// Player is a view's presence in the world.
type Player struct {
	Color   int     `cbor:"color"`
	Score   int64   `cbor:"score"`
	Inputs  int     `cbor:"inputs"`
	Heading float64 `cbor:"heading"`
	Present bool    `cbor:"present"`
}

// World is the model.
type World struct {
	Bodies map[int64]*Body `cbor:"bodies"`
	// Order is the ids of Bodies, sorted: the model iterates over it, never
	// over the map.
	Order   []int64            `cbor:"order"`
	NextID  int64              `cbor:"nextId"`
	Players map[string]*Player `cbor:"players"`
	// Grid counts paint per cell "x,y" and color (a map with string keys).
	Grid map[string]map[int]int `cbor:"grid"`
	// Counters.
	Steps      int64   `cbor:"steps"`
	Waves      int64   `cbor:"waves"`
	Collisions int64   `cbor:"collisions"`
	Removed    int64   `cbor:"removed"`
	Energy     float64 `cbor:"energy"`
	Drift      float64 `cbor:"drift"`
	// Checksum mixes random draws and integer events.
	Checksum uint64 `cbor:"checksum"`
	// Recent is a short ring of energies (a slice in the model).
	Recent []float64 `cbor:"recent"`
}

// Inputs: the data of the events views publish.

// Thrust pushes the bodies a player owns.
type Thrust struct {
	Angle float64 `cbor:"angle" json:"angle"`
	Power float64 `cbor:"power" json:"power"`
}

// Spawn adds a body at a position.
type Spawn struct {
	X    float64 `cbor:"x" json:"x"`
	Y    float64 `cbor:"y" json:"y"`
	Mass float64 `cbor:"mass" json:"mass"`
}

// Paint colors the grid cell under a point.
type Paint struct {
	X     float64 `cbor:"x" json:"x"`
	Y     float64 `cbor:"y" json:"y"`
	Color int     `cbor:"color" json:"color"`
}

// Remove removes the body with an id (if it exists).
type Remove struct {
	ID int64 `cbor:"id" json:"id"`
}

// collided is the data of the model-to-model "collided" event.
type collided struct {
	A int64 `cbor:"a"`
	B int64 `cbor:"b"`
}

// App is the application crossrun replays.
var App = island.App[World]{
	ID: "io.metronome.crossrun", Version: "1",
	Init: func(w *World, ctx *island.Context) {
		w.Bodies = map[int64]*Body{}
		w.Players = map[string]*Player{}
		w.Grid = map[string]map[int]int{}
		for range 6 {
			w.add(ctx, "", randomPoint(ctx, 60), 1+float64(ctx.Intn(4)))
		}
		ctx.Future(StepIntervalMs, "step", nil)
		ctx.Future(WaveIntervalMs, "wave", nil)
	},
	Events: map[string]island.Handler[World]{
		"step":               (*World).step,
		"wave":               (*World).wave,
		"collided":           (*World).collided,
		"score":              (*World).score,
		"thrust":             (*World).thrust,
		"spawn":              (*World).spawn,
		"paint":              (*World).paint,
		"remove":             (*World).remove,
		island.EventViewJoin: (*World).join,
		island.EventViewExit: (*World).exit,
	},
}

func randomPoint(ctx *island.Context, radius float64) dmath.Vec2 {
	angle := float64(ctx.Float64() * 2 * math.Pi)
	r := float64(radius * dmath.Sqrt(ctx.Float64()))
	return dmath.Vec2{X: float64(r * dmath.Cos(angle)), Y: float64(r * dmath.Sin(angle))}
}

func (w *World) add(ctx *island.Context, owner string, position dmath.Vec2, mass float64) {
	if len(w.Order) >= BodiesMax {
		return
	}
	w.NextID++
	id := w.NextID
	w.Bodies[id] = &Body{
		Position: position,
		Velocity: dmath.Vec2{X: float64(ctx.Float64()*4) - 2, Y: float64(ctx.Float64()*4) - 2},
		Spin:     float64(ctx.Float64()*0.2) - 0.1,
		Mass:     mass,
		Charge:   float64(ctx.Intn(3) - 1),
		Owner:    owner,
		Born:     ctx.Now(),
	}
	w.Order = append(w.Order, id) // ids only grow: Order stays sorted
}

func (w *World) delete(id int64) {
	if _, ok := w.Bodies[id]; !ok {
		return
	}
	delete(w.Bodies, id)
	if i, found := slices.BinarySearch(w.Order, id); found {
		w.Order = slices.Delete(w.Order, i, i+1)
	}
	w.Removed++
}

// step advances the physics by StepIntervalMs: pairwise forces, wind,
// drag, the wall, and an energy tally, in body-id order.
func (w *World) step(ctx *island.Context, _ island.Event) {
	const dt = StepIntervalMs / 1000.0
	w.Steps++
	t := float64(ctx.Now()) / 1000
	wind := dmath.Vec2{X: dmath.Cos(float64(t * 0.37)), Y: dmath.Sin(float64(t * 0.23))}.Scale(0.4)
	drag := dmath.Exp(-0.05 * dt)
	forces := make([]dmath.Vec2, len(w.Order))
	var contacts []collided // published after the loop: handlers change Order
	for i, a := range w.Order {
		bodyA := w.Bodies[a]
		// a pull to the center that weakens with distance
		r := bodyA.Position.Length()
		pull := float64(dmath.Pow(r+1, -0.75) * 20)
		forces[i] = forces[i].Add(bodyA.Position.Normalize().Scale(-pull)).Add(wind)
		for j := i + 1; j < len(w.Order); j++ {
			b := w.Order[j]
			bodyB := w.Bodies[b]
			d := bodyB.Position.Sub(bodyA.Position)
			distance := dmath.Hypot(d.X, d.Y)
			if distance < 2 {
				contacts = append(contacts, collided{a, b})
				continue
			}
			// a softened Coulomb-like force between charges, plus a weak
			// attraction
			magnitude := float64(float64(bodyA.Charge*bodyB.Charge)*-8)/float64(distance*distance) + float64(0.5/distance)
			f := d.Scale(float64(magnitude / distance))
			forces[i] = forces[i].Add(f)
			forces[j] = forces[j].Sub(f)
		}
	}
	energy := 0.0
	for i, id := range w.Order {
		body := w.Bodies[id]
		acceleration := forces[i].Scale(1 / body.Mass)
		body.Velocity = body.Velocity.Add(acceleration.Scale(dt)).Scale(drag)
		body.Position = body.Position.Add(body.Velocity.Scale(dt))
		body.Angle = dmath.Mod(body.Angle+float64(body.Spin*dt), 2*math.Pi)
		if r := body.Position.Length(); r > WorldRadius {
			// reflect the velocity on the wall's normal
			normal := body.Position.Scale(1 / r)
			body.Velocity = body.Velocity.Sub(normal.Scale(float64(2 * body.Velocity.Dot(normal))))
			body.Position = normal.Scale(WorldRadius - 0.001)
			body.Bounces++
			body.Spin = -body.Spin
		}
		speed := body.Velocity.Length()
		energy += float64(float64(0.5*body.Mass) * float64(speed*speed))
	}
	w.Energy = energy
	for _, contact := range contacts {
		ctx.Publish("collided", contact)
	}
	w.Drift += dmath.Tanh(float64(energy*1e-3)) - 0.5
	if w.Steps%20 == 0 {
		w.Recent = append(w.Recent, energy)
		if len(w.Recent) > 16 {
			w.Recent = slices.Delete(w.Recent, 0, 1)
		}
		ctx.Emit("energy", energy)
	}
	ctx.Future(StepIntervalMs, "step", nil)
}

// wave spawns a few bodies at random places and schedules the next wave.
func (w *World) wave(ctx *island.Context, _ island.Event) {
	w.Waves++
	for range 1 + ctx.Intn(3) {
		w.add(ctx, "", randomPoint(ctx, 80), 0.5+float64(ctx.Float64()*3))
	}
	w.Checksum = w.Checksum*31 + ctx.Random()
	ctx.Future(WaveIntervalMs+int64(ctx.Intn(500)), "wave", nil)
}

// collided merges the lighter body into the heavier one.
func (w *World) collided(ctx *island.Context, e island.Event) {
	var c collided
	if err := e.Decode(&c); err != nil {
		panic(err)
	}
	a, b := w.Bodies[c.A], w.Bodies[c.B]
	if a == nil || b == nil {
		return
	}
	w.Collisions++
	keep, lose, loseID := a, b, c.B
	if b.Mass > a.Mass {
		keep, lose, loseID = b, a, c.A
	}
	total := keep.Mass + lose.Mass
	// momentum is conserved
	keep.Velocity = keep.Velocity.Scale(keep.Mass / total).Add(lose.Velocity.Scale(lose.Mass / total))
	keep.Mass = total
	keep.Charge = dmath.Max(-2, dmath.Min(2, keep.Charge+lose.Charge))
	owner := lose.Owner
	w.delete(loseID)
	if owner != "" {
		ctx.Publish("score", owner)
	}
}

// score credits a player whose body was absorbed (a nested publish).
func (w *World) score(ctx *island.Context, e island.Event) {
	var owner string
	if err := e.Decode(&owner); err != nil {
		panic(err)
	}
	if p := w.Players[owner]; p != nil {
		p.Score++
		w.Checksum = w.Checksum*31 + uint64(p.Score)
	}
}

func (w *World) thrust(ctx *island.Context, e island.Event) {
	var input Thrust
	if err := e.Decode(&input); err != nil {
		panic(err)
	}
	player := w.player(e.View)
	player.Inputs++
	player.Heading = dmath.Atan2(float64(dmath.Sin(input.Angle)+player.Heading), dmath.Cos(input.Angle))
	push := dmath.Vec2{X: dmath.Cos(player.Heading), Y: dmath.Sin(player.Heading)}.Scale(dmath.Sqrt(dmath.Abs(input.Power)))
	for _, id := range w.Order {
		if body := w.Bodies[id]; body.Owner == e.View {
			body.Velocity = body.Velocity.Add(push.Scale(1 / body.Mass))
		}
	}
}

func (w *World) spawn(ctx *island.Context, e island.Event) {
	var input Spawn
	if err := e.Decode(&input); err != nil {
		panic(err)
	}
	w.player(e.View).Inputs++
	position := dmath.Vec2{X: input.X, Y: input.Y}
	if position.Length() > WorldRadius {
		position = position.Normalize().Scale(WorldRadius / 2)
	}
	w.add(ctx, e.View, position, dmath.Max(0.25, dmath.Min(8, input.Mass)))
}

func (w *World) paint(ctx *island.Context, e island.Event) {
	var input Paint
	if err := e.Decode(&input); err != nil {
		panic(err)
	}
	w.player(e.View).Inputs++
	x, y := cell(input.X), cell(input.Y)
	key := itoa(x) + "," + itoa(y)
	cells := w.Grid[key]
	if cells == nil {
		cells = map[int]int{}
		w.Grid[key] = cells
	}
	cells[input.Color%8]++
	w.Checksum = w.Checksum*31 + uint64(x*gridCells+y)
}

// cell returns the grid column or row of a coordinate, clamped to the grid
// (a float is converted to an integer only once it is in range).
func cell(coordinate float64) int {
	c := dmath.Floor((coordinate + WorldRadius) / GridCellSize)
	if !(c >= 0) { // also NaN
		return 0
	}
	if c >= gridCells {
		return gridCells - 1
	}
	return int(c)
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func (w *World) remove(ctx *island.Context, e island.Event) {
	var input Remove
	if err := e.Decode(&input); err != nil {
		panic(err)
	}
	w.player(e.View).Inputs++
	w.delete(input.ID)
}

func (w *World) player(view string) *Player {
	p := w.Players[view]
	if p == nil {
		p = &Player{}
		w.Players[view] = p
	}
	return p
}

func (w *World) join(ctx *island.Context, e island.Event) {
	p := w.player(e.View)
	p.Present = true
	p.Color = ctx.Intn(8)
	w.add(ctx, e.View, randomPoint(ctx, 50), 2)
	ctx.Emit("joined", e.View)
}

// exit removes the bodies of a view that left; its player stays (with its
// score) in case it returns.
func (w *World) exit(ctx *island.Context, e island.Event) {
	w.player(e.View).Present = false
	var owned []int64
	for _, id := range w.Order {
		if w.Bodies[id].Owner == e.View {
			owned = append(owned, id)
		}
	}
	for _, id := range owned {
		w.delete(id)
	}
}
