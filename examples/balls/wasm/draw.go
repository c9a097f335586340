//go:build js && wasm

package main

import (
	"math"
	"strconv"
	"syscall/js"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/examples/balls/model"
)

// extrapolateMsMax bounds how far ahead of the model the view draws balls
// (the model steps every model.StepMs, the reflector ticks every 100 ms;
// drawing each ball where its velocity takes it in between makes the
// motion smooth at any frame rate). The view's arithmetic is local: it
// does not need to be deterministic.
const extrapolateMsMax = 150

// palette has model.ColorCount colors.
var palette = [model.ColorCount]string{
	"#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfa600",
}

// frame is what one frame draws, copied out of the model, with the
// pointers placed by their views' broadcasts.
type frame struct {
	size     [2]float64
	balls    []model.Ball
	roster   []model.Pointer
	pointers []placedPointer
	now      int64
	steps    int64
	pushes   int64
}

// renderLoop draws a frame on every animation frame. The
// requestAnimationFrame callback only signals; reading the model (which
// waits for the session goroutine) and drawing happen here.
func (v *view) renderLoop() {
	type tick struct {
		at     float64
		number int // the animation frames begun so far, this one included
	}
	ticks := make(chan tick, 1)
	onFrame := js.FuncOf(func(_ js.Value, args []js.Value) any {
		v.mu.Lock()
		v.animationFrames++
		number := v.animationFrames
		v.mu.Unlock()
		select {
		case ticks <- tick{at: args[0].Float(), number: number}:
		default:
		}
		return nil
	})
	requestFrame := js.Global().Get("requestAnimationFrame")
	var current frame
	for {
		requestFrame.Invoke(onFrame)
		next := <-ticks
		at := next.at
		session := v.session.Load()
		v.publishClicks()
		err := session.Read(func(m *model.Model, now int64) {
			current.size = [2]float64{m.Size.X, m.Size.Y}
			current.balls = append(current.balls[:0], m.Balls...)
			current.roster = append(current.roster[:0], m.Pointers...)
			current.now, current.steps, current.pushes = now, m.Steps, m.Pushes
		})
		if err != nil {
			return // the session ended
		}
		current.pointers = v.place(current.roster, session.ViewID(), current.pointers)
		v.render(&current, at, session.ViewID())
		v.probeClick(session, current.pushes, next.number)
	}
}

// probeClick completes the click probe once a drawn frame shows more
// pushes than before the click, with the confirmed count of that moment.
func (v *view) probeClick(session *client.Session[model.Model], pushes int64, animationFrame int) {
	v.mu.Lock()
	v.pushes = pushes
	waiting := v.click.waiting && pushes > v.click.Before
	v.mu.Unlock()
	if !waiting {
		return
	}
	var confirmed int64
	session.ReadConfirmed(func(m *model.Model, _ int64) { confirmed = m.Pushes })
	v.mu.Lock()
	v.click.waiting = false
	v.click.Shown, v.click.Pushes, v.click.Confirmed = animationFrame, pushes, confirmed
	v.mu.Unlock()
}

// render draws f; at is the frame's timestamp (performance.now()).
func (v *view) render(f *frame, at float64, self string) {
	if f.size[0] == 0 {
		return
	}
	v.mu.Lock()
	v.frames++
	if f.now != v.lastModelNow {
		v.lastModelNow, v.lastModelAt = f.now, at
	}
	sinceModel := at - v.lastModelAt
	v.mu.Unlock()
	// The balls are where the last step left them, at session time
	// steps×StepMs; the session is (now - that) + the wall time since the
	// model last advanced further.
	ahead := math.Min(float64(f.now-f.steps*model.StepMs)+sinceModel, extrapolateMsMax) / 1000
	ahead = math.Max(ahead, 0)

	canvas, draw := v.canvas, v.draw
	// Match the canvas' pixels to its displayed size.
	ratio := js.Global().Get("devicePixelRatio").Float()
	width := canvas.Get("clientWidth").Float() * ratio
	height := canvas.Get("clientHeight").Float() * ratio
	if width < 1 || height < 1 {
		return
	}
	if canvas.Get("width").Float() != width || canvas.Get("height").Float() != height {
		canvas.Set("width", width)
		canvas.Set("height", height)
	}
	scale := math.Min(width/f.size[0], height/f.size[1])
	draw.Call("setTransform", 1, 0, 0, 1, 0, 0)
	draw.Call("clearRect", 0, 0, width, height)
	draw.Call("setTransform", scale, 0, 0, scale, 0, 0)
	draw.Set("fillStyle", "#f7f7f2")
	draw.Call("fillRect", 0, 0, f.size[0], f.size[1])

	for _, ball := range f.balls {
		x := clamp(ball.Position.X+ball.Velocity.X*ahead, ball.Radius, f.size[0]-ball.Radius)
		y := clamp(ball.Position.Y+ball.Velocity.Y*ahead, ball.Radius, f.size[1]-ball.Radius)
		draw.Set("fillStyle", palette[ball.Color%model.ColorCount])
		draw.Call("beginPath")
		draw.Call("arc", x, y, ball.Radius, 0, 2*math.Pi)
		draw.Call("fill")
	}

	draw.Set("font", "12px sans-serif")
	for _, p := range f.pointers {
		if p.View == self || !p.Active {
			continue
		}
		color := palette[p.Color%model.ColorCount]
		draw.Set("strokeStyle", color)
		draw.Set("lineWidth", 2)
		draw.Call("beginPath")
		draw.Call("moveTo", p.At.X-8, p.At.Y)
		draw.Call("lineTo", p.At.X+8, p.At.Y)
		draw.Call("moveTo", p.At.X, p.At.Y-8)
		draw.Call("lineTo", p.At.X, p.At.Y+8)
		draw.Call("stroke")
		draw.Set("fillStyle", color)
		draw.Call("fillText", p.View[:min(len(p.View), 6)], p.At.X+6, p.At.Y-6)
	}
	draw.Set("fillStyle", "#666")
	draw.Call("fillText", "t="+strconv.FormatInt(f.now/1000, 10)+"s · "+strconv.Itoa(len(f.pointers))+" views", 8, f.size[1]-8)
}

func clamp(x, low, high float64) float64 { return math.Max(low, math.Min(high, x)) }
