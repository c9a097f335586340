// Package island is the replicated computation of the Go SDK: the runtime
// in which a session's model lives. Every client of a session runs one
// island; given the same snapshot and the same reflected messages, every
// island computes the same state, bit for bit, on every platform.
//
// A model is a plain Go value (a struct with exported fields, encodable as
// CBOR) changed only by its event handlers. Handlers run for events that
// views publish (they travel through the reflector, so every island sees
// them in the same order at the same session time), for events the model
// publishes to itself, and for future messages it schedules. Inside a
// handler the Context gives session time, a seeded random source,
// Future, Publish (model to model) and Emit (model to the local views).
//
// The island is pure like the reflector core: no I/O, clock, goroutines or
// global randomness. The session shell (package client) decrypts payloads,
// feeds messages in, and executes the Effects: events for views, snapshot
// votes, snapshot uploads, divergence reports.
//
// Snapshots are the Core Deterministic CBOR encoding (RFC 8949 §4.2) of
// the island's state — model, time, sequence number, random state, future
// messages, the views present and the inputs applied per view — so equal
// states encode to equal bytes, and the SHA-256 of a snapshot is the state
// hash that islands vote with to detect divergence.
//
// # Determinism across platforms
//
// Guaranteed: islands built for amd64 (GOAMD64=v1 or v3), arm64 and wasm
// that start from New or from the same snapshot and are given the same
// Apply and Advance calls reach the same snapshot bytes, hence the same
// Hash, and produce the same effects (Emits, and the hashes in Votes), as
// long as the model keeps the rules below.
//
// Why it holds: the island itself computes with integers, sorted slices
// and a seeded SplitMix64 (Random; Float64 only divides by a power of
// two, which is exact), orders future messages by time and then by
// scheduling order, and sorts whatever it collects from a map before
// using it, so map order reaches neither the state nor the effects.
// Snapshots are Core Deterministic CBOR: map keys are sorted by their
// encoding, so Go's random map order cannot reach the bytes, and floats
// take the shortest form that keeps the value exactly (a restored island
// re-encodes to the same bytes). Every NaN is encoded as the one canonical
// NaN (0x7e00), because 0/0 yields NaNs with different bits on amd64 than
// on arm64 and wasm. The model's part: use package dmath (Sin, Cos,
// Atan2, Exp, Pow, ...) instead of math, whose last bit differs between
// targets; write float64(a*b) + c, so that the compiler cannot fuse a
// multiply-add on arm64 or amd64 v3; never range over a map (range over
// its sorted keys); never convert a float outside an integer's range to
// that integer. metronome vet checks all four rules where it can see them
// (see its doc for what it cannot see).
//
// client/island/internal/crossrun replays a recorded trace of 4,000
// reflected messages through a physics model, with a snapshot and a
// restored second island halfway, and scripts/crosstarget.sh fails unless
// amd64 v1 and v3, arm64 and wasm all print the same state hashes. The
// same run with a single unrounded a*b+c in the model splits amd64 v1 and
// wasm from amd64 v3 and arm64 within 500 messages.
package island

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/fxamacker/cbor/v2"
)

// Limits.
const (
	// PublishDepthMax bounds model-to-model publishes nested inside one
	// another (a publish loop is a bug; it is reported, not run forever).
	PublishDepthMax = 64
	// FuturesMax bounds the future messages a model may have pending.
	FuturesMax = 100_000
	// FutureDelayMaxMs bounds how far ahead a future message may be.
	FutureDelayMaxMs = 365 * 24 * 3600 * 1000
	// SnapshotPollGapMs: islands ignore a snapshot poll less than this much
	// session time after the previous one (docs/protocol.md §9.1). It is a
	// constant, not a setting: which polls count is replicated logic, and
	// replicas configured differently would vote at different times.
	SnapshotPollGapMs = 5000
	// SnapshotIntervalMsMin is the least App.SnapshotIntervalMs (App.Validate
	// rejects less): polls closer together are ignored by the islands
	// (SnapshotPollGapMs) and, like the Croquet client's, debounced by the
	// reflector (link.PollDebounceMs), so a shorter interval could not be
	// honoured. It also bounds what snapshots cost a session: every replica
	// hashes its whole state and one uploads it, per snapshot.
	SnapshotIntervalMsMin = SnapshotPollGapMs
	// SnapshotIntervalMsDefault: session time between snapshots when
	// App.SnapshotIntervalMs is zero.
	SnapshotIntervalMsDefault = 30_000
)

// System events: the model receives them like view events.
const (
	// EventViewJoin: a view joined the session (Event.View).
	EventViewJoin = "view-join"
	// EventViewExit: a view left the session (Event.View).
	EventViewExit = "view-exit"
)

// App describes a shared application: its model type M, how a new
// session's model starts, and the handlers of its events.
type App[M any] struct {
	// ID names the application, e.g. "io.example.balls".
	ID string
	// Version is the model's version: sessions of different versions are
	// different sessions (part of the session id).
	Version string
	// Init sets up the model of a new session.
	Init func(m *M, ctx *Context)
	// Events maps event names to handlers. Events with no handler are
	// ignored.
	Events map[string]Handler[M]
	// SnapshotIntervalMs is the session time between snapshots: 0 for the
	// default (SnapshotIntervalMsDefault, 30 s), otherwise at least
	// SnapshotIntervalMsMin (5 s); Validate rejects other values. At each
	// snapshot the replicas vote their state hashes (so this is also how
	// soon a divergence is detected) and one of them uploads the state
	// that late joiners start from.
	SnapshotIntervalMs int64
}

// Validate reports the first field of the App that cannot work, naming
// the field, the rule and the value. The session shell calls it before
// joining.
func (a App[M]) Validate() error {
	if a.ID == "" {
		return errors.New("island: App.ID is required (it names the application, e.g. \"io.example.balls\")")
	}
	if a.SnapshotIntervalMs != 0 && a.SnapshotIntervalMs < SnapshotIntervalMsMin {
		return fmt.Errorf("island: App.SnapshotIntervalMs is %d ms; it must be 0 (the default, %d ms) or at least %d ms (SnapshotIntervalMsMin): "+
			"replicas and the reflector let through at most one snapshot poll per %d ms",
			a.SnapshotIntervalMs, SnapshotIntervalMsDefault, SnapshotIntervalMsMin, SnapshotPollGapMs)
	}
	return nil
}

// Handler handles one event for the model m.
type Handler[M any] func(m *M, ctx *Context, event Event)

// Event is what a handler receives.
type Event struct {
	Name string
	// View is the view that published the event, or the view that joined
	// or left; empty for events the model published and future messages.
	View string
	// Data is the CBOR encoding of the event's data (nil for none).
	Data []byte
}

// Decode decodes the event's data into v.
func (e Event) Decode(v any) error {
	if e.Data == nil {
		return fmt.Errorf("island: event %q has no data", e.Name)
	}
	return decoding.Unmarshal(e.Data, v)
}

var (
	encoding cbor.EncMode
	decoding cbor.DecMode
)

func init() {
	options := cbor.CoreDetEncOptions()
	options.NaNConvert = cbor.NaNConvert7e00 // one NaN: state hashes agree
	var err error
	if encoding, err = options.EncMode(); err != nil {
		panic(err)
	}
	if decoding, err = (cbor.DecOptions{MaxArrayElements: 1 << 24, MaxMapPairs: 1 << 24}).DecMode(); err != nil {
		panic(err)
	}
}

// Encode returns the deterministic CBOR encoding of v (for event data).
func Encode(v any) ([]byte, error) { return encoding.Marshal(v) }

// state is everything replicated: what a snapshot holds.
type state[M any] struct {
	Model       M                    `cbor:"model"`
	Time        int64                `cbor:"time"`
	Seq         uint32               `cbor:"seq"`
	HasSeq      bool                 `cbor:"hasSeq"`
	Random      uint64               `cbor:"random"`
	Futures     []futureMessage      `cbor:"futures"`
	FutureOrder uint64               `cbor:"futureOrder"`
	Views       map[string]int       `cbor:"views"`
	Inputs      map[string]*InputSet `cbor:"inputs"`
	LastPoll    int64                `cbor:"lastPoll"`
	Duplicates  uint64               `cbor:"duplicates"`
}

type futureMessage struct {
	At    int64  `cbor:"at"`
	Order uint64 `cbor:"order"`
	Name  string `cbor:"name"`
	Data  []byte `cbor:"data"`
}

// InputSet is a set of input numbers (1, 2, 3, ...): all up to
// Watermark, plus Above (sorted). Inputs mostly arrive in order, so it
// stays small. The island keeps one per view to drop re-sent inputs; a
// model may use it too (it encodes as CBOR).
type InputSet struct {
	Watermark uint64   `cbor:"watermark"`
	Above     []uint64 `cbor:"above"`
}

// Has reports whether n is in the set.
func (a *InputSet) Has(n uint64) bool {
	if n <= a.Watermark {
		return true
	}
	_, found := slices.BinarySearch(a.Above, n)
	return found
}

// Add adds n to the set.
func (a *InputSet) Add(n uint64) {
	if a.Has(n) {
		return
	}
	i, _ := slices.BinarySearch(a.Above, n)
	a.Above = slices.Insert(a.Above, i, n)
	for len(a.Above) > 0 && a.Above[0] == a.Watermark+1 {
		a.Watermark++
		a.Above = a.Above[1:]
	}
	if len(a.Above) == 0 {
		a.Above = nil
	}
}

// Island is one replica of a session's computation. It is not safe for
// concurrent use.
type Island[M any] struct {
	app    App[M]
	viewID string // the local view (decides who uploads snapshots)
	state  state[M]
	ctx    Context
	// lastVote is this replica's latest snapshot vote (local, not
	// replicated): every replica votes at the same session time.
	lastVoteTime int64
	lastVoteHash string
	// sinceVote and sinceAgreed are the first messages that reached the
	// model's handlers after this replica's last vote, and after the last
	// point where its state was known to be the session's (its last
	// agreeing vote, the snapshot it was restored from, or the session's
	// start): local, for Divergence.Suspect. nil until such a message.
	sinceVote, sinceAgreed *MessageRef
}

// LastVote returns the session time and state hash of this replica's
// latest snapshot vote ("" before the first). Replicas vote at the same
// session times, so equal LastVotes mean equal states at that time.
func (i *Island[M]) LastVote() (time int64, hash string) { return i.lastVoteTime, i.lastVoteHash }

// New returns the island of a new session: Init has run at time 0.
func New[M any](app App[M], viewID string, out *Effects) *Island[M] {
	i := &Island[M]{app: app, viewID: viewID}
	i.state.Random = 0x6d6574726f6e6f6d // the same seed everywhere: the session's stream
	i.state.Views = map[string]int{}
	i.state.Inputs = map[string]*InputSet{}
	i.ctx = Context{island: i, out: out}
	if app.Init != nil {
		i.call(func() { app.Init(&i.state.Model, &i.ctx) }, out)
	}
	return i
}

// Restore returns an island from a snapshot.
func Restore[M any](app App[M], viewID string, snapshot []byte) (*Island[M], error) {
	i := &Island[M]{app: app, viewID: viewID}
	if err := decoding.Unmarshal(snapshot, &i.state); err != nil {
		return nil, fmt.Errorf("island: snapshot does not decode: %w", err)
	}
	if i.state.Views == nil {
		i.state.Views = map[string]int{}
	}
	if i.state.Inputs == nil {
		i.state.Inputs = map[string]*InputSet{}
	}
	i.ctx = Context{island: i}
	return i, nil
}

// Clone returns an independent copy of the island — model, time, seq,
// random state, futures, views and applied inputs — made by encoding its
// state as a snapshot and decoding it again, so nothing is shared: changes
// to the copy never reach i. Speculation (package client/replica) applies
// this view's unconfirmed inputs to such a copy. The copy reports no votes
// of its own (LastVote is empty).
func (i *Island[M]) Clone() *Island[M] {
	data, _ := i.Snapshot()
	clone, err := Restore(i.app, i.viewID, data)
	if err != nil {
		panic(fmt.Sprintf("island: a snapshot of this island does not restore: %v", err))
	}
	return clone
}

// Model returns the model. Views may read it between calls into the
// island; they must not change it.
func (i *Island[M]) Model() *M { return &i.state.Model }

// Time returns the session time the island reached.
func (i *Island[M]) Time() int64 { return i.state.Time }

// Seq returns the sequence number of the last message applied (ok false
// before the first).
func (i *Island[M]) Seq() (seq uint32, ok bool) { return i.state.Seq, i.state.HasSeq }

// Snapshot returns the encoded state and its hash.
func (i *Island[M]) Snapshot() (data []byte, hash string) {
	data, err := encoding.Marshal(&i.state)
	if err != nil {
		panic(fmt.Sprintf("island: the model does not encode as CBOR: %v", err))
	}
	sum := sha256.Sum256(data)
	return data, hex.EncodeToString(sum[:])
}

// Hash returns the state hash (the SHA-256 of the snapshot).
func (i *Island[M]) Hash() string {
	_, hash := i.Snapshot()
	return hash
}

// WantsSnapshot reports whether enough session time passed since the last
// snapshot poll that a new one is due.
func (i *Island[M]) WantsSnapshot() bool {
	interval := i.app.SnapshotIntervalMs
	if interval <= 0 {
		interval = SnapshotIntervalMsDefault
	}
	return i.state.Time-i.state.LastPoll >= interval
}

// call runs model code, turning a panic into an error effect: every
// replica panics alike, so the state stays the same everywhere.
func (i *Island[M]) call(f func(), out *Effects) {
	defer func() {
		if r := recover(); r != nil {
			out.Errors = append(out.Errors, fmt.Errorf("island: model panicked at time %d: %v", i.state.Time, r))
		}
	}()
	f()
}

// Decode decodes CBOR data (as Encode writes it) into v.
func Decode(data []byte, v any) error { return decoding.Unmarshal(data, v) }
