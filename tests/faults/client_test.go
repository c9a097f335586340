package faults

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coder/websocket"
)

// client is one raw WebSocket client of a session. It remembers every
// message the server sent it on the current timeline (by RECV or in a
// SYNC), so that a later SYNC can be checked against it (check_test.go).
// While connected, a reader goroutine records what arrives and a sender
// goroutine sends small unique payloads at a fixed rate.
type client struct {
	session string
	view    string

	mu sync.Mutex
	// seen is what the server sent on timeline (seen.timeline is "" before
	// the first SYNC).
	seen history
	// problems are violations noticed while connected (a seq sent twice
	// with different contents).
	problems []string
	// sent counts SENDs; ownReceived counts RECVs of this client's own
	// payloads since the last connect, ownTotal all of them.
	sent, ownReceived, ownTotal int
	// closeCode is the code of the server's close of the last connection
	// (-1: the connection broke without a close frame).
	closeCode websocket.StatusCode

	conn   *websocket.Conn
	cancel context.CancelFunc
	done   sync.WaitGroup
	// ended is closed when the reader of the current connection returns.
	ended chan struct{}
}

// Client timing and limits.
const (
	// joinTimeout bounds dial, JOIN and the wait for SYNC.
	joinTimeout = 10 * time.Second
	// frameBytesMax is the largest frame the client reads (a SYNC holds
	// every message of the session).
	frameBytesMax = 64 << 20
	// tickMs is the tick interval the clients ask for.
	tickMs = 200
)

func newClient(session, view string) *client {
	return &client{session: session, view: view, closeCode: -1}
}

// closeError reports that the server closed the connection before SYNC.
type closeError struct{ code websocket.StatusCode }

func (e closeError) Error() string {
	return fmt.Sprintf("closed by the server with %d before SYNC", int(e.code))
}

// refusedError reports that the server answered the upgrade with an
// HTTP status (503 while its storage fails).
type refusedError struct{ status int }

func (e refusedError) Error() string { return fmt.Sprintf("upgrade refused with HTTP %d", e.status) }

// join dials url, sends JOIN and returns the SYNC. It starts nothing:
// the caller checks the SYNC, then calls run.
func (c *client) join(url string) (syncFrame, error) {
	ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
	defer cancel()
	conn, response, err := websocket.Dial(ctx, url, nil)
	if err != nil {
		if response != nil && response.StatusCode != http.StatusSwitchingProtocols {
			return syncFrame{}, refusedError{response.StatusCode}
		}
		return syncFrame{}, err
	}
	conn.SetReadLimit(frameBytesMax)
	join, _ := json.Marshal(map[string]any{"id": c.session, "action": "JOIN", "args": map[string]any{
		"name": "io.metronome.faults/" + c.session, "version": 1, "apiKey": "none",
		"appId": "io.metronome.faults", "persistentId": c.session, "user": c.view,
		"ticks": map[string]any{"tick": tickMs},
	}})
	if err := conn.Write(ctx, websocket.MessageText, join); err != nil {
		conn.CloseNow()
		return syncFrame{}, err
	}
	for {
		_, data, err := conn.Read(ctx)
		if err != nil {
			conn.CloseNow()
			if code := websocket.CloseStatus(err); code != -1 {
				return syncFrame{}, closeError{code}
			}
			return syncFrame{}, err
		}
		var frame serverFrame
		if err := json.Unmarshal(data, &frame); err != nil {
			conn.CloseNow()
			return syncFrame{}, fmt.Errorf("frame before SYNC: %w: %.200s", err, data)
		}
		if frame.Action != "SYNC" {
			continue // TICK, INFO
		}
		var sync syncFrame
		if err := json.Unmarshal(frame.Args, &sync); err != nil {
			conn.CloseNow()
			return syncFrame{}, fmt.Errorf("SYNC: %w: %.200s", err, data)
		}
		c.conn = conn
		return sync, nil
	}
}

// serverFrame is the envelope of a frame from the server.
type serverFrame struct {
	Action string          `json:"action"`
	Args   json.RawMessage `json:"args"`
}

// run starts reading and, when sendInterval > 0, sending on the joined
// connection.
func (c *client) run(sendInterval time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.mu.Lock()
	c.ownReceived = 0
	c.closeCode = -1
	c.mu.Unlock()
	c.ended = make(chan struct{})
	c.done.Add(1)
	go c.read(ctx)
	if sendInterval > 0 {
		c.done.Add(1)
		go c.send(ctx, sendInterval)
	}
}

// read records every RECV until the connection ends.
func (c *client) read(ctx context.Context) {
	defer c.done.Done()
	defer close(c.ended)
	defer c.cancel() // the sender stops with the connection
	for {
		_, data, err := c.conn.Read(ctx)
		if err != nil {
			c.mu.Lock()
			c.closeCode = websocket.CloseStatus(err)
			c.mu.Unlock()
			return
		}
		var frame serverFrame
		if err := json.Unmarshal(data, &frame); err != nil || frame.Action != "RECV" {
			continue
		}
		c.record(frame.Args)
	}
}

// record remembers a RECV's message.
func (c *client) record(args json.RawMessage) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if problem := c.seen.add(args); problem != "" {
		c.problems = append(c.problems, "RECV: "+problem)
	}
	if isOwnPayload(payloadOf(args), c.view) {
		c.ownReceived++
		c.ownTotal++
	}
}

// send sends SENDs every interval until ctx ends or a write fails.
func (c *client) send(ctx context.Context, interval time.Duration) {
	defer c.done.Done()
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		c.mu.Lock()
		c.sent++
		payload := fmt.Sprintf("%s#%d", c.view, c.sent)
		c.mu.Unlock()
		frame, _ := json.Marshal(map[string]any{"id": c.session, "action": "SEND", "args": []any{0, 0, payload}})
		if err := c.conn.Write(ctx, websocket.MessageText, frame); err != nil {
			return
		}
	}
}

// stop ends the connection (if any) and waits for its goroutines.
func (c *client) stop() {
	if c.cancel != nil {
		c.cancel()
	}
	if c.conn != nil {
		c.conn.CloseNow()
	}
	c.done.Wait()
	c.conn, c.cancel, c.ended = nil, nil, nil
}

// wait waits up to timeout for the connection to end by itself (the
// server closed it or died) and reports whether it did.
func (c *client) wait(timeout time.Duration) bool {
	if c.ended == nil {
		return true
	}
	select {
	case <-c.ended:
		return true
	case <-time.After(timeout):
		return false
	}
}

// ownMessages returns the number of its own messages the client got
// back, over all its connections.
func (c *client) ownMessages() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ownTotal
}

// status returns the close code of the last connection and the number
// of its own messages the client got back since it started.
func (c *client) status() (code websocket.StatusCode, own int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode, c.ownReceived
}
