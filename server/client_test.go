package server

// A small WebSocket test client that speaks the Croquet 2.x reflector
// protocol the way the standard 2.0.4 client does, over a real socket. Every
// frame it reads is checked against the ordering guarantees of docs/protocol.md §3.4,
// §4.5 and §6B (ids, gap-free seqs, non-decreasing times, SYNC first), so
// every test that uses it checks them too.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/diskstore"
	"github.com/metronome-sync/metronome/store/memstore"
)

// Bounds on every wait of the test client. They are generous because the
// suite runs with -race on loaded machines; no test asserts a latency.
const (
	// frameTimeout bounds the wait for one frame.
	frameTimeout = 10 * time.Second
	// dialTimeout bounds the WebSocket handshake.
	dialTimeout = 10 * time.Second
	// shutdownTimeout bounds a test server's Shutdown.
	shutdownTimeout = 15 * time.Second
)

// testAppID is the appId of the standard JOIN (it matches the appId format
// of docs/protocol.md §13.2).
const testAppID = "io.metronome.test"

// --- test server ---

// startServer starts a server on a random loopback port and shuts it down
// when the test ends. Zero fields of config get the defaults of New.
func startServer(t testing.TB, config Config) *Server {
	t.Helper()
	if config.Addr == "" {
		config.Addr = "127.0.0.1:0"
	}
	if config.Logger == nil {
		config.Logger = testLogger(t)
	}
	if config.Store == nil {
		config.Store = memstore.New()
	}
	server, err := New(config)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	if err := server.Start(); err != nil {
		t.Fatalf("server.Start: %v", err)
	}
	t.Cleanup(func() { shutdownServer(t, server) })
	return server
}

// openDiskStore opens a durable disk store on dir; the test closes it when
// it ends (a test that reopens dir closes it earlier).
func openDiskStore(t testing.TB, dir string) store.Store {
	t.Helper()
	st, err := diskstore.Open(dir, diskstore.Options{Durable: true})
	if err != nil {
		t.Fatalf("diskstore.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// shutdownServer shuts a server down, bounded; a second call is harmless.
func shutdownServer(t testing.TB, server *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := server.Shutdown(ctx); err != nil {
		t.Errorf("server.Shutdown: %v", err)
	}
}

// testLogWriter passes server logs to the test log (shown with -v or on
// failure) and drops them once the test is over, because testing panics on
// a Log after the test completed.
type testLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// testLogger returns a logger into the test log. Call it before the server
// is started: cleanups run last-in first-out, so the writer is silenced
// only after the server's Shutdown cleanup has run.
func testLogger(t testing.TB) *slog.Logger {
	writer := &testLogWriter{t: t}
	t.Cleanup(func() {
		writer.mu.Lock()
		writer.done = true
		writer.mu.Unlock()
	})
	return slog.New(slog.NewTextHandler(writer, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

var sessionCounter atomic.Uint64

var notSessionIDCharacters = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// newSessionID returns a session id unique in this test binary, derived
// from the test name so that server logs are easy to read.
func newSessionID(t testing.TB) string {
	name := notSessionIDCharacters.ReplaceAllString(t.Name(), "_")
	if len(name) > 40 {
		name = name[len(name)-40:]
	}
	return fmt.Sprintf("%s-%d", name, sessionCounter.Add(1))
}

// --- frames and messages ---

// serverFrame is one decoded text frame from the server.
type serverFrame struct {
	Action string
	// ID is the "id" member, nil when absent.
	ID   *string
	Args json.RawMessage
	Raw  []byte
}

// stampedMessage is a message array [time, seq, payload, ...extra].
type stampedMessage struct {
	Time    int64
	Seq     uint32
	Payload json.RawMessage
	// Raw is the whole array exactly as the server sent it.
	Raw json.RawMessage
}

// text returns the payload as a string, or "" when it is not a string.
func (m stampedMessage) text() string {
	var text string
	if json.Unmarshal(m.Payload, &text) != nil {
		return ""
	}
	return text
}

// usersPayload is the payload of a users message (docs/protocol.md §7.3).
type usersPayload struct {
	What   string            `json:"what"`
	Active int               `json:"active"`
	Total  int               `json:"total"`
	Joined []json.RawMessage `json:"joined"`
	Left   []json.RawMessage `json:"left"`
}

// users decodes a users payload; ok is false for other messages.
func (m stampedMessage) users() (usersPayload, bool) {
	var users usersPayload
	if len(m.Payload) == 0 || m.Payload[0] != '{' || json.Unmarshal(m.Payload, &users) != nil || users.What != "users" {
		return usersPayload{}, false
	}
	return users, true
}

// joinedView reports whether m is a users message whose joined list holds
// the plain viewId.
func (m stampedMessage) joinedView(viewID string) bool {
	users, ok := m.users()
	return ok && containsUser(users.Joined, viewID)
}

func containsUser(list []json.RawMessage, viewID string) bool {
	for _, user := range list {
		var id string
		if json.Unmarshal(user, &id) == nil && id == viewID {
			return true
		}
	}
	return false
}

func decodeStampedMessage(raw json.RawMessage) (stampedMessage, error) {
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil {
		return stampedMessage{}, fmt.Errorf("message %s is not an array: %w", shorten(raw), err)
	}
	if len(elements) < 3 {
		return stampedMessage{}, fmt.Errorf("message %s has %d elements, want at least 3", shorten(raw), len(elements))
	}
	message := stampedMessage{Payload: elements[2], Raw: append(json.RawMessage(nil), raw...)}
	if err := json.Unmarshal(elements[0], &message.Time); err != nil {
		return stampedMessage{}, fmt.Errorf("message %s: time is not an integer: %w", shorten(raw), err)
	}
	if err := json.Unmarshal(elements[1], &message.Seq); err != nil {
		return stampedMessage{}, fmt.Errorf("message %s: seq is not a uint32: %w", shorten(raw), err)
	}
	return message, nil
}

// syncArgs is the args of a SYNC (docs/protocol.md §8.1).
type syncArgs struct {
	URL          string            `json:"url"`
	Messages     []json.RawMessage `json:"messages"`
	Time         *int64            `json:"time"`
	Seq          *uint32           `json:"seq"`
	Tove         string            `json:"tove"`
	Reflector    string            `json:"reflector"`
	Timeline     string            `json:"timeline"`
	Flags        map[string]any    `json:"flags"`
	SnapshotTime *int64            `json:"snapshotTime"`
	SnapshotSeq  *uint32           `json:"snapshotSeq"`
	Persisted    bool              `json:"persisted"`

	decoded []stampedMessage
}

// closeError is the server's close frame.
type closeError struct {
	Code   int
	Reason string
}

func (e *closeError) Error() string {
	return fmt.Sprintf("connection closed by the server: %d %q", e.Code, e.Reason)
}

// shorten keeps error messages readable when frames are large.
func shorten(data []byte) string {
	const keep = 200
	if len(data) <= keep {
		return string(data)
	}
	return fmt.Sprintf("%s...(%d bytes)", data[:keep], len(data))
}

// --- client ---

// client is one WebSocket connection of a test. Reads happen on the test
// goroutine; writes may come from another goroutine (they are serialized).
type client struct {
	t         testing.TB
	conn      net.Conn
	reader    *bufio.Reader
	writeMu   sync.Mutex
	sessionID string
	viewID    string

	// What this client has seen of its session, checked frame by frame.
	synced   bool
	sync     syncArgs         // the last SYNC
	messages []stampedMessage // SYNC messages and RECVs, in order
	lastSeq  uint32
	maxTime  int64
	ticks    int
}

// dialSession connects to the reflector URL of a session the way the
// standard client does with box mode: ws://ADDR/reflector/<sessionId>.
func dialSession(t testing.TB, addr, sessionID, viewID string) *client {
	t.Helper()
	c := dialPath(t, addr, "/reflector/"+sessionID)
	c.sessionID, c.viewID = sessionID, viewID
	return c
}

// dialPath connects to an arbitrary path (for bad session ids).
func dialPath(t testing.TB, addr, path string) *client {
	t.Helper()
	c, err := tryDialPath(t, addr, path)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tryDialPath(t testing.TB, addr, path string) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, reader, _, err := ws.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		return nil, fmt.Errorf("dialing ws://%s%s: %w", addr, path, err)
	}
	if reader == nil {
		reader = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, reader: reader, maxTime: -1}, nil
}

// writeFrame writes one masked client frame.
func (c *client) writeFrame(opCode ws.OpCode, payload []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(frameTimeout)); err != nil {
		return err
	}
	return wsutil.WriteClientMessage(c.conn, opCode, payload)
}

// writeRaw writes bytes to the socket as they are (for frames that a
// WebSocket library would refuse to produce).
func (c *client) writeRaw(data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(frameTimeout)); err != nil {
		return err
	}
	_, err := c.conn.Write(data)
	return err
}

// sendText sends a text frame and fails the test if it cannot.
func (c *client) sendText(text string) {
	c.t.Helper()
	if err := c.writeFrame(ws.OpText, []byte(text)); err != nil {
		c.t.Fatalf("sending %s: %v", shorten([]byte(text)), err)
	}
}

// sendJSON sends v as one JSON text frame.
func (c *client) sendJSON(v any) {
	c.t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.sendText(string(data))
}

// sendMessage sends a SEND with a string payload, as the standard client
// does: [clientTime, 0, payload, latencyMs] (docs/protocol.md §6.2).
func (c *client) sendMessage(payload string) {
	c.t.Helper()
	c.sendJSON(sendFrame(c.sessionID, payload))
}

func sendFrame(sessionID, payload string) map[string]any {
	return map[string]any{"id": sessionID, "action": "SEND", "args": []any{1234, 0, payload, 7}}
}

// standardJoinArgs returns JOIN args like the 2.0.4 client's (docs/protocol.md §6.1).
func standardJoinArgs(viewID string) map[string]any {
	return map[string]any{
		"name":         testAppID + "/room1",
		"apiKey":       "none",
		"appId":        testAppID,
		"url":          "http://localhost/node.html",
		"persistentId": "persistent-id-of-room1",
		"sdk":          "2.0.4",
		"developerId":  "unknown_dev_id",
		"version":      1,
		"user":         viewID,
		"ticks":        map[string]any{"tick": 50, "delay": 0},
		"dormantDelay": 10,
		"tove":         "tove-of-room1",
		"codeHash":     "code-hash-of-room1",
		"leaveDelay":   1250,
	}
}

// join sends the standard JOIN and returns the SYNC.
func (c *client) join() syncArgs {
	c.t.Helper()
	return c.joinWith(standardJoinArgs(c.viewID))
}

// joinWith sends a JOIN with the given args and returns the SYNC. Only a
// PONG may come before it (docs/protocol.md §6B: SYNC precedes every RECV and TICK).
func (c *client) joinWith(args map[string]any) syncArgs {
	c.t.Helper()
	c.sendJSON(map[string]any{"id": c.sessionID, "action": "JOIN", "args": args})
	for {
		frame := c.mustNext()
		switch frame.Action {
		case protocol.ActionSync:
			return c.sync
		case protocol.ActionPong:
		default:
			if !c.synced {
				c.t.Fatalf("got %s before SYNC: %s", frame.Action, shorten(frame.Raw))
			}
		}
	}
}

// readMessage reads the next data message; control frames are handled
// (ping answered, close returned as *closeError).
func (c *client) readMessage(deadline time.Time) (ws.OpCode, []byte, error) {
	if err := c.conn.SetReadDeadline(deadline); err != nil {
		return 0, nil, err
	}
	var message []byte
	var messageOpCode ws.OpCode
	for {
		header, err := ws.ReadHeader(c.reader)
		if err != nil {
			return 0, nil, err
		}
		payload := make([]byte, header.Length)
		if _, err := io.ReadFull(c.reader, payload); err != nil {
			return 0, nil, err
		}
		if header.Masked {
			return 0, nil, errors.New("server sent a masked frame (RFC 6455 §5.1 forbids it)")
		}
		switch {
		case header.OpCode == ws.OpClose:
			return 0, nil, c.answerClose(payload)
		case header.OpCode == ws.OpPing:
			if err := c.writeFrame(ws.OpPong, payload); err != nil {
				return 0, nil, err
			}
			continue
		case header.OpCode == ws.OpPong:
			continue
		case header.OpCode == ws.OpContinuation:
			message = append(message, payload...)
		default:
			messageOpCode, message = header.OpCode, payload
		}
		if header.Fin {
			return messageOpCode, message, nil
		}
	}
}

// answerClose decodes the server's close frame and completes the closing
// handshake.
func (c *client) answerClose(payload []byte) error {
	code, reason := ws.ParseCloseFrameData(payload)
	if !utf8.ValidString(reason) {
		c.t.Errorf("close reason %q is not valid UTF-8 (RFC 6455 §5.5.1)", reason)
	}
	_ = c.writeFrame(ws.OpClose, ws.NewCloseFrameBody(code, ""))
	return &closeError{Code: int(code), Reason: reason}
}

// next reads and checks the next frame.
func (c *client) next() (serverFrame, error) {
	return c.nextBefore(time.Now().Add(frameTimeout))
}

func (c *client) nextBefore(deadline time.Time) (serverFrame, error) {
	opCode, data, err := c.readMessage(deadline)
	if err != nil {
		return serverFrame{}, err
	}
	if opCode != ws.OpText {
		c.t.Errorf("server sent a frame with opcode %v; only text frames are used (docs/protocol.md §3.1)", opCode)
	}
	if !utf8.Valid(data) {
		c.t.Errorf("server frame is not valid UTF-8: %s", shorten(data))
	}
	var envelope struct {
		ID     *string         `json:"id"`
		Action string          `json:"action"`
		Args   json.RawMessage `json:"args"`
	}
	if err := json.Unmarshal(data, &envelope); err != nil {
		return serverFrame{}, fmt.Errorf("server frame is not a JSON object: %w: %s", err, shorten(data))
	}
	frame := serverFrame{Action: envelope.Action, ID: envelope.ID, Args: envelope.Args, Raw: data}
	c.observe(frame)
	return frame, nil
}

// mustNext reads the next frame or fails the test.
func (c *client) mustNext() serverFrame {
	c.t.Helper()
	frame, err := c.next()
	if err != nil {
		c.t.Fatalf("client %s: reading the next frame: %v", c.viewID, err)
	}
	return frame
}

// observe checks a frame against the session's ordering guarantees and
// records what it carries.
func (c *client) observe(frame serverFrame) {
	c.t.Helper()
	if frame.Action == protocol.ActionPong {
		if frame.ID != nil {
			c.t.Errorf("PONG carries an id (docs/protocol.md §3.4: it must not): %s", shorten(frame.Raw))
		}
		return
	}
	if frame.ID == nil || *frame.ID != c.sessionID {
		c.t.Errorf("%s frame has id %v, want the session id %q (docs/protocol.md §3.4): %s", frame.Action, frame.ID, c.sessionID, shorten(frame.Raw))
	}
	switch frame.Action {
	case protocol.ActionSync:
		c.observeSync(frame)
	case protocol.ActionRecv:
		c.observeRecv(frame)
	case protocol.ActionTick:
		if !c.synced {
			c.t.Errorf("TICK before SYNC")
		}
		var t int64
		if err := json.Unmarshal(frame.Args, &t); err != nil {
			c.t.Errorf("TICK args is not an integer time: %s", shorten(frame.Raw))
			return
		}
		c.observeTime("TICK", t)
		c.ticks++
	}
}

func (c *client) observeTime(what string, t int64) {
	c.t.Helper()
	if t < c.maxTime {
		c.t.Errorf("client %s: %s time %d is before the time %d seen earlier (times must not decrease, docs/protocol.md §6B)", c.viewID, what, t, c.maxTime)
	}
	c.maxTime = max(c.maxTime, t)
}

func (c *client) observeSync(frame serverFrame) {
	c.t.Helper()
	var sync syncArgs
	if err := json.Unmarshal(frame.Args, &sync); err != nil {
		c.t.Errorf("SYNC args: %v: %s", err, shorten(frame.Raw))
		return
	}
	if sync.Time == nil || sync.Seq == nil || sync.Messages == nil || sync.Timeline == "" {
		c.t.Errorf("SYNC lacks time, seq, messages or timeline (docs/protocol.md §8.1): %s", shorten(frame.Raw))
		return
	}
	for i, raw := range sync.Messages {
		message, err := decodeStampedMessage(raw)
		if err != nil {
			c.t.Errorf("SYNC message %d: %v", i, err)
			return
		}
		if i > 0 && message.Seq != sync.decoded[i-1].Seq+1 {
			c.t.Errorf("SYNC messages have a sequence gap: %d then %d", sync.decoded[i-1].Seq, message.Seq)
		}
		if message.Time > *sync.Time {
			c.t.Errorf("SYNC message %d has time %d after the SYNC time %d", message.Seq, message.Time, *sync.Time)
		}
		sync.decoded = append(sync.decoded, message)
	}
	if n := len(sync.decoded); n > 0 && sync.decoded[n-1].Seq != *sync.Seq {
		c.t.Errorf("SYNC seq %d is not the seq %d of its last message (docs/protocol.md §8.1)", *sync.Seq, sync.decoded[n-1].Seq)
	}
	if c.synced {
		// A second SYNC on this connection: what was seen so far must be a
		// prefix of it (no snapshots are taken in these tests).
		if len(c.messages) > len(sync.decoded) {
			c.t.Errorf("second SYNC has %d messages, fewer than the %d seen before", len(sync.decoded), len(c.messages))
		} else {
			for i, seen := range c.messages {
				if !bytes.Equal(seen.Raw, sync.decoded[i].Raw) {
					c.t.Errorf("second SYNC message %d is %s, was %s", i, shorten(sync.decoded[i].Raw), shorten(seen.Raw))
					break
				}
			}
		}
	}
	c.observeTime("SYNC", *sync.Time)
	c.synced = true
	c.sync = sync
	c.messages = append([]stampedMessage(nil), sync.decoded...)
	c.lastSeq = *sync.Seq
}

func (c *client) observeRecv(frame serverFrame) {
	c.t.Helper()
	if !c.synced {
		c.t.Errorf("RECV before SYNC: %s", shorten(frame.Raw))
		return
	}
	message, err := decodeStampedMessage(frame.Args)
	if err != nil {
		c.t.Errorf("RECV: %v", err)
		return
	}
	if message.Seq != c.lastSeq+1 {
		c.t.Errorf("client %s: sequence gap: RECV seq %d after %d, want %d (docs/protocol.md §4.5: gap-free delivery)", c.viewID, message.Seq, c.lastSeq, c.lastSeq+1)
	}
	c.observeTime("RECV", message.Time)
	c.lastSeq = message.Seq
	c.messages = append(c.messages, message)
}

// readUntil reads frames until done returns true for one; it returns the
// messages (RECVs) read on the way, including the last.
func (c *client) readUntil(what string, done func(serverFrame) bool) []stampedMessage {
	c.t.Helper()
	deadline := time.Now().Add(2 * frameTimeout)
	first := len(c.messages)
	for {
		frame, err := c.nextBefore(deadline)
		if err != nil {
			c.t.Fatalf("client %s: waiting for %s: %v", c.viewID, what, err)
		}
		if done(frame) {
			return append([]stampedMessage(nil), c.messages[first:]...)
		}
	}
}

// awaitMessage reads until a RECV whose payload satisfies match, and
// returns that message.
func (c *client) awaitMessage(what string, match func(stampedMessage) bool) stampedMessage {
	c.t.Helper()
	var found stampedMessage
	c.readUntil(what, func(frame serverFrame) bool {
		if frame.Action != protocol.ActionRecv || len(c.messages) == 0 {
			return false
		}
		last := c.messages[len(c.messages)-1]
		if match(last) {
			found = last
			return true
		}
		return false
	})
	return found
}

// awaitPayload reads until the RECV of the message with this string payload.
func (c *client) awaitPayload(payload string) stampedMessage {
	c.t.Helper()
	return c.awaitMessage("RECV of "+payload, func(m stampedMessage) bool { return m.text() == payload })
}

// awaitJoined reads until the users message announcing viewID.
func (c *client) awaitJoined(viewID string) stampedMessage {
	c.t.Helper()
	return c.awaitMessage("users joined "+viewID, func(m stampedMessage) bool { return m.joinedView(viewID) })
}

// awaitAll reads until every payload has been received (in any order).
func (c *client) awaitAll(payloads []string) {
	c.t.Helper()
	missing := make(map[string]bool, len(payloads))
	for _, payload := range payloads {
		missing[payload] = true
	}
	for _, message := range c.messages {
		delete(missing, message.text())
	}
	if len(missing) == 0 {
		return
	}
	c.awaitMessage(fmt.Sprintf("%d payloads", len(missing)), func(m stampedMessage) bool {
		delete(missing, m.text())
		return len(missing) == 0
	})
}

// ping sends a PING and reads until its PONG (docs/protocol.md §6.7).
func (c *client) ping(token string) {
	c.t.Helper()
	c.sendJSON(map[string]any{"action": "PING", "args": token})
	want := `"` + token + `"`
	c.readUntil("PONG "+token, func(frame serverFrame) bool {
		return frame.Action == protocol.ActionPong && string(frame.Args) == want
	})
}

// seqs returns the seqs of every message seen.
func (c *client) seqs() []uint32 {
	seqs := make([]uint32, len(c.messages))
	for i, message := range c.messages {
		seqs[i] = message.Seq
	}
	return seqs
}

// expectClose reads (and checks) frames until the server's close frame; it
// asserts the code and that the reason contains every one of reasonParts
// (case-insensitively). Then it checks that the server ends the TCP
// connection after the closing handshake.
func (c *client) expectClose(code int, reasonParts ...string) *closeError {
	c.t.Helper()
	closed := c.expectCloseFrame(code, reasonParts...)
	if closed != nil {
		c.expectEOF()
	}
	return closed
}

// expectCloseFrame is expectClose without the wait for the end of the TCP
// connection.
func (c *client) expectCloseFrame(code int, reasonParts ...string) *closeError {
	c.t.Helper()
	closed := c.readClose()
	if closed == nil {
		return nil
	}
	if closed.Code != code {
		c.t.Errorf("close code %d (reason %q), want %d", closed.Code, closed.Reason, code)
	}
	for _, part := range reasonParts {
		if !strings.Contains(strings.ToLower(closed.Reason), strings.ToLower(part)) {
			c.t.Errorf("close reason %q does not mention %q", closed.Reason, part)
		}
	}
	return closed
}

// readClose reads until the close frame and returns it (nil after failing
// the test if the connection ended otherwise).
func (c *client) readClose() *closeError {
	c.t.Helper()
	deadline := time.Now().Add(2 * frameTimeout)
	for {
		_, err := c.nextBefore(deadline)
		var closed *closeError
		switch {
		case errors.As(err, &closed):
			return closed
		case err != nil:
			c.t.Errorf("client %s: waiting for a close frame: %v", c.viewID, err)
			return nil
		}
	}
}

// expectEOF checks that the server closes the socket after the closing
// handshake (it must not keep a closed connection open).
func (c *client) expectEOF() {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(frameTimeout)); err != nil {
		c.t.Error(err)
		return
	}
	n, err := io.Copy(io.Discard, c.reader)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isConnectionReset(err) {
		c.t.Errorf("after the close frame: %v (want the server to close the connection)", err)
	}
	if n > 0 {
		c.t.Errorf("server sent %d bytes after its close frame", n)
	}
}

func isConnectionReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// expectOpen checks that the connection still works: a PING is answered.
func (c *client) expectOpen() {
	c.t.Helper()
	c.ping(fmt.Sprintf("alive-%d", sessionCounter.Add(1)))
}
