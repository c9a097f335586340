// Command ephemeralpeer is a Go replica (client/replica: the SDK's link and
// model runtime) that joins any session by its id, asks for the ephemeral
// channel (docs/protocol.md §22) and broadcasts on it, for
// tests/js/test/ephemeral.test.js: there it joins the session of real
// Croquet JavaScript clients, which must see no difference.
//
// It sends nothing that reaches a model: no inputs, and no snapshot polls
// (its model is empty and its snapshot interval a day), so the JavaScript
// clients never get a payload they cannot decrypt. Their messages are
// unusable to it (another encryption) and are applied as empty messages.
// Its broadcasts are plain JSON strings "<view id>:<n>", not sealed: the
// reflector relays them without reading them, and only other peers get
// them.
//
//	ephemeralpeer -reflector ws://127.0.0.1:8888/reflector -session <id> -view peer1 -broadcasts 200 -every 10ms -stay 2s
//
// Output, one line each:
//
//	joined view <view id>
//	sent <n>                                      after the last broadcast
//	received from=<view> count=<n> last=<payload>  on exit, per sender
//	stats sent=<n> coalesced=<n> dropped=<n> received=<n> unusable=<n> connects=<n>
//
// It exits with 0 after -stay past its last broadcast, and with 1 if the
// replica fails (a snapshot in the session, a fatal close).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

const (
	// joinTimeout bounds joining the session.
	joinTimeout = 30 * time.Second
	// writeTimeout bounds one frame write.
	writeTimeout = 5 * time.Second
	// frameBytesMax bounds one frame read (a SYNC).
	frameBytesMax = 64 << 20
	// snapshotIntervalMs keeps the peer from ever polling for a snapshot.
	snapshotIntervalMs = 24 * 3600 * 1000
)

// empty is the peer's model: it has none.
type empty struct{}

var app = island.App[empty]{ID: "io.metronome.test.ephemeralpeer", Version: "1", SnapshotIntervalMs: snapshotIntervalMs}

// peer is the shell around the replica; everything but the socket
// goroutines runs on main's loop.
type peer struct {
	replica  *replica.Replica[empty]
	url      string // the session's WebSocket URL
	start    time.Time
	inbox    chan func()
	conns    map[link.ConnID]*websocket.Conn
	joined   bool
	failed   error
	received map[string]int
	last     map[string]string
	unusable int
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("ephemeralpeer", flag.ContinueOnError)
	flags.SetOutput(stderr)
	reflector := flags.String("reflector", "ws://127.0.0.1:8888/reflector", "the reflector's WebSocket URL, without the session id")
	session := flags.String("session", "", "the session id (required)")
	view := flags.String("view", "peer", "this peer's view id")
	broadcasts := flags.Int("broadcasts", 100, "how many broadcasts to make")
	every := flags.Duration("every", 10*time.Millisecond, "the time between two broadcasts")
	stay := flags.Duration("stay", 2*time.Second, "how long to stay after the last broadcast")
	if err := flags.Parse(args); err != nil || *session == "" || *broadcasts < 0 || *every <= 0 {
		fmt.Fprintln(stderr, "ephemeralpeer: -session is required; -broadcasts must not be negative, -every positive")
		return 2
	}
	p := &peer{url: *reflector + "/" + *session, start: time.Now(), inbox: make(chan func(), 1024), conns: map[link.ConnID]*websocket.Conn{},
		received: map[string]int{}, last: map[string]string{}}
	r, err := replica.New(replica.Options[empty]{
		App: app,
		Link: link.Config{SessionID: *session, ViewID: *view, Seed: uint64(time.Now().UnixNano()),
			Join: protocol.JoinRequest{Name: app.ID + "/peer", URL: "ephemeralpeer", SDK: "metronome-go",
				TickMs: 100, LeaveDelayMs: link.LeaveDelayMs, Ephemeral: true}},
		Transport: (*transport)(p), Files: (*files)(p), Codec: codec{}, Observer: (*observer)(p),
	})
	if err != nil {
		fmt.Fprintln(stderr, "ephemeralpeer:", err)
		return 1
	}
	p.replica = r
	signals, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	r.Step(p.now(), link.Start{})
	timer := time.NewTimer(0)
	joinDeadline := time.After(joinTimeout)
	var ticks <-chan time.Time
	var leaveAt <-chan time.Time
	sent := 0
	for p.failed == nil {
		select {
		case <-signals.Done():
			p.failed = errors.New("interrupted")
		case <-joinDeadline:
			if !p.joined {
				p.failed = fmt.Errorf("not joined within %s", joinTimeout)
			}
		case f := <-p.inbox:
			f()
		case <-timer.C:
			r.Step(p.now(), link.Wake{})
		case <-ticks:
			sent++
			payload, _ := json.Marshal(fmt.Sprintf("%s:%d", *view, sent))
			if err := r.Broadcast(p.now(), "pointer", payload); err != nil {
				p.failed = err
			}
			if sent == *broadcasts {
				ticks = nil
				fmt.Fprintf(stdout, "sent %d\n", sent)
				leaveAt = time.After(*stay)
			}
		case <-leaveAt:
			p.report(stdout)
			r.Leave(p.now())
			return 0
		}
		if p.joined && ticks == nil && leaveAt == nil {
			fmt.Fprintf(stdout, "joined view %s\n", *view)
			if *broadcasts == 0 {
				leaveAt = time.After(*stay)
			} else {
				ticker := time.NewTicker(*every)
				defer ticker.Stop()
				ticks = ticker.C
			}
		}
		if r.Failed() != nil && p.failed == nil {
			p.failed = r.Failed()
		}
		if wake := r.NextWake(); wake != link.Never {
			timer.Reset(max(time.Duration(wake-p.now())*time.Millisecond, 0))
		}
	}
	fmt.Fprintln(stderr, "ephemeralpeer: failed:", p.failed)
	p.report(stdout)
	return 1
}

func (p *peer) now() int64 { return time.Since(p.start).Milliseconds() }

func (p *peer) post(f func()) { p.inbox <- f }

func (p *peer) report(stdout io.Writer) {
	for _, from := range slices.Sorted(maps.Keys(p.received)) {
		fmt.Fprintf(stdout, "received from=%s count=%d last=%s\n", from, p.received[from], p.last[from])
	}
	stats := p.replica.Link().Stats()
	fmt.Fprintf(stdout, "stats sent=%d coalesced=%d dropped=%d received=%d unusable=%d connects=%d\n",
		stats.EphemeralSent, stats.EphemeralCoalesced, stats.EphemeralDropped, stats.EphemeralReceived, p.unusable, stats.Connects)
}

// transport is the replica's Transport: WebSockets whose reader goroutines
// post what they read to the loop.
type transport peer

func (t *transport) Dial(id link.ConnID) {
	p := (*peer)(t)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
		conn, _, err := websocket.Dial(ctx, p.url, nil)
		cancel()
		if err != nil {
			p.post(func() { p.replica.Step(p.now(), link.Closed{Conn: id, Code: 1006, Reason: err.Error()}) })
			return
		}
		conn.SetReadLimit(frameBytesMax)
		p.post(func() {
			p.conns[id] = conn
			p.replica.Step(p.now(), link.Opened{Conn: id})
		})
		for {
			_, data, err := conn.Read(context.Background())
			if err != nil {
				code := int(websocket.CloseStatus(err))
				if code < 0 {
					code = 1006
				}
				p.post(func() { p.replica.Step(p.now(), link.Closed{Conn: id, Code: code, Reason: err.Error()}) })
				return
			}
			p.post(func() { p.replica.Step(p.now(), link.Received{Conn: id, Data: data}) })
		}
	}()
}

func (t *transport) Send(id link.ConnID, frame []byte) {
	if conn := t.conns[id]; conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
		defer cancel()
		if err := conn.Write(ctx, websocket.MessageText, frame); err != nil {
			conn.CloseNow()
		}
	}
}

func (t *transport) Close(id link.ConnID, code int, reason string) {
	if conn := t.conns[id]; conn != nil {
		delete(t.conns, id)
		go conn.Close(websocket.StatusCode(code), reason)
	}
}

// files is the replica's Files: the peer loads no snapshots (a session of
// other clients' snapshots would not restore as its model).
type files peer

func (f *files) Download(url string) {
	p := (*peer)(f)
	p.post(func() {
		p.replica.Step(p.now(), replica.SnapshotLoaded{URL: url, Err: errors.New("ephemeralpeer loads no snapshots: join before the session has one")})
	})
}

func (*files) Upload(island.Upload, []byte) {}

// codec is the replica's Codec: plain CBOR in base64 (the peer sends no
// inputs; others' payloads do not open and are applied as empty messages).
type codec struct{}

func (codec) Seal(envelope island.Envelope) (json.RawMessage, error) {
	data, err := island.Encode(envelope)
	if err != nil {
		return nil, err
	}
	return json.Marshal(data)
}

func (codec) Open(payload json.RawMessage) (island.Envelope, error) {
	var envelope island.Envelope
	var data []byte
	if err := json.Unmarshal(payload, &data); err != nil {
		return envelope, err
	}
	return envelope, island.Decode(data, &envelope)
}

func (codec) SealSnapshot(data []byte) []byte            { return data }
func (codec) OpenSnapshot(sealed []byte) ([]byte, error) { return sealed, nil }
func (codec) CheckTove(string) error                     { return nil }

// observer is the replica's Observer and EphemeralObserver.
type observer peer

func (o *observer) Reset(*protocol.ServerSync, bool) error      { return nil }
func (o *observer) Applied(string, uint32, func() string) error { return nil }
func (o *observer) Unusable(uint32, error) error                { o.unusable++; return nil }
func (o *observer) Voted(int64, string)                         {}
func (o *observer) Emitted(string, []byte)                      {}
func (o *observer) Diverged(island.Divergence) error            { return nil }
func (o *observer) ModelError(error) error                      { return nil }
func (o *observer) Joined()                                     { o.joined = true }
func (o *observer) Note(string)                                 {}
func (o *observer) Failed(err error)                            { o.failed = err }
func (o *observer) Ephemeral(from string, payload json.RawMessage) {
	o.received[from]++
	o.last[from] = string(payload)
}
