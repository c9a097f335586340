//go:build js && wasm

// Command wasm is the browser view of the balls example, compiled with
// GOOS=js GOARCH=wasm and loaded by examples/balls/web/index.html.
//
// It joins the session named by the page's ?room= (password ?pw=, default
// "demo") through the reflector at ws(s)://<page host>/reflector, draws the
// replicated model on a <canvas> every animation frame, publishes a push on
// every click, broadcasts the pointer position on mouse moves (at most
// PointerBroadcastsPerSecond, on the ephemeral channel: view to view, not
// through the model), and shows the other views' pointers.
//
// For tests and the curious it sets window.metronome:
//
//	ready       true once joined
//	error       why joining or the session failed, or null
//	viewId, sessionId, room
//	state()     Promise<{time, seq, hash, pushes, confirmedPushes, steps, balls, pointers, views, frames, divergences}>
//	            (pushes as drawn, with this view's unconfirmed ones when speculating)
//	            (pointers: [{view, active, x, y}], one per view, placed by its broadcasts)
//	lastVote()  Promise<{time, hash}>: the latest snapshot vote (hash "" before it)
//	stats()     Promise<{snapshotURL, fromSnapshot, connects, syncs, resets, ...}>
//	push(x, y)  Promise: what a click at world point (x, y) does
//	lastClick() {frame, shown, before, pushes, confirmed}: the frames drawn
//	            at the latest mousedown, the frame that first showed its
//	            push (0: not yet), the pushes before, then, and confirmed then
//	leave()     Promise: leaves the session
//
// Blocking SDK calls (Join, Read, Publish, State) run on goroutines, never
// inside a JavaScript callback: a callback that blocks would stop the
// browser's event loop, which the WebSocket and fetch underneath need.
package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"syscall/js"
	"time"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/dmath"
	"github.com/metronome-sync/metronome/examples/balls/model"
)

const (
	// joinTimeout bounds joining the session.
	joinTimeout = 60 * time.Second
	// defaultRoom and defaultPassword apply when the URL names none.
	defaultRoom     = "lobby"
	defaultPassword = "demo"
	// speculationBudget bounds the time one frame spends rebuilding the
	// speculative model (client.Options.SpeculationBudget).
	speculationBudget = 12 * time.Millisecond
)

// view is the page's state. Fields written by callbacks and read by
// goroutines are guarded by mu.
type view struct {
	session atomic.Pointer[client.Session[model.Model]]
	api     js.Value
	canvas  js.Value
	draw    js.Value // the canvas' 2D context
	status  js.Value

	mu      sync.Mutex
	pointer pointerState
	// pointers holds the other views' pointers, from their broadcasts.
	pointers     map[string]model.PointerMove
	divergences  int
	frames       int
	lastModelAt  float64 // performance.now() when the model time last changed
	lastModelNow int64
	// pushes is the push count of the last frame drawn; click follows the
	// latest click from the mousedown to the first frame that shows it.
	pushes int64
	click  clickProbe
	// clicks are the clicks (world points) since the last frame.
	clicks []dmath.Vec2
	// animationFrames counts requestAnimationFrame callbacks.
	animationFrames int
}

// clickProbe records when a click showed: Frame is the animation frames
// begun when the mousedown arrived, Shown the animation frame that first
// showed more pushes than before it (0: not yet), with the speculative
// and the confirmed push counts of that frame. With speculation, Shown is Frame+1 (the
// next frame) and Confirmed < Pushes: the push shows before the
// reflector's round trip.
type clickProbe struct {
	Frame, Shown              int
	Before, Pushes, Confirmed int64
	waiting                   bool
}

func main() {
	global := js.Global()
	document := global.Get("document")
	location := global.Get("location")
	params := global.Get("URLSearchParams").New(location.Get("search"))
	room := param(params, "room", defaultRoom)
	password := param(params, "pw", defaultPassword)
	// Speculation is on unless ?speculate=0: a push shows in the next
	// frame, before its round trip to the reflector (docs/sdk.md,
	// "Speculation").
	speculate := param(params, "speculate", "1") != "0"
	scheme := "ws"
	if location.Get("protocol").String() == "https:" {
		scheme = "wss"
	}
	reflector := scheme + "://" + location.Get("host").String() + "/reflector"

	v := &view{
		api:      global.Get("metronome"),
		canvas:   document.Call("getElementById", "balls"),
		status:   document.Call("getElementById", "status"),
		pointers: map[string]model.PointerMove{},
	}
	if v.api.IsUndefined() || v.api.IsNull() {
		v.api = global.Get("Object").New()
		global.Set("metronome", v.api)
	}
	v.draw = v.canvas.Call("getContext", "2d")
	v.exposeAPI(room)
	v.setStatus("joining room “" + room + "” …")

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	session, err := client.Join(ctx, model.App, client.Options{
		Reflector: reflector, Name: room, Password: password, Logger: logger,
		OnDivergence: v.onDivergence, OnEphemeral: v.onEphemeral, Speculate: speculate,
		// The first copy of the model in WebAssembly takes about 8 ms
		// (measured in headless Chromium); 12 ms still leaves a 60 Hz
		// frame time to draw.
		SpeculationBudget: speculationBudget,
	})
	cancel()
	if err != nil {
		v.fail("joining room “" + room + "” failed: " + err.Error())
		select {} // keep the API answering (with the error)
	}
	v.session.Store(session)
	v.api.Set("viewId", session.ViewID())
	v.api.Set("sessionId", session.ID())
	v.listen()
	go v.renderLoop()
	go v.pointerLoop()
	v.api.Set("ready", true)
	v.setStatus("room “" + room + "” · view " + session.ViewID())

	<-session.Done()
	if err := session.Err(); err != nil {
		v.fail("the session ended: " + err.Error())
	} else {
		v.api.Set("ready", false)
		v.setStatus("left the session")
	}
	select {}
}

func param(params js.Value, name, fallback string) string {
	if value := params.Call("get", name); value.Truthy() {
		return value.String()
	}
	return fallback
}

func (v *view) setStatus(text string) { v.status.Set("textContent", text) }

func (v *view) fail(message string) {
	v.api.Set("ready", false)
	v.api.Set("error", message)
	v.setStatus(message)
	v.status.Get("classList").Call("add", "error")
}

// onDivergence runs on the session's callback goroutine.
func (v *view) onDivergence(d client.Divergence) {
	v.mu.Lock()
	v.divergences++
	v.mu.Unlock()
	js.Global().Get("console").Call("error", "metronome: "+d.Error())
}

// joined returns the session, or an error before joining.
func (v *view) joined() (*client.Session[model.Model], error) {
	if s := v.session.Load(); s != nil {
		return s, nil
	}
	return nil, errors.New("not joined yet")
}

// exposeAPI fills window.metronome.
func (v *view) exposeAPI(room string) {
	v.api.Set("ready", false)
	v.api.Set("error", js.Null())
	v.api.Set("room", room)
	v.api.Set("state", js.FuncOf(func(js.Value, []js.Value) any {
		return promise(func() (any, error) {
			session, err := v.joined()
			if err != nil {
				return nil, err
			}
			now, seq, hash, err := session.State()
			if err != nil {
				return nil, err
			}
			result := map[string]any{"time": now, "seq": seq, "hash": hash}
			if err := session.ReadConfirmed(func(m *model.Model, _ int64) { result["confirmedPushes"] = m.Pushes }); err != nil {
				return nil, err
			}
			var roster []model.Pointer
			err = session.Read(func(m *model.Model, _ int64) {
				roster = append(roster, m.Pointers...)
				result["pushes"] = m.Pushes
				result["steps"] = m.Steps
				result["balls"] = len(m.Balls)
				result["views"] = len(m.Pointers)
			})
			var pointers []any
			for _, p := range v.place(roster, session.ViewID(), nil) {
				pointers = append(pointers, map[string]any{"view": p.View, "active": p.Active, "x": p.At.X, "y": p.At.Y})
			}
			result["pointers"] = pointers
			v.mu.Lock()
			result["frames"] = v.frames
			result["divergences"] = v.divergences
			v.mu.Unlock()
			return result, err
		})
	}))
	v.api.Set("lastVote", js.FuncOf(func(js.Value, []js.Value) any {
		return promise(func() (any, error) {
			session, err := v.joined()
			if err != nil {
				return nil, err
			}
			time, hash := session.LastVote()
			return map[string]any{"time": time, "hash": hash}, nil
		})
	}))
	v.api.Set("stats", js.FuncOf(func(js.Value, []js.Value) any {
		return promise(func() (any, error) {
			session, err := v.joined()
			if err != nil {
				return nil, err
			}
			stats := session.Stats()
			speculation := stats.Speculation
			return map[string]any{
				"speculated": speculation.Speculated, "speculationKept": speculation.Kept, "speculationPending": speculation.Pending,
				"speculationRebuilds": speculation.Rebuilds, "speculationRollbacks": speculation.Rollbacks,
				"speculationRebuildNs": speculation.RebuildNs, "speculationOverBudget": speculation.OverBudget,
				"snapshotURL": stats.SnapshotURL, "fromSnapshot": stats.SnapshotURL != "",
				"connects": stats.Connects, "syncs": stats.Syncs, "seamlessRejoins": stats.SeamlessRejoins,
				"resets": stats.Resets, "gaps": stats.Gaps, "duplicates": stats.Duplicates,
				"inputsSent": stats.InputsSent, "inputsResent": stats.InputsResent,
				"snapshotsUploaded": stats.SnapshotsUploaded, "snapshotUploadsFailed": stats.SnapshotUploadsFailed,
			}, nil
		})
	}))
	v.api.Set("push", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) < 2 {
			return promise(func() (any, error) { return nil, errors.New("push(x, y) needs two numbers") })
		}
		x, y := args[0].Float(), args[1].Float()
		return promise(func() (any, error) { return true, v.pushAt(x, y) })
	}))
	v.api.Set("lastClick", js.FuncOf(func(js.Value, []js.Value) any {
		v.mu.Lock()
		defer v.mu.Unlock()
		c := v.click
		return map[string]any{"frame": c.Frame, "shown": c.Shown, "before": c.Before, "pushes": c.Pushes, "confirmed": c.Confirmed}
	}))
	v.api.Set("leave", js.FuncOf(func(js.Value, []js.Value) any {
		return promise(func() (any, error) {
			session, err := v.joined()
			if err != nil {
				return nil, err
			}
			return true, session.Leave()
		})
	}))
}

// promise returns a JavaScript Promise settled with work's result, which
// runs on a new goroutine (it may block).
func promise(work func() (any, error)) js.Value {
	var executor js.Func
	executor = js.FuncOf(func(_ js.Value, args []js.Value) any {
		resolve, reject := args[0], args[1]
		go func() {
			defer executor.Release()
			result, err := work()
			if err != nil {
				reject.Invoke(js.Global().Get("Error").New(err.Error()))
				return
			}
			resolve.Invoke(js.ValueOf(result))
		}()
		return nil
	})
	return js.Global().Get("Promise").New(executor)
}
