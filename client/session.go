// Package client is the Go SDK: join a session of a shared, deterministic
// model written in Go, through any Croquet-protocol reflector (such as
// metronome serve), natively or in the browser (GOOS=js GOARCH=wasm).
//
// The model and its handlers are an App (package island, re-exported here);
// Join connects a Session, which runs the model's replica, publishes the
// view's events through the reflector, and lets views read the model and
// subscribe to what it emits:
//
//	session, err := client.Join(ctx, app, client.Options{
//		Reflector: "ws://127.0.0.1:8888/reflector", Name: "room1", Password: "secret"})
//	session.Publish("push", Push{X: 1, Y: 2})
//	session.Read(func(m *Balls, now int64) { draw(m) })
//
// Underneath, the connection logic is the pure state machine of package
// client/link (join, sync, sequence continuity, keep-alive, reconnect with
// back-off, inputs re-sent until seen reflected) and the replica is the
// pure runtime of package client/island; this package is the thin shell
// that runs them: one goroutine, WebSocket connections, HTTP for
// snapshots, timers, and AES-GCM end-to-end encryption (crypto.go).
// Under GOOS=js it runs in browsers and in Node.js alike (fetch_js.go).
// docs/sdk.md is the guide: writing a model, the Session API, snapshots,
// votes, reconnection, encryption, WebAssembly and metronome vet.
package client

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// The model side, re-exported: see package island.
type (
	App[M any]     = island.App[M]
	Handler[M any] = island.Handler[M]
	Context        = island.Context
	Event          = island.Event
	Divergence     = island.Divergence
)

// Snapshot intervals, re-exported: see App.SnapshotIntervalMs.
const (
	SnapshotIntervalMsMin     = island.SnapshotIntervalMsMin
	SnapshotIntervalMsDefault = island.SnapshotIntervalMsDefault
)

// Self-healing limits, re-exported: see package client/replica and
// docs/sdk.md ("Self-healing").
const (
	RecoveryRepeatTallies = replica.RecoveryRepeatTallies
	RecoveriesInARowMax   = replica.RecoveriesInARowMax
	RecoveryWaitMs        = replica.RecoveryWaitMs
)

// System events, re-exported.
const (
	EventViewJoin = island.EventViewJoin
	EventViewExit = island.EventViewExit
)

// Limits of the session shell.
const (
	// FrameBytesMax bounds one frame read from the reflector (a SYNC can
	// carry 100,000 messages).
	FrameBytesMax = 64 << 20
	// SnapshotBytesMax bounds a snapshot downloaded or uploaded.
	SnapshotBytesMax = 256 << 20
	// InboxFramesMax bounds frames read but not yet processed; the reader
	// waits (back-pressure on the socket) while it is full.
	InboxFramesMax = 4096
	// httpTimeout bounds one snapshot upload or download.
	httpTimeout = 60 * time.Second
	// dialTimeout bounds one WebSocket handshake.
	dialTimeout = 10 * time.Second
)

// Options configure Join.
type Options struct {
	// Reflector is the reflector's WebSocket URL without the session id,
	// e.g. "ws://127.0.0.1:8888/reflector" (required).
	Reflector string
	// Files is the file server's URL for snapshots (default: the
	// reflector's host with path /files, over http or https).
	Files string
	// Name is the session name (required): clients of the same app,
	// version and name share a session.
	Name string
	// Password encrypts everything end to end (required).
	Password string
	// ViewID identifies this view (default: 10 random base-36 characters).
	ViewID string
	// TickMs is the reflector's heartbeat interval the first joiner asks
	// for (default 100).
	TickMs int64
	// OnDivergence is called (on the session's callback goroutine, in
	// order with the other callbacks; it may call any Session method) when
	// replicas' state hashes disagree at a snapshot vote. When this
	// replica is outside a strict majority (Divergence.Local and
	// Majority), it repairs itself from the majority's snapshot first
	// (docs/sdk.md, "Self-healing"), and the call says how that went
	// (Recovered, Repeated, Reason, Suspect). Default: log, at warning
	// level a recovered divergence, at error level the others.
	OnDivergence func(island.Divergence)
	// OnVote, when set, is called (on the callback goroutine) each time this
	// replica votes its state hash at a snapshot poll: replicas vote at the
	// same session times, so comparing votes compares states.
	OnVote func(time int64, hash string)
	// OnEphemeral, when set, is called (on the callback goroutine, in
	// order with the other callbacks) with every broadcast of another view
	// of the session (Session.Broadcast): the sender's view id, the name
	// and the data it broadcast. Setting it asks the reflector for the
	// other views' broadcasts when joining (docs/sdk.md, "Ephemeral
	// channel"); without it the reflector sends this view none. Broadcasts
	// never reach the model.
	OnEphemeral func(from, name string, data []byte)
	// Speculate applies this view's own inputs at once, to a copy of the
	// model that Read shows, instead of a round trip after Publish; the
	// reflector's order still decides (docs/sdk.md, "Speculation"). State,
	// LastVote, votes and snapshots use only the confirmed model.
	Speculate bool
	// SpeculativeInputsMax bounds the unconfirmed inputs Read shows (0:
	// replica.SpeculativeInputsMaxDefault, 32); later inputs are sent at
	// once but shown when older ones are confirmed.
	SpeculativeInputsMax int
	// SpeculationBudget bounds the time one Read spends rebuilding the
	// speculative model after the confirmed one changed (0: 4 ms); past
	// it that Read shows the confirmed model and the next one goes on.
	SpeculationBudget time.Duration
	// Logger receives the session's log (default: slog.Default()).
	Logger *slog.Logger
	// HTTPClient fetches and stores snapshots (default: a client with a
	// timeout; under Node.js with GOOS=js, where net/http does not use
	// fetch, one that calls fetch itself). A client given here is used as
	// it is.
	HTTPClient *http.Client
}

// Session is a joined session. Its methods are safe for concurrent use.
type Session[M any] struct {
	app       App[M]
	options   Options
	id        string
	viewID    string
	sealer    *sealer
	tove      string
	logger    *slog.Logger
	http      *http.Client
	filesBase string

	commands  chan func()
	callbacks *callbackQueue
	inbox     chan inboxItem
	done      chan struct{}
	closing   sync.Once

	// uploaded and uploadsFailed count snapshot uploads (Stats); the
	// upload goroutines write them.
	uploaded, uploadsFailed atomic.Int64

	// Owned by the run goroutine.
	replica     *replica.Replica[M]
	conns       map[link.ConnID]*transport
	start       time.Time
	subscribers map[string][]func(data []byte)
	joinedOnce  chan struct{}
	joinErr     error
	err         error
	// snapshotURL is the snapshot the replica was last rebuilt from.
	snapshotURL string
	// ephemeralUnusable counts broadcasts that did not open (ephemeral.go).
	ephemeralUnusable int
}

// Stats are a session's counters, since Join. A healthy session that
// never lost its connection shows Connects 1, Syncs 1 and zero Resets,
// Gaps and SnapshotUploadsFailed.
type Stats struct {
	// The connection to the reflector (package client/link), whose fields
	// are promoted:
	//
	//   - Connects: connection attempts, the first included (failed ones
	//     too); Connects - 1 is the number of reconnects.
	//   - Syncs: SYNCs received, one per connection that got as far as
	//     joining; Syncs = 1 + SeamlessRejoins + Resets.
	//   - SeamlessRejoins: reconnects after which the model simply went on
	//     (nothing was missed).
	//   - Resets: reconnects after which the model had to be rebuilt from
	//     the session's latest snapshot (or from nothing) because the
	//     reflector no longer had the messages since this replica's last
	//     one (it dropped them after a newer snapshot, or restarted
	//     without its data). The first join is not one.
	//   - Gaps: missing messages noticed (each ends the connection and the
	//     rejoin fills the gap); Duplicates: messages received twice and
	//     dropped.
	//   - InputsSent: Publish calls sent to the reflector, re-sends
	//     included; InputsResent: the re-sends, after a reconnect or a
	//     rejection by a full reflector (each input still takes effect
	//     once).
	//   - Pulses: keep-alives sent on a quiet connection.
	//   - EphemeralSent, EphemeralCoalesced, EphemeralDropped,
	//     EphemeralReceived: Broadcast calls sent to the reflector,
	//     replaced by a newer one under the same name before they went
	//     out, dropped because the session was not connected; and other
	//     views' broadcasts received (docs/sdk.md, "Ephemeral channel").
	link.Stats
	// SnapshotURL is the snapshot this replica was last rebuilt from ("" if
	// it started fresh).
	SnapshotURL string
	// SnapshotsUploaded counts snapshots this replica uploaded to the file
	// server (a snapshot vote chose it; it then announces each to the
	// reflector); SnapshotUploadsFailed those whose upload failed (logged;
	// the next vote tries again).
	SnapshotsUploaded, SnapshotUploadsFailed int
	// CallbacksDropped counts callbacks dropped because the views fell
	// CallbacksQueuedMax behind.
	CallbacksDropped int
	// Recoveries counts the times this replica was outside the majority
	// of a snapshot vote and reloaded the majority's snapshot
	// (self-healing; each is also reported to OnDivergence).
	Recoveries int
	// EphemeralUnusable counts other views' broadcasts that did not
	// decrypt or decode with this session's key (dropped, logged).
	EphemeralUnusable int
	// Speculation counts what speculation did (Options.Speculate): inputs
	// pending and deferred, kept, rebuilds, rollbacks, replays, rebuild
	// time (each field is documented on replica.SpeculationStats).
	Speculation SpeculationStats
}

// SpeculationStats are the speculation counters (Stats.Speculation).
type SpeculationStats = replica.SpeculationStats

// Stats returns the session's counters.
func (s *Session[M]) Stats() Stats {
	var stats Stats
	s.do(func() {
		stats = Stats{Stats: s.replica.Link().Stats(), SnapshotURL: s.snapshotURL, Recoveries: s.replica.Recoveries(),
			EphemeralUnusable: s.ephemeralUnusable, Speculation: s.replica.SpeculationStats()}
	})
	stats.SnapshotsUploaded = int(s.uploaded.Load())
	stats.SnapshotUploadsFailed = int(s.uploadsFailed.Load())
	stats.CallbacksDropped = s.callbacks.droppedCount()
	return stats
}

// transport is one WebSocket connection: a reader goroutine feeding the
// inbox and a writer goroutine draining a bounded queue. The session
// goroutine never touches the socket: it asks for a graceful close
// (closeWith) or an abrupt one (cancel), and the transport's goroutines,
// which own the socket, carry it out — also while the dial is in flight.
type transport struct {
	id     link.ConnID
	writes chan []byte
	cancel context.CancelFunc

	closeOnce   sync.Once
	closeAsked  chan struct{}
	closeCode   websocket.StatusCode
	closeReason string
}

// closeWith asks for a close handshake with code and reason.
func (t *transport) closeWith(code int, reason string) {
	t.closeOnce.Do(func() {
		t.closeCode, t.closeReason = websocket.StatusCode(code), reason
		close(t.closeAsked)
	})
}

// inboxItem is what the connections and the file transfers hand to the
// session goroutine: a frame read on conn, or a replica event.
type inboxItem struct {
	conn   link.ConnID
	event  replica.Event
	frames []byte
}

// Join derives the session id and key, connects, and returns once the
// session is joined (the model is synced and this view's inputs flow),
// ctx is done, or joining failed for good (for example ErrWrongPassword).
func Join[M any](ctx context.Context, app App[M], options Options) (*Session[M], error) {
	if options.Reflector == "" || options.Name == "" || options.Password == "" {
		return nil, errors.New("client: Options.Reflector, Name and Password are required")
	}
	if err := app.Validate(); err != nil {
		return nil, err
	}
	if options.ViewID == "" {
		options.ViewID = randomViewID()
	}
	if options.TickMs == 0 {
		options.TickMs = 100
	}
	files := options.Files
	if files == "" {
		base, err := url.Parse(options.Reflector)
		if err != nil {
			return nil, fmt.Errorf("client: Options.Reflector: %w", err)
		}
		scheme := "http"
		if base.Scheme == "wss" || base.Scheme == "https" {
			scheme = "https"
		}
		files = scheme + "://" + base.Host + "/files"
	}
	id := sessionID(app.ID, app.Version, options.Name)
	seal, err := newSealer(options.Password, app.ID, options.Name, id)
	if err != nil {
		return nil, err
	}
	s := &Session[M]{
		app: app, options: options, id: id, viewID: options.ViewID, sealer: seal,
		logger:      options.Logger,
		http:        options.HTTPClient,
		filesBase:   strings.TrimSuffix(files, "/"),
		commands:    make(chan func(), 64),
		callbacks:   newCallbackQueue(),
		inbox:       make(chan inboxItem, InboxFramesMax),
		done:        make(chan struct{}),
		conns:       map[link.ConnID]*transport{},
		start:       time.Now(),
		subscribers: map[string][]func([]byte){},
		joinedOnce:  make(chan struct{}),
	}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.logger = s.logger.With("session", options.Name, "view", s.viewID)
	if s.http == nil {
		s.http = &http.Client{Timeout: httpTimeout, Transport: defaultTransport()}
	}
	s.tove = seal.sealString(purposeTove, []byte(id))
	s.replica, err = replica.New(replica.Options[M]{
		App: app,
		Link: link.Config{
			SessionID: id, ViewID: s.viewID, Seed: randomSeed(),
			Join: protocol.JoinRequest{Name: app.ID + "/" + options.Name, AppID: app.ID, PersistentID: id,
				URL: "metronome-go", SDK: "metronome-go", TickMs: options.TickMs, Tove: s.tove, LeaveDelayMs: link.LeaveDelayMs,
				Ephemeral: options.OnEphemeral != nil},
		},
		Transport: (*sessionTransport[M])(s),
		Files:     (*sessionFiles[M])(s),
		Codec:     (*sessionCodec[M])(s),
		Observer:  (*sessionObserver[M])(s),
		Speculation: replica.SpeculationOptions{Enabled: options.Speculate, InputsMax: options.SpeculativeInputsMax,
			BudgetNs: options.SpeculationBudget.Nanoseconds(), Clock: func() int64 { return time.Since(s.start).Nanoseconds() }},
	})
	if err != nil {
		return nil, err
	}
	go s.run()
	go s.callbacks.run(s.done)
	select {
	case <-s.joinedOnce:
		if s.joinErr != nil {
			return nil, s.joinErr
		}
		return s, nil
	case <-ctx.Done():
		s.Leave()
		return nil, ctx.Err()
	}
}

// ID returns the session id (the last segment of the reflector URL).
func (s *Session[M]) ID() string { return s.id }

// ViewID returns this view's id.
func (s *Session[M]) ViewID() string { return s.viewID }

// Done is closed when the session ended (Leave, or a fatal error: Err).
func (s *Session[M]) Done() <-chan struct{} { return s.done }

// Err returns why the session ended (nil after Leave or while it runs).
func (s *Session[M]) Err() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// do runs f on the session goroutine and waits for it.
func (s *Session[M]) do(f func()) error {
	finished := make(chan struct{})
	select {
	case s.commands <- func() { f(); close(finished) }:
	case <-s.done:
		return errors.New("client: the session has ended")
	}
	select {
	case <-finished:
		return nil
	case <-s.done:
		return errors.New("client: the session has ended")
	}
}

// Publish sends an event from this view to the model, through the
// reflector: every replica handles it at the same session time. data is
// encoded as CBOR. Inputs published while disconnected are sent after the
// reconnect; each takes effect exactly once.
func (s *Session[M]) Publish(name string, data any) error {
	var encoded []byte
	var err error
	if data != nil {
		encoded, err = island.Encode(data)
	}
	if err != nil {
		return fmt.Errorf("client: Publish(%q): %w", name, err)
	}
	var rejected error
	err = s.do(func() {
		rejected = s.replica.Publish(s.now(), island.Envelope{Kind: island.KindEvent, Name: name, Data: encoded})
	})
	if err != nil {
		return err
	}
	return rejected
}

// Subscribe calls fn with the data of every event the model emits under
// name (Context.Emit), in order, on the session's callback goroutine: fn
// may call any Session method, Publish included (callbacks never run
// inside the session goroutine's loop, so nothing waits on itself).
func (s *Session[M]) Subscribe(name string, fn func(data []byte)) {
	s.do(func() { s.subscribers[name] = append(s.subscribers[name], fn) })
}

// Read calls fn with the model and the session time, on the session
// goroutine, between messages: the model is consistent. With
// Options.Speculate it is the speculative model: the confirmed one with
// this view's unconfirmed inputs applied (docs/sdk.md, "Speculation").
// fn must not change the model or keep it, and must not call Session
// methods (they wait for the session goroutine, which is running fn):
// copy what the view needs and act after Read returns.
func (s *Session[M]) Read(fn func(m *M, now int64)) error {
	return s.do(func() {
		if i := s.replica.View(); i != nil {
			fn(i.Model(), i.Time())
		}
	})
}

// ReadConfirmed is Read on the confirmed model: only what the reflector
// has ordered, without this view's unconfirmed inputs (the same as Read
// without Options.Speculate).
func (s *Session[M]) ReadConfirmed(fn func(m *M, now int64)) error {
	return s.do(func() {
		if i := s.replica.Island(); i != nil {
			fn(i.Model(), i.Time())
		}
	})
}

// State returns the session time, the last sequence number applied and
// the state hash of the replica's confirmed model (never the speculative
// one).
func (s *Session[M]) State() (now int64, seq uint32, hash string, err error) {
	err = s.do(func() {
		if i := s.replica.Island(); i != nil {
			now = i.Time()
			seq, _ = i.Seq()
			hash = i.Hash()
		}
	})
	return now, seq, hash, err
}

// LastVote returns the session time and state hash of this replica's
// latest snapshot vote: replicas vote at the same session times, so equal
// LastVotes mean equal states at that time ("" before the first vote).
func (s *Session[M]) LastVote() (time int64, hash string) {
	s.do(func() {
		if i := s.replica.Island(); i != nil {
			time, hash = i.LastVote()
		}
	})
	return time, hash
}

// Leave leaves the session (close 1000) and stops the session goroutine.
func (s *Session[M]) Leave() error {
	s.do(func() {
		s.replica.Leave(s.now())
		s.finish(nil)
	})
	<-s.done
	return nil
}

// finish ends the session (on the session goroutine).
func (s *Session[M]) finish(err error) {
	s.closing.Do(func() {
		s.err = err
		for _, t := range s.conns {
			t.cancel()
		}
		select {
		case <-s.joinedOnce:
		default:
			s.joinErr = err
			if err == nil {
				s.joinErr = errors.New("client: left before joining")
			}
			close(s.joinedOnce)
		}
		close(s.done)
	})
}

func (s *Session[M]) now() int64 { return time.Since(s.start).Milliseconds() }

// run is the session goroutine: it owns the replica (the link and the
// island, package client/replica).
func (s *Session[M]) run() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	s.replica.Step(s.now(), link.Start{})
	for {
		select {
		case <-s.done:
			return
		case f := <-s.commands:
			f()
		case item := <-s.inbox:
			if item.frames != nil {
				s.replica.Step(s.now(), link.Received{Conn: item.conn, Data: item.frames})
			} else {
				s.replica.Step(s.now(), item.event)
			}
		case <-timer.C:
			s.replica.Step(s.now(), link.Wake{})
		}
		wake := s.replica.NextWake()
		wait := time.Hour
		if wake != link.Never {
			wait = max(time.Duration(wake-s.now())*time.Millisecond, 0)
		}
		if s.replica.Island() != nil && s.replica.Link().Joined() {
			wait = min(wait, time.Second) // check for snapshot polls
		}
		timer.Reset(wait)
	}
}

// dial opens connection id in the background; the outcome arrives in the
// inbox as Opened or Closed.
func (s *Session[M]) dial(id link.ConnID) {
	ctx, cancel := context.WithCancel(context.Background())
	t := &transport{id: id, writes: make(chan []byte, InboxFramesMax), cancel: cancel, closeAsked: make(chan struct{})}
	s.conns[id] = t
	target := strings.TrimSuffix(s.options.Reflector, "/") + "/" + s.id
	go func() {
		dialCtx, cancelDial := context.WithTimeout(ctx, dialTimeout)
		conn, _, err := websocket.Dial(dialCtx, target, nil)
		cancelDial()
		if err != nil {
			s.post(inboxItem{conn: id, event: link.Closed{Conn: id, Code: 1006, Reason: err.Error()}})
			return
		}
		conn.SetReadLimit(FrameBytesMax)
		s.post(inboxItem{conn: id, event: link.Opened{Conn: id}})
		go func() {
			for {
				select {
				case frame := <-t.writes:
					if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
						cancel()
						return
					}
				case <-t.closeAsked:
					// Frames queued before the close go first.
					for len(t.writes) > 0 {
						if conn.Write(ctx, websocket.MessageText, <-t.writes) != nil {
							break
						}
					}
					conn.Close(t.closeCode, t.closeReason)
					cancel()
					return
				case <-ctx.Done():
					conn.CloseNow()
					return
				}
			}
		}()
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				code := int(websocket.CloseStatus(err))
				if code < 0 {
					code = 1006
				}
				s.post(inboxItem{conn: id, event: link.Closed{Conn: id, Code: code, Reason: err.Error()}})
				cancel()
				return
			}
			s.post(inboxItem{conn: id, frames: data})
		}
	}()
}

func (s *Session[M]) post(item inboxItem) {
	select {
	case s.inbox <- item:
	case <-s.done:
	}
}

// dropConnection breaks the current connection without a close frame, as
// a network failure would (for tests).
func (s *Session[M]) dropConnection() {
	s.do(func() {
		for _, t := range s.conns {
			t.cancel()
		}
	})
}

func randomViewID() string {
	const digits = "0123456789abcdefghijklmnopqrstuvwxyz"
	var b [10]byte
	rand.Read(b[:])
	for i := range b {
		b[i] = digits[int(b[i])%len(digits)]
	}
	return string(b[:])
}

func randomSeed() uint64 {
	var b [8]byte
	rand.Read(b[:])
	var seed uint64
	for _, v := range b {
		seed = seed<<8 | uint64(v)
	}
	return seed
}
