//go:build js && wasm

package main

import (
	"syscall/js"
	"time"

	"github.com/metronome-sync/metronome/dmath"
	"github.com/metronome-sync/metronome/examples/balls/model"
)

const (
	// PointerPublishesPerSecond bounds the pointer events a view publishes.
	PointerPublishesPerSecond = 20
	// pokeSpeed is the velocity change of a click on a ball, in world units
	// per second, away from the click point.
	pokeSpeed = 600.0
)

// pointerState is the local pointer, written by mouse callbacks and
// published by pointerLoop.
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
		go func() {
			if err := v.pushAt(at.X, at.Y); err != nil {
				js.Global().Get("console").Call("warn", "metronome: push: "+err.Error())
			}
		}()
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

// pointerLoop publishes the local pointer when it changed, at most
// PointerPublishesPerSecond times a second.
func (v *view) pointerLoop() {
	ticker := time.NewTicker(time.Second / PointerPublishesPerSecond)
	defer ticker.Stop()
	session := v.session.Load()
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
		if !state.changed || (!state.active && !state.published) {
			continue
		}
		if err := session.Publish(model.EventPointer, model.PointerMove{At: state.at, Active: state.active}); err != nil {
			continue
		}
		v.mu.Lock()
		v.pointer.published = state.active
		v.mu.Unlock()
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
