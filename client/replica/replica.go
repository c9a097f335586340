// Package replica is one client's replica of a session, driven: the
// connection state machine (package client/link) and the model runtime
// (package client/island), and the one implementation of how their effects
// are executed — frames to the transport, deliveries to the model, votes
// and snapshot uploads back through the link, snapshot polls, snapshot
// downloads, self-healing after a lost snapshot vote (heal.go), other
// views' broadcasts to the views (EphemeralObserver), the fatal-error
// path. The Go SDK (package client: goroutines,
// WebSockets, HTTP, encryption) and the simulator (package sim: a virtual
// clock, a faulty network, a file server in memory) are thin shells around
// it, so the simulator tests the client code that ships.
//
// Like the machines it drives, a Replica reads no clock, starts no
// goroutine and does no I/O: time comes in as arguments; the shell's
// Transport, Files and Codec do the rest. Work that may block comes back as
// events: Files.Download is answered by a SnapshotLoaded, Files.Upload by a
// SnapshotStored. A Replica is not safe for concurrent use.
package replica

import (
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/protocol"
)

// Transport is the shell's network: the link's connections.
type Transport interface {
	// Dial opens connection conn; the shell steps link.Opened or
	// link.Closed with the outcome, and link.Received for every frame.
	Dial(conn link.ConnID)
	// Send queues a frame on conn (dropped if conn is gone).
	Send(conn link.ConnID, frame []byte)
	// Close closes conn with a close code and reason, after the frames
	// queued before.
	Close(conn link.ConnID, code int, reason string)
}

// Files is the shell's file server: snapshots.
type Files interface {
	// Download starts fetching the snapshot at url; the shell steps
	// SnapshotLoaded with what it got.
	Download(url string)
	// Upload starts storing a snapshot (sealed by the Codec); when it is
	// stored, the shell steps SnapshotStored with the URL it is at (and
	// nothing if the upload failed: another replica's snapshot will do).
	Upload(upload island.Upload, sealed []byte)
}

// Codec turns the model's data into what travels and back: encryption in
// the SDK, plain encoding in the simulator.
type Codec interface {
	// Seal returns the SEND payload (a JSON string) of a view's envelope.
	Seal(envelope island.Envelope) (json.RawMessage, error)
	// Open decodes a view payload back into its envelope.
	Open(payload json.RawMessage) (island.Envelope, error)
	// SealSnapshot and OpenSnapshot protect a snapshot on the file server.
	SealSnapshot(data []byte) []byte
	OpenSnapshot(sealed []byte) ([]byte, error)
	// CheckTove checks a SYNC's tove (proof that the session's members
	// share the password); "" is a session that has none.
	CheckTove(tove string) error
}

// Observer learns what happened, for the shell's callbacks, logs and
// checks. A non-nil error from a method stops the replica (Failed).
type Observer interface {
	// Reset reports that the model was rebuilt: from nothing (sync.URL
	// empty), from persisted data (sync.Persisted; the Go model runtime
	// starts fresh) or from the snapshot at sync.URL, restored — at a
	// SYNC, or after a divergence from the majority's snapshot (then
	// sync holds only that snapshot's URL, time, seq and the timeline, and
	// the messages after it are applied again: heal.go).
	Reset(sync *protocol.ServerSync, restored bool) error
	// Applied reports a message applied to the model; hash computes the
	// model's state hash (costly: call it only when needed).
	Applied(timeline string, seq uint32, hash func() string) error
	// Unusable reports a message whose payload could not be opened; it is
	// applied as an empty message (it still advances time and seq).
	Unusable(seq uint32, err error) error
	// Voted reports this replica's snapshot vote.
	Voted(time int64, hash string)
	// Emitted reports an event the model emitted for the views.
	Emitted(name string, data []byte)
	// Diverged reports a snapshot vote this replica lost or that split;
	// one this replica lost to a strict majority once self-healing knows
	// the outcome (d.Recovered, d.Reason: heal.go).
	Diverged(d island.Divergence) error
	// ModelError reports a model handler that failed.
	ModelError(err error) error
	// Joined reports the first completed join; Note, something to log.
	Joined()
	Note(text string)
	// Failed reports that the replica stopped for good (a refused join, a
	// wrong password, an Observer error, a snapshot that cannot be used).
	Failed(err error)
}

// EphemeralObserver is implemented by an Observer that takes the other
// views' broadcasts (the ephemeral channel, docs/protocol.md §22): the
// replica hands each one over as it arrives, with the sender's view id
// and its payload as the sender sealed it (the shell seals and opens
// these itself: the Codec is for the model's data). They are for the
// views only: the model never sees them. An Observer without the
// method drops them (link.Config.Join.Ephemeral should then be off, so
// that the reflector sends none).
type EphemeralObserver interface {
	Ephemeral(from string, payload json.RawMessage)
}

// SnapshotLoaded answers Files.Download.
type SnapshotLoaded struct {
	URL  string
	Data []byte
	Err  error
}

// SnapshotStored answers Files.Upload: the snapshot of this time and seq
// is stored at URL (announced to the reflector with SNAP).
type SnapshotStored struct {
	Time int64
	Seq  uint32
	Hash string
	URL  string
}

// Options configure a Replica.
type Options[M any] struct {
	App       island.App[M]
	Link      link.Config
	Transport Transport
	Files     Files
	Codec     Codec
	Observer  Observer
	// SnapshotPollIntervalMs is the least time between two snapshot polls
	// of this replica (default: the app's snapshot interval).
	SnapshotPollIntervalMs int64
	// DropInputTags hands inputs to the model without their tags, so it
	// cannot recognise re-sent copies: a bug, for the simulator's
	// self-test only.
	DropInputTags bool
	// Speculation: apply this view's own inputs at once to a copy of the
	// model, for the views (speculation.go). Off by default.
	Speculation SpeculationOptions
}

// Replica is one client's replica of a session.
type Replica[M any] struct {
	options   Options[M]
	link      *link.Link
	island    *island.Island[M]
	islandOut island.Effects
	// fromSnapshot: the model was rebuilt from a snapshot.
	fromSnapshot bool
	// loading is the snapshot URL being downloaded ("" if none); held are
	// the deliveries that follow it, applied once it is loaded.
	loading     string
	pendingSync protocol.ServerSync
	held        []link.Delivery
	// lastPollAt is when this replica last sent a snapshot poll.
	lastPollAt int64
	// heal is the self-healing state (heal.go).
	heal healer
	// speculation is the speculative state (speculation.go).
	speculation speculation[M]
	failed      error
}

// New creates a replica; step link.Start to connect.
func New[M any](options Options[M]) (*Replica[M], error) {
	if err := options.App.Validate(); err != nil {
		return nil, err
	}
	l, err := link.New(options.Link)
	if err != nil {
		return nil, err
	}
	if options.SnapshotPollIntervalMs <= 0 {
		options.SnapshotPollIntervalMs = options.App.SnapshotIntervalMs
	}
	if options.SnapshotPollIntervalMs <= 0 {
		options.SnapshotPollIntervalMs = island.SnapshotIntervalMsDefault
	}
	if err := options.Speculation.validate(); err != nil {
		return nil, err
	}
	return &Replica[M]{options: options, link: l, lastPollAt: -options.SnapshotPollIntervalMs, heal: newHealer()}, nil
}

// Link returns the connection state machine, for inspection (never step it).
func (r *Replica[M]) Link() *link.Link { return r.link }

// Island returns the model's runtime (nil before the first SYNC and while
// a snapshot loads), for reading between steps.
func (r *Replica[M]) Island() *island.Island[M] { return r.island }

// FromSnapshot reports whether the model was rebuilt from a snapshot.
func (r *Replica[M]) FromSnapshot() bool { return r.fromSnapshot }

// Failed returns why the replica stopped, or nil.
func (r *Replica[M]) Failed() error { return r.failed }

// NextWake returns when the shell must step link.Wake (link.Never: no
// need).
func (r *Replica[M]) NextWake() int64 {
	if r.failed != nil {
		return link.Never
	}
	return r.link.NextWake()
}

// Event is a replica event: SnapshotLoaded, SnapshotStored, or any
// link.Event (passed to the link).
type Event = any

// Step applies one event at monotonic time now (ms) and executes what
// follows from it.
func (r *Replica[M]) Step(now int64, event Event) {
	if r.failed != nil {
		return
	}
	switch e := event.(type) {
	case SnapshotLoaded:
		r.snapshotLoaded(now, e)
	case SnapshotStored:
		r.stepLink(now, link.Snapshot{Time: e.Time, Seq: e.Seq, Hash: e.Hash, URL: e.URL})
		r.stored(now, e)
	case link.Event:
		r.stepLink(now, e)
	default:
		panic(fmt.Sprintf("replica: unknown event %T", event))
	}
	r.maybePoll(now, false)
}

// Publish sends a view's event to the model through the reflector (sealed
// by the Codec). It returns why the link refused it, if it did.
func (r *Replica[M]) Publish(now int64, envelope island.Envelope) error {
	if r.failed != nil {
		return r.failed
	}
	payload, err := r.options.Codec.Seal(envelope)
	if err != nil {
		return err
	}
	tag := r.link.NextInput()
	out := r.stepLink(now, link.Submit{Payload: payload})
	if len(out.Rejected) > 0 {
		return out.Rejected[0]
	}
	r.speculate(tag, envelope)
	return nil
}

// Broadcast sends a view's ephemeral data to the other views that asked
// for it (docs/protocol.md §22), outside the model: payload is the sealed
// name and data (a JSON string), name the key under which the link keeps
// only the latest while broadcasts wait for the send rate. It returns why
// the link refused it, if it did; broadcasts while the link is not joined
// are dropped (Stats.EphemeralDropped).
func (r *Replica[M]) Broadcast(now int64, name string, payload json.RawMessage) error {
	if r.failed != nil {
		return r.failed
	}
	out := r.stepLink(now, link.Broadcast{Name: name, Payload: payload})
	if len(out.Rejected) > 0 {
		return out.Rejected[0]
	}
	return nil
}

// Leave closes the link deliberately (1000, no reconnect).
func (r *Replica[M]) Leave(now int64) {
	if r.failed == nil {
		r.stepLink(now, link.Leave{})
	}
}

// stepLink steps the link and executes its effects. Each step has its own
// effects: executing them can step the link again (votes, snapshots).
func (r *Replica[M]) stepLink(now int64, event link.Event) *link.Effects {
	out := &link.Effects{}
	r.link.Step(now, event, out)
	transport := r.options.Transport
	if out.Close != nil {
		transport.Close(out.Close.Conn, out.Close.Code, out.Close.Reason)
	}
	if out.Dial != 0 {
		transport.Dial(out.Dial)
	}
	for _, frame := range out.Frames {
		transport.Send(frame.Conn, frame.Data)
	}
	for _, note := range out.Notes {
		r.options.Observer.Note(note)
	}
	for _, err := range out.Rejected {
		r.options.Observer.Note("rejected: " + err.Error())
	}
	for i := range out.Deliveries {
		if r.failed != nil {
			break
		}
		r.deliver(now, &out.Deliveries[i])
	}
	if observer, ok := r.options.Observer.(EphemeralObserver); ok && r.failed == nil {
		for _, e := range out.Ephemeral {
			observer.Ephemeral(e.From, e.Payload)
		}
	}
	if out.Joined {
		r.options.Observer.Joined()
	}
	if out.SnapshotRequested {
		// The reflector asks for a snapshot (REQU): poll now, even if the
		// model's interval has not passed.
		r.lastPollAt = now - r.options.SnapshotPollIntervalMs
		r.maybePoll(now, true)
	}
	if out.Failed != nil && r.failed == nil {
		r.failed = out.Failed
		r.options.Observer.Failed(out.Failed)
	}
	return out
}

// maybePoll sends a snapshot poll when the model's snapshot is due (or
// forced by a REQU), at most once per SnapshotPollIntervalMs.
func (r *Replica[M]) maybePoll(now int64, force bool) {
	if r.failed != nil || r.island == nil || !r.link.Joined() || !(force || r.island.WantsSnapshot()) ||
		now-r.lastPollAt < r.options.SnapshotPollIntervalMs {
		return
	}
	payload, err := r.options.Codec.Seal(island.Envelope{Kind: island.KindPoll})
	if err != nil {
		r.fail(now, err)
		return
	}
	r.lastPollAt = now
	r.stepLink(now, link.Poll{Payload: payload})
}

// deliver hands one delivery to the model, or holds it while a snapshot
// loads.
func (r *Replica[M]) deliver(now int64, d *link.Delivery) {
	if d.Kind == link.DeliverReset {
		r.reset(now, d.Sync)
		return
	}
	if r.loading != "" {
		r.held = append(r.held, *d)
		return
	}
	r.apply(now, d)
}

// reset rebuilds the model for a SYNC: from nothing or persisted data at
// once, from a snapshot once it is downloaded.
func (r *Replica[M]) reset(now int64, sync *protocol.ServerSync) {
	if err := r.options.Codec.CheckTove(sync.Tove); err != nil {
		r.fail(now, err)
		return
	}
	r.loading, r.held = "", nil
	r.resetHealing(now)
	if sync.URL == "" || sync.Persisted {
		r.islandOut.Reset()
		r.island = island.New(r.options.App, r.options.Link.ViewID, &r.islandOut)
		r.fromSnapshot = false
		if err := r.options.Observer.Reset(sync, false); err != nil {
			r.fail(now, err)
			return
		}
		r.islandEffects(now)
		return
	}
	r.island = nil
	r.loading = sync.URL
	r.pendingSync = *sync
	r.options.Files.Download(sync.URL)
}

// snapshotLoaded restores the model from a downloaded snapshot and applies
// the deliveries held meanwhile.
func (r *Replica[M]) snapshotLoaded(now int64, loaded SnapshotLoaded) {
	if loaded.URL != r.loading {
		return // a download the link has moved past
	}
	if r.heal.loading != nil {
		r.recoveryLoaded(now, loaded)
		return
	}
	if loaded.Err != nil {
		r.fail(now, fmt.Errorf("client: downloading the snapshot %s: %w", loaded.URL, loaded.Err))
		return
	}
	data, err := r.options.Codec.OpenSnapshot(loaded.Data)
	if err != nil {
		r.fail(now, err)
		return
	}
	restored, err := island.Restore(r.options.App, r.options.Link.ViewID, data)
	if err != nil {
		r.fail(now, fmt.Errorf("client: the snapshot %s does not restore: %w", loaded.URL, err))
		return
	}
	r.island, r.fromSnapshot, r.loading = restored, true, ""
	sync := r.pendingSync
	if err := r.options.Observer.Reset(&sync, true); err != nil {
		r.fail(now, err)
		return
	}
	r.applyHeld(now)
}

// applyHeld applies the deliveries held while a snapshot loaded; if one
// of them starts loading another (self-healing), the rest wait for it.
func (r *Replica[M]) applyHeld(now int64) {
	held := r.held
	r.held = nil
	for i := range held {
		if r.failed != nil {
			return
		}
		if r.loading != "" {
			r.held = append(r.held, held[i:]...)
			return
		}
		r.apply(now, &held[i])
	}
}

// apply hands a message or a time to the model.
func (r *Replica[M]) apply(now int64, d *link.Delivery) {
	r.confirming(d)
	r.islandOut.Reset()
	switch d.Kind {
	case link.DeliverMessage:
		message, err := r.message(d)
		if err != nil {
			if err := r.options.Observer.Unusable(d.Message.Seq, err); err != nil {
				r.fail(now, err)
				return
			}
		}
		r.island.Apply(message, &r.islandOut)
		timeline, _, _, _ := r.link.Position()
		if err := r.options.Observer.Applied(timeline, d.Message.Seq, r.island.Hash); err != nil {
			r.fail(now, err)
			return
		}
		r.afterDelivery(now, d, &message)
	case link.DeliverTime:
		r.island.Advance(d.Time, &r.islandOut)
		r.afterDelivery(now, d, nil)
	}
	if r.failed == nil {
		r.islandEffects(now)
	}
}

// message turns a delivered message into the model's form: reflector
// messages (users, tallies) as they are, view payloads opened by the Codec.
func (r *Replica[M]) message(d *link.Delivery) (island.Message, error) {
	m := island.Message{Time: d.Message.Time, Seq: d.Message.Seq}
	payload := d.Message.Payload
	if len(payload) > 0 && payload[0] == '{' {
		if users, ok := protocol.DecodeUsers(payload); ok {
			m.Users = &users
		} else if tally, ok := protocol.DecodeTally(payload); ok {
			m.Tally = &tally
		}
		return m, nil
	}
	envelope, err := r.options.Codec.Open(payload)
	if err != nil {
		return m, err
	}
	m.Envelope = &envelope
	if d.IsInput && !r.options.DropInputTags {
		m.View, m.Input = d.Input.ViewID, d.Input.Seq
	}
	return m, nil
}

// islandEffects executes what the model runtime asked for: emits to the
// views, votes through the link, snapshot uploads through Files;
// divergences (through self-healing, heal.go) and model errors to the
// Observer. While messages are replayed after a recovery, votes, uploads
// and divergences are not executed again: they were, when the messages
// were first applied.
func (r *Replica[M]) islandEffects(now int64) {
	out := r.islandOut
	r.islandOut = island.Effects{}
	observer := r.options.Observer
	for _, emit := range out.Emits {
		observer.Emitted(emit.Name, emit.Data)
	}
	for _, d := range out.Divergences {
		if r.diverged(now, d); r.failed != nil {
			return
		}
	}
	for _, err := range out.Errors {
		if err := observer.ModelError(err); err != nil {
			r.fail(now, err)
			return
		}
	}
	if r.heal.replaying {
		return
	}
	for _, vote := range out.Votes {
		observer.Voted(r.island.LastVote())
		r.stepLink(now, link.Vote{SendTime: vote.SendTime, Key: vote.Key, Vote: vote.Payload, TallyTarget: snapshotTallyTarget})
	}
	for _, upload := range out.Uploads {
		r.uploading(upload)
		r.options.Files.Upload(upload, r.options.Codec.SealSnapshot(upload.Data))
	}
}

// snapshotTallyTarget is the tally target of snapshot votes, as the
// Croquet client names it.
var snapshotTallyTarget = json.RawMessage(`["handleSnapshotVote"]`)

// fail stops the replica after a local fatal error: the link leaves and
// the connection is closed with 4200 (no reconnect).
func (r *Replica[M]) fail(now int64, err error) {
	if r.failed != nil {
		return
	}
	leave := &link.Effects{}
	r.link.Step(now, link.Leave{}, leave)
	if leave.Close != nil {
		r.options.Transport.Close(leave.Close.Conn, protocol.CloseClientFatal, protocol.TruncateReason(err.Error()))
	}
	r.failed = err
	r.options.Observer.Failed(err)
}
