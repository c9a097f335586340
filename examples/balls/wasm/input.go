//go:build js && wasm

package main

import (
	"slices"
	"strings"
	"syscall/js"
	"time"

	"github.com/metronome-sync/metronome/dmath"
	"github.com/metronome-sync/metronome/examples/balls/model"
)

const (
	// PointerBroadcastsPerSecond bounds how often a view broadcasts its
	// pointer (the SDK paces broadcasts at 30 a second anyway, keeping the
	// latest).
	PointerBroadcastsPerSecond = 30
	// pointerRepeatInterval: a pointer in the box that does not move is
	// broadcast again this often, so that views that join later (and
	// views that missed a broadcast) see where it is: broadcasts are not
	// replayed.
	pointerRepeatInterval = time.Second
	// pokeSpeed is the velocity change of a click on a ball, in world units
	// per second, away from the click point.
	pokeSpeed = 600.0
)

// pointerState is the local pointer, written by mouse callbacks and
// broadcast by pointerLoop.
type pointerState struct {
	at        dmath.Vec2
	active    bool
	changed   bool
	published bool
}

// listen registers the mouse handlers. They only record and start
// goroutines: nothing in a callback blocks.
func (v *view) listen() {
	v.canvas.Call("addEventListener", "mousemove", js.FuncOf(func(_ js.Value, args []js.Value) any {
		at := v.worldPoint(args[0])
		v.mu.Lock()
		v.pointer.at, v.pointer.active, v.pointer.changed = at, true, true
		v.mu.Unlock()
		return nil
	}))
	v.canvas.Call("addEventListener", "mouseleave", js.FuncOf(func(js.Value, []js.Value) any {
		v.mu.Lock()
		v.pointer.active, v.pointer.changed = false, true
		v.mu.Unlock()
		return nil
	}))
	v.canvas.Call("addEventListener", "mousedown", js.FuncOf(func(_ js.Value, args []js.Value) any {
		at := v.worldPoint(args[0])
		// The render loop publishes the click at the start of the next
		// frame, then draws it: with speculation that frame shows the push.
		v.mu.Lock()
		v.click = clickProbe{Frame: v.animationFrames, Before: v.pushes, waiting: true}
		if len(v.clicks) < clicksQueuedMax {
			v.clicks = append(v.clicks, at)
		}
		v.mu.Unlock()
		return nil
	}))
}

// worldPoint converts a mouse event's position to world units.
func (v *view) worldPoint(event js.Value) dmath.Vec2 {
	width := v.canvas.Get("clientWidth").Float()
	height := v.canvas.Get("clientHeight").Float()
	scale := min(width/model.WorldWidth, height/model.WorldHeight)
	if scale <= 0 {
		return dmath.Vec2{}
	}
	return dmath.Vec2{X: event.Get("offsetX").Float() / scale, Y: event.Get("offsetY").Float() / scale}
}

// pointerLoop broadcasts the local pointer to the other views (the
// ephemeral channel: not through the model) when it changed, at most
// PointerBroadcastsPerSecond times a second, and again every
// pointerRepeatInterval while it is in the box.
func (v *view) pointerLoop() {
	ticker := time.NewTicker(time.Second / PointerBroadcastsPerSecond)
	defer ticker.Stop()
	session := v.session.Load()
	var lastSent time.Time
	for {
		select {
		case <-ticker.C:
		case <-session.Done():
			return
		}
		v.mu.Lock()
		state := v.pointer
		v.pointer.changed = false
		v.mu.Unlock()
		repeat := state.published && time.Since(lastSent) >= pointerRepeatInterval
		if !(state.changed || repeat) || (!state.active && !state.published) {
			continue
		}
		data, err := model.EncodePointer(model.PointerMove{At: state.at, Active: state.active})
		if err != nil || session.Broadcast(model.BroadcastPointer, data) != nil {
			continue
		}
		lastSent = time.Now()
		v.mu.Lock()
		v.pointer.published = state.active
		v.mu.Unlock()
	}
}

// onEphemeral runs on the session's callback goroutine with another
// view's broadcast: its pointer.
func (v *view) onEphemeral(from, name string, data []byte) {
	if name != model.BroadcastPointer {
		return
	}
	move, ok := model.DecodePointer(data)
	if !ok {
		return
	}
	v.mu.Lock()
	v.pointers[from] = move
	v.mu.Unlock()
}

// placedPointer is a pointer of the model (whose, which color) where its
// view's broadcasts put it.
type placedPointer struct {
	model.Pointer
	model.PointerMove
}

// place puts the model's pointers where their views last said they are:
// this view's own where the mouse is, the others' from their broadcasts
// (inactive until one arrives). It forgets the broadcasts of views that
// are gone.
func (v *view) place(pointers []model.Pointer, self string, into []placedPointer) []placedPointer {
	into = into[:0]
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, p := range pointers {
		move := v.pointers[p.View]
		if p.View == self {
			move = model.PointerMove{At: v.pointer.at, Active: v.pointer.active}
		}
		into = append(into, placedPointer{Pointer: p, PointerMove: move})
	}
	for view := range v.pointers {
		if _, present := slices.BinarySearchFunc(pointers, view, func(p model.Pointer, view string) int {
			return strings.Compare(p.View, view)
		}); !present {
			delete(v.pointers, view)
		}
	}
	return into
}

// clicksQueuedMax bounds the clicks waiting for the next frame (more in
// one frame are dropped).
const clicksQueuedMax = 16

// publishClicks publishes the clicks since the last frame (on the render
// goroutine, which may block).
func (v *view) publishClicks() {
	v.mu.Lock()
	clicks := v.clicks
	v.clicks = nil
	v.mu.Unlock()
	for _, at := range clicks {
		if err := v.pushAt(at.X, at.Y); err != nil {
			js.Global().Get("console").Call("warn", "metronome: push: "+err.Error())
		}
	}
}

// pushAt publishes what a click at world point (x, y) does: a click on a
// ball pokes that ball away from the click point, a click elsewhere pushes
// the balls around the point away from it.
func (v *view) pushAt(x, y float64) error {
	session, err := v.joined()
	if err != nil {
		return err
	}
	at := dmath.Vec2{X: x, Y: y}
	push := model.Push{Ball: model.NoBall, At: at}
	err = session.Read(func(m *model.Model, _ int64) {
		if i := m.BallAt(at); i != model.NoBall {
			direction := m.Balls[i].Position.Sub(at).Normalize()
			if direction == (dmath.Vec2{}) {
				direction = dmath.Vec2{X: 0, Y: -1}
			}
			push = model.Push{Ball: i, At: at, Impulse: direction.Scale(pokeSpeed)}
		}
	})
	if err != nil {
		return err
	}
	return session.Publish(model.EventPush, push)
}
