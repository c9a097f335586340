package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
)

// pulseInterval is how often an otherwise silent client sends PULSE (the
// standard client does after 25 s, docs/protocol.md §6.8).
const pulseInterval = 20 * time.Second

// payloadPrefix marks the payloads of this generator: "b:<member>:<index>:<sendNs>:".
const payloadPrefix = "b:"

// loadClient is one connection of the latency scenario. Its reader
// goroutine owns the receive bookkeeping; counters read while it runs are
// atomic.
type loadClient struct {
	run       *latencyRun
	session   int
	member    int // index of the client within its session
	sessionID string
	viewID    string
	// url is the reflector URL the client joins through (clusterURL);
	// empty: the run's.
	url string

	conn    net.Conn
	frames  *frameReader
	writeMu sync.Mutex
	// writeBuf holds the frame being written; guarded by writeMu.
	writeBuf []byte

	// Reader state.
	lastSeq     uint32
	received    [][]uint8 // [sender member][message index] → times received
	lastIndex   []int     // last index received per sender
	duplicates  int64
	outOfOrder  int64
	unexpected  int64
	readErr     error
	readerDone  chan struct{}
	distinct    atomic.Int64 // bench messages received at least once
	recvFrames  atomic.Int64
	ticks       atomic.Int64
	usersFrames atomic.Int64

	sent atomic.Int64
}

// write sends one text frame; the reader's pongs share the lock.
func (c *loadClient) write(opCode ws.OpCode, payload []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	if err := c.conn.SetWriteDeadline(time.Now().Add(c.run.config.IOTimeout)); err != nil {
		return err
	}
	c.writeBuf = appendClientFrame(c.writeBuf[:0], opCode, payload)
	_, err := c.conn.Write(c.writeBuf)
	return err
}

// connect dials, sends JOIN (docs/protocol.md §6.1) and waits for SYNC.
func (c *loadClient) connect(ctx context.Context) error {
	if err := c.dial(ctx); err != nil {
		return err
	}
	_, err := c.join(nil)
	return err
}

// dial opens the WebSocket connection of the client's session.
func (c *loadClient) dial(ctx context.Context) error {
	if c.url != "" {
		return c.dialURL(ctx, c.url)
	}
	return c.dialURL(ctx, c.run.config.URL)
}

// dialURL opens the WebSocket connection of the client's session at base,
// a reflector URL without the session id. The failover scenario's clients
// move between the URLs of several nodes, so the URL is not the run's.
func (c *loadClient) dialURL(ctx context.Context, base string) error {
	dialer := ws.Dialer{Timeout: c.run.config.IOTimeout}
	conn, buffered, _, err := dialer.Dial(ctx, base+"/"+c.sessionID)
	if err != nil {
		return fmt.Errorf("dial %s/%s: %w", base, c.sessionID, err)
	}
	c.conn = conn
	var source io.Reader = conn
	if buffered != nil {
		source = io.MultiReader(buffered, conn)
	}
	c.frames = newFrameReader(source, func(header ws.Header, payload []byte) error {
		if header.OpCode == ws.OpPing {
			return c.write(ws.OpPong, payload)
		}
		return nil
	})
	return nil
}

// join sends JOIN and waits for SYNC, whose frame and number of messages
// it hands to onSync (when not nil, with the time the frame was complete;
// the slice is valid during the call only). It returns the time JOIN was
// sent. A SYNC may come as WebSocket fragments (joined by the frame
// reader) and, from the reference reflector, as chunks (docs/protocol.md
// §3.3); its fields may come in any order.
func (c *loadClient) join(onSync func(frame []byte, messages int, received time.Time) error) (time.Time, error) {
	join, err := json.Marshal(map[string]any{
		"id": c.sessionID, "action": "JOIN", "args": map[string]any{
			"name": "io.metronome.bench/" + c.sessionID, "apiKey": "none", "appId": "io.metronome.bench",
			"url": "http://localhost/bench", "persistentId": "bench-" + c.sessionID, "sdk": "2.0.4",
			"developerId": "bench", "version": 1, "user": c.viewID,
			"ticks": map[string]any{"tick": 50, "delay": 0}, "dormantDelay": 10,
			"codeHash": "bench", "leaveDelay": 1250,
		},
	})
	if err != nil {
		return time.Time{}, err
	}
	sent := time.Now()
	if err := c.write(ws.OpText, join); err != nil {
		return sent, fmt.Errorf("JOIN %s: %w", c.viewID, err)
	}
	if err := c.conn.SetReadDeadline(time.Now().Add(c.run.config.IOTimeout)); err != nil {
		return sent, err
	}
	var chunks chunkAssembler
	defer chunks.release()
	for range 1000 { // frames before SYNC: at most a few INFO/TICK
		frame, err := c.frames.next()
		if err != nil {
			return sent, fmt.Errorf("waiting for SYNC of %s: %w", c.viewID, err)
		}
		received := time.Now()
		frame, complete, err := chunks.add(frame)
		if err != nil {
			return sent, fmt.Errorf("waiting for SYNC of %s: %w", c.viewID, err)
		}
		if !complete {
			continue
		}
		envelope, err := scanEnvelope(frame)
		if err != nil {
			return sent, fmt.Errorf("waiting for SYNC of %s: frame of %d bytes starting %q: %w", c.viewID, len(frame), excerpt(frame), err)
		}
		if envelope.action != "SYNC" {
			continue
		}
		messages, err := envelope.syncMessages()
		if err != nil {
			return sent, fmt.Errorf("SYNC of %s: %w", c.viewID, err)
		}
		if !envelope.hasSeq {
			return sent, fmt.Errorf("SYNC of %s has no uint32 args.seq: %.200s", c.viewID, frame)
		}
		if onSync != nil {
			if err := onSync(frame, messages, received); err != nil {
				return sent, err
			}
		}
		c.lastSeq = envelope.seq
		return sent, c.conn.SetReadDeadline(time.Time{})
	}
	return sent, fmt.Errorf("no SYNC for %s within 1000 frames", c.viewID)
}

// prepareReceive sets up the receive bookkeeping for up to sendsMax
// messages from each member of the session.
func (c *loadClient) prepareReceive(sendsMax int) {
	c.received = make([][]uint8, c.run.config.Clients)
	for i := range c.received {
		c.received[i] = make([]uint8, sendsMax)
	}
	c.lastIndex = make([]int, c.run.config.Clients)
	for i := range c.lastIndex {
		c.lastIndex[i] = -1
	}
	c.readerDone = make(chan struct{})
}

// startReader runs a receive goroutine until the connection is closed.
func (c *loadClient) startReader(sendsMax int) {
	c.prepareReceive(sendsMax)
	go func() {
		defer close(c.readerDone)
		for {
			frame, err := c.frames.next()
			if err != nil {
				if !c.run.closing.Load() {
					c.readErr = err
				}
				return
			}
			if err := c.handle(frame); err != nil {
				c.readErr = err
				return
			}
		}
	}()
}

func (c *loadClient) handle(frame []byte) error {
	message, err := parseInbound(frame)
	if err != nil {
		return err
	}
	switch message.action {
	case "TICK":
		c.ticks.Add(1)
		return nil
	case "RECV":
	default:
		return nil
	}
	now := time.Now()
	c.recvFrames.Add(1)
	if message.seq != c.lastSeq+1 {
		c.outOfOrder++
	}
	if int32(message.seq-c.lastSeq) > 0 {
		c.lastSeq = message.seq
	}
	c.recordStamped(message, now)
	return nil
}

// recordStamped is the exactly-once bookkeeping of one stamped message,
// after the seq check: it counts a users message (an object payload), or
// marks the generator's message that the payload names as received,
// counting duplicates, messages of one sender out of order and payloads
// that are not the generator's, and records the latency of the client's
// own. It returns the sender and index of a generator's message (sender
// -1 for any other) and whether this client received it for the first
// time. handle calls it for every RECV; the failover scenario also calls
// it for the messages of a SYNC after a rejoin that the client had not
// received before the break, so that both count a message once however it
// arrives.
func (c *loadClient) recordStamped(message inbound, now time.Time) (sender, index int, first bool) {
	if message.objectPayload {
		c.usersFrames.Add(1)
		return -1, 0, false
	}
	sender, index, sentNs, ok := parsePayload(message.stringPayload)
	if !ok || sender >= len(c.received) || index >= len(c.received[sender]) {
		c.unexpected++
		return -1, 0, false
	}
	times := c.received[sender][index]
	if times < math.MaxUint8 {
		c.received[sender][index] = times + 1
	}
	if times > 0 {
		c.duplicates++
		return sender, index, false
	}
	c.distinct.Add(1)
	if index <= c.lastIndex[sender] {
		c.outOfOrder++
	}
	c.lastIndex[sender] = index
	if sender == c.member {
		c.run.recordLatency(now, sentNs)
	}
	return sender, index, true
}

// appendPayload appends the payload of message index of member, padded
// with 'x' to payloadBytes.
func appendPayload(dst []byte, member, index int, sentNs int64, payloadBytes int) []byte {
	start := len(dst)
	dst = append(dst, payloadPrefix...)
	dst = strconv.AppendInt(dst, int64(member), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, int64(index), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, sentNs, 10)
	dst = append(dst, ':')
	for len(dst)-start < payloadBytes {
		dst = append(dst, 'x')
	}
	return dst
}

func parsePayload(payload []byte) (member, index int, sentNs int64, ok bool) {
	if len(payload) < len(payloadPrefix) || string(payload[:len(payloadPrefix)]) != payloadPrefix {
		return 0, 0, 0, false
	}
	rest := payload[len(payloadPrefix):]
	var fields [3]int64
	for i := range fields {
		end := 0
		for end < len(rest) && rest[end] != ':' {
			end++
		}
		value, err := strconv.ParseInt(string(rest[:end]), 10, 64)
		if err != nil || end == len(rest) || value < 0 {
			return 0, 0, 0, false
		}
		fields[i] = value
		rest = rest[end+1:]
	}
	return int(fields[0]), int(fields[1]), fields[2], true
}

// sendLoop sends up to sendsMax SENDs paced at the configured rate, the
// first at firstSend, none at or after sendEnd.
func (c *loadClient) sendLoop(ctx context.Context, firstSend, sendEnd time.Time, sendsMax int) error {
	interval := c.run.interval
	timer := time.NewTimer(time.Until(firstSend))
	defer timer.Stop()
	pulse := time.NewTicker(pulseInterval)
	defer pulse.Stop()
	frame := make([]byte, 0, 128+c.run.config.PayloadBytes)
	header := `{"id":"` + c.sessionID + `","action":"SEND","args":[0,0,"`
	next := firstSend
	for index := 0; index < sendsMax; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-pulse.C:
			if err := c.write(ws.OpText, []byte(`{"action":"PULSE"}`)); err != nil {
				return err
			}
			continue
		case <-timer.C:
		}
		now := time.Now()
		if !now.Before(sendEnd) {
			return nil
		}
		frame = append(frame[:0], header...)
		frame = appendPayload(frame, c.member, index, c.run.sinceEpoch(now), c.run.config.PayloadBytes)
		frame = append(frame, `",0]}`...)
		if err := c.write(ws.OpText, frame); err != nil {
			return fmt.Errorf("SEND from %s: %w", c.viewID, err)
		}
		c.sent.Add(1)
		index++
		// Absolute schedule: a late send does not shift the later ones;
		// sends that fell more than one interval behind are skipped.
		next = next.Add(interval)
		if behind := time.Since(next); behind > interval {
			next = next.Add(behind / interval * interval)
		}
		timer.Reset(time.Until(next))
	}
	return nil
}

// close closes the connection; the reader then ends.
func (c *loadClient) close() {
	if c.conn != nil {
		c.conn.Close()
	}
}
