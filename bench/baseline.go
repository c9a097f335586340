package bench

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gobwas/ws"
)

// Limits of the baseline server.
const (
	// baselineQueueFramesMax bounds each connection's outbound queue; a
	// client that falls further behind is disconnected.
	baselineQueueFramesMax = 1024
	baselineWriteTimeout   = 10 * time.Second
	// baselineFirstSeq is the "last assigned" seq of a new room, as the
	// reflector's (docs/protocol.md §4.5), so that the client's wraparound is exercised.
	baselineFirstSeq = uint32(0xFFFFFFF0)
)

// Baseline is the simplest WebSocket broadcast server that the bench
// client can measure: per room (last path segment), a JOIN is answered
// with a SYNC-shaped frame and every SEND is echoed to all room members as
// a RECV stamped with the room's counter. No ticks, users, persistence or
// validation: it measures the machine and the client, not a reflector.
type Baseline struct {
	listener net.Listener
	// DropHook, when set before Serve, is asked for every stamped message;
	// true drops it for every member (tests use it to fake a lossy server).
	DropHook func(room string, seq uint32) bool

	mu     sync.Mutex
	rooms  map[string]*baselineRoom
	conns  map[*baselineConn]struct{}
	closed bool
	wait   sync.WaitGroup
}

type baselineRoom struct {
	name    string
	start   time.Time
	seq     uint32
	members map[*baselineConn]struct{}
}

type baselineConn struct {
	conn  net.Conn
	queue chan []byte
	done  chan struct{}
	once  sync.Once
}

func (c *baselineConn) close() {
	c.once.Do(func() { close(c.done); c.conn.Close() })
}

// enqueue queues a frame without blocking; a full queue closes the conn.
func (c *baselineConn) enqueue(frame []byte) {
	select {
	case c.queue <- frame:
	default:
		c.close()
	}
}

// ListenBaseline listens on addr (host:port; port 0 picks one).
func ListenBaseline(addr string) (*Baseline, error) {
	listener, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return &Baseline{listener: listener, rooms: map[string]*baselineRoom{}, conns: map[*baselineConn]struct{}{}}, nil
}

// Addr is the listening address.
func (b *Baseline) Addr() string { return b.listener.Addr().String() }

// Serve accepts connections until Close.
func (b *Baseline) Serve() error {
	for {
		conn, err := b.listener.Accept()
		if err != nil {
			b.mu.Lock()
			closed := b.closed
			b.mu.Unlock()
			if closed {
				return nil
			}
			return err
		}
		b.wait.Go(func() { b.serveConn(conn) })
	}
}

// Close stops accepting, closes every connection and waits for their
// goroutines.
func (b *Baseline) Close() error {
	b.mu.Lock()
	b.closed = true
	for c := range b.conns {
		c.close()
	}
	b.mu.Unlock()
	err := b.listener.Close()
	b.wait.Wait()
	return err
}

func (b *Baseline) serveConn(netConn net.Conn) {
	var path string
	upgrader := ws.Upgrader{OnRequest: func(uri []byte) error {
		if q := bytes.IndexByte(uri, '?'); q >= 0 {
			uri = uri[:q]
		}
		path = string(uri[bytes.LastIndexByte(uri, '/')+1:])
		return nil
	}}
	netConn.SetDeadline(time.Now().Add(baselineWriteTimeout))
	if _, err := upgrader.Upgrade(netConn); err != nil || path == "" {
		netConn.Close()
		return
	}
	netConn.SetDeadline(time.Time{})
	c := &baselineConn{conn: netConn, queue: make(chan []byte, baselineQueueFramesMax), done: make(chan struct{})}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		netConn.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.mu.Unlock()
	b.wait.Go(func() { baselineWriter(c) })

	var room *baselineRoom
	frames := newFrameReader(netConn, func(header ws.Header, payload []byte) error {
		if header.OpCode == ws.OpPing {
			c.enqueue(ws.MustCompileFrame(ws.NewPongFrame(bytes.Clone(payload))))
		}
		return nil
	})
	for {
		frame, err := frames.next()
		if err != nil {
			break
		}
		action, args := baselineParse(frame)
		switch action {
		case "JOIN":
			room = b.join(path, c)
		case "SEND":
			if room != nil && args != nil {
				b.broadcast(room, args)
			}
		}
	}
	b.mu.Lock()
	delete(b.conns, c)
	if room != nil {
		delete(room.members, c)
		if len(room.members) == 0 {
			delete(b.rooms, room.name)
		}
	}
	b.mu.Unlock()
	c.close()
}

// baselineParse returns the action and, for SEND, the payload element
// (args[2]) of a client frame.
func baselineParse(frame []byte) (string, json.RawMessage) {
	var envelope struct {
		Action string            `json:"action"`
		Args   []json.RawMessage `json:"args"`
	}
	if json.Unmarshal(frame, &envelope) != nil {
		// JOIN args are an object: decode the action alone.
		var action struct {
			Action string `json:"action"`
		}
		json.Unmarshal(frame, &action)
		return action.Action, nil
	}
	if envelope.Action == "SEND" && len(envelope.Args) >= 3 {
		return envelope.Action, envelope.Args[2]
	}
	return envelope.Action, nil
}

func (b *Baseline) join(name string, c *baselineConn) *baselineRoom {
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.rooms[name]
	if room == nil {
		room = &baselineRoom{name: name, start: time.Now(), seq: baselineFirstSeq, members: map[*baselineConn]struct{}{}}
		b.rooms[name] = room
	}
	frame := []byte(`{"id":` + strconv.Quote(name) + `,"action":"SYNC","args":{"url":"","messages":[],"time":`)
	frame = strconv.AppendInt(frame, time.Since(room.start).Milliseconds(), 10)
	frame = append(frame, `,"seq":`...)
	frame = strconv.AppendUint(frame, uint64(room.seq), 10)
	frame = append(frame, `,"reflector":"baseline","timeline":"baseline","flags":{}}}`...)
	// Queued under the lock: the SYNC precedes every RECV after its seq.
	c.enqueue(ws.MustCompileFrame(ws.NewTextFrame(frame)))
	room.members[c] = struct{}{}
	return room
}

func (b *Baseline) broadcast(room *baselineRoom, payload json.RawMessage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	room.seq++
	if b.DropHook != nil && b.DropHook(room.name, room.seq) {
		return
	}
	frame := []byte(`{"id":` + strconv.Quote(room.name) + `,"action":"RECV","args":[`)
	frame = strconv.AppendInt(frame, time.Since(room.start).Milliseconds(), 10)
	frame = append(frame, ',')
	frame = strconv.AppendUint(frame, uint64(room.seq), 10)
	frame = append(frame, ',')
	frame = append(frame, payload...)
	frame = append(frame, ",0]}"...)
	compiled := ws.MustCompileFrame(ws.NewTextFrame(frame))
	for member := range room.members {
		member.enqueue(compiled)
	}
}

// baselineWriter writes queued frames, flushing when the queue is empty.
func baselineWriter(c *baselineConn) {
	writer := bufio.NewWriterSize(c.conn, 32<<10)
	for {
		var frame []byte
		select {
		case frame = <-c.queue:
		case <-c.done:
			return
		}
		c.conn.SetWriteDeadline(time.Now().Add(baselineWriteTimeout))
		if err := writeAndDrain(writer, c.queue, frame); err != nil {
			c.close()
			return
		}
	}
}

func writeAndDrain(writer *bufio.Writer, queue chan []byte, frame []byte) error {
	for range baselineQueueFramesMax {
		if _, err := writer.Write(frame); err != nil {
			return err
		}
		select {
		case frame = <-queue:
		default:
			return writer.Flush()
		}
	}
	return writer.Flush()
}
