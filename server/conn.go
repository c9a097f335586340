package server

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// conn is one client WebSocket connection.
//
// Writing: the session actor queues frames (bounded: a client that does
// not keep up is disconnected with a reconnect code instead of stalling the
// session or growing memory without limit) and then flushes the queue. A
// flush writes everything queued in one write, without blocking, in the
// calling goroutine; only when the socket does not take it all (a slow
// client), or for the close handshake, does a writer goroutine take over,
// and it exits when the queue is empty. An idle connection has no writer
// goroutine and no write buffer.
//
// Reading: a reader goroutine decodes frames and hands them to the session.
// Where the platform allows (conn_readpoll_linux.go) it exits when the
// socket has nothing more to read, returning its read buffer to a pool,
// and a shared poller starts a new one when data arrives. An idle
// connection then has no goroutine at all.
type conn struct {
	id      reflector.ConnID
	server  *Server
	netConn net.Conn
	// rawConn gives non-blocking writes and read readiness on the socket;
	// nil unless the connection is a plain TCP socket (socketOf): nil for
	// TLS, whose socket carries ciphertext, and for net.Pipe in tests.
	rawConn syscall.RawConn
	remote  string
	// token is the connection's token in AuthToken mode, nil otherwise:
	// every JOIN is authorized with it (auth.go). Set before reading starts.
	token *verifiedToken
	// onFinished runs once when the connection is closed (server accounting).
	onFinished func()

	// Owned by the running reader goroutine.
	reader       *bufio.Reader // nil while the reader is parked
	leftover     []byte        // read before the socket (bytes buffered at the upgrade)
	messages     *messageReader
	session      *sessionActor
	pongsPending bool // pongs queued, not yet flushed
	// lastInput is when the last frame arrived; parkAfterIdle how long the
	// reader waits for the next one before it parks.
	lastInput     time.Time
	parkAfterIdle time.Duration
	pollKey       uint64 // non-zero: registered with the read poller
	// joinsRead counts the JOIN frames read; a limited address's JOINs
	// after the first take tokens of its JOIN rate (joinrate.go).
	joinsRead   int
	joinLimited bool
	joinAddress netip.Addr
	readable    readableWaiter

	// flushPending is owned by the session actor: the conn has frames
	// queued since the actor's last flush.
	flushPending bool

	// writer writes without blocking; used by whoever holds writing.
	writer nonBlockingWriter

	mu          sync.Mutex
	queue       []outFrame
	spare       []outFrame // the queue's other buffer, reused while writing
	queuedBytes int
	// backlogSince is when the writer goroutine took over (the socket
	// did not take everything at once); zero while the queue is written
	// inline. A backlog older than QueueAgeMax cuts the client.
	backlogSince   time.Time
	closeCode      int // non-zero: close requested
	closeReason    string
	writing        bool          // a goroutine owns the socket's write side
	readerGone     bool          // the reader has exited: write what is queued, then close
	readerParked   bool          // no reader goroutine runs; the poller starts one
	closeRequested chan struct{} // closed when a close is requested
	readerDone     chan struct{} // closed when the reader exits
	writerDone     chan struct{} // closed when the connection is closed
}

func newConn(server *Server, id reflector.ConnID, netConn net.Conn, rw *bufio.ReadWriter, remote string) *conn {
	c := &conn{
		id:             id,
		server:         server,
		netConn:        netConn,
		remote:         remote,
		closeRequested: make(chan struct{}),
		readerDone:     make(chan struct{}),
		writerDone:     make(chan struct{}),
	}
	// The bytes the client sent after its upgrade request are read first;
	// then rw is dropped: reads and writes go to the socket directly (the
	// upgrade response in rw.Writer was flushed by the upgrader).
	if buffered := rw.Reader.Buffered(); buffered > 0 {
		leftover, _ := rw.Reader.Peek(buffered)
		c.leftover = append([]byte(nil), leftover...)
	}
	c.rawConn = socketOf(netConn)
	return c
}

// socketOf returns the raw socket of a plain TCP connection, whose bytes
// are the WebSocket stream itself; nil for anything else. A *tls.Conn
// must never be read or written through its socket (the bytes there are
// TLS records), nor polled for readability (a TLS record may be buffered
// in the *tls.Conn, or the socket may hold a record that decrypts to
// nothing): it keeps a reader goroutine and writes through Write. Only
// *net.TCPConn is accepted, so that no other wrapper slips through.
func socketOf(netConn net.Conn) syscall.RawConn {
	if limited, ok := netConn.(*limitedConn); ok {
		netConn = limited.Conn // the listener's accounting (listenlimit.go)
	}
	tcp, ok := netConn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rawConn, err := tcp.SyscallConn()
	if err != nil {
		return nil
	}
	return rawConn
}

// enqueue queues a frame (frame followed by parts) for sending; the caller
// flushes. Ticks are skipped while the queue holds unsent frames (docs/protocol.md
// §4.2); droppable frames (ephemeral, §22) while the socket is behind: a
// writer goroutine still owns it with frames of earlier flushes. A full
// queue closes the connection with CloseSlowClient (the client reconnects
// and resyncs).
func (c *conn) enqueue(frame []byte, parts [][]byte, tick, droppable bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	if c.lagsLocked() {
		c.cutLaggingLocked()
		return
	}
	if tick && len(c.queue) > 0 {
		c.server.metrics.ticksSkipped.Add(1)
		return
	}
	if droppable && c.writing {
		c.server.metrics.ephemeralSkipped.Add(1)
		return
	}
	size := len(frame)
	for _, part := range parts {
		size += len(part)
	}
	limits := &c.server.config
	// A frame larger than QueueBytesMax (a big SYNC) is accepted into an
	// empty queue, so that no client is locked out by its session's size.
	if len(c.queue) >= limits.QueueFramesMax || (len(c.queue) > 0 && c.queuedBytes+size > limits.QueueBytesMax) {
		c.server.metrics.slowClients.Add(1)
		c.requestCloseLocked(protocol.CloseSlowClient,
			"client too slow: send queue full (QueueFramesMax/QueueBytesMax), please reconnect")
		return
	}
	c.queue = append(c.queue, outFrame{data: frame, parts: parts, size: size})
	c.queuedBytes += size
}

// lagsLocked reports whether the connection has had a backlog (frames the
// socket would not take) for longer than QueueAgeMax.
func (c *conn) lagsLocked() bool {
	return !c.backlogSince.IsZero() && time.Since(c.backlogSince) > c.server.config.QueueAgeMax
}

// cutLaggingLocked drops what is queued and asks for a close with
// CloseSlowClient: the client resyncs when it reconnects, so nothing
// queued is worth the wait.
func (c *conn) cutLaggingLocked() {
	if c.closeCode != 0 {
		return
	}
	clear(c.queue)
	c.queue, c.queuedBytes = c.queue[:0], 0
	c.server.metrics.slowClients.Add(1)
	c.server.metrics.slowClientsLagging.Add(1)
	c.server.logger.Info("client too slow: its send queue was not emptied for QueueAgeMax; closing with 4001",
		"conn", c.id, "remote", c.remote, "backlog_since", c.backlogSince, "queue_age_max", c.server.config.QueueAgeMax)
	// The write in progress may hold megabytes the client reads at a
	// trickle: it gets closeHandshakeTimeout to finish, then the
	// connection ends without a close frame.
	_ = c.netConn.SetWriteDeadline(time.Now().Add(closeHandshakeTimeout))
	c.requestCloseLocked(protocol.CloseSlowClient, fmt.Sprintf(
		"client too slow: frames waited more than %s to be sent (QueueAgeMax), please reconnect", c.server.config.QueueAgeMax))
}

// close asks for a close frame after the queued frames.
func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	c.requestCloseLocked(code, reason)
	c.mu.Unlock()
	c.flush()
}

func (c *conn) requestCloseLocked(code int, reason string) {
	if c.closeCode != 0 {
		return
	}
	c.closeCode = code
	c.closeReason = protocol.TruncateReason(reason)
	close(c.closeRequested)
}

// closeHandshakeTimeout is how long the server waits for the client's close
// frame (or EOF) after sending its own.
const closeHandshakeTimeout = 2 * time.Second

// outFrame is a queued frame: a text frame (data followed by parts), or a
// pong answering a ping.
type outFrame struct {
	data  []byte
	parts [][]byte
	size  int // len(data) + the parts' lengths
	pong  bool
}

// flush writes what is queued. It never blocks on the socket: what the
// socket takes at once is written by the calling goroutine (write
// coalescing: all queued frames in one write); the rest, and the close
// handshake, are left to a writer goroutine.
func (c *conn) flush() {
	c.mu.Lock()
	if c.writing || (len(c.queue) == 0 && c.closeCode == 0 && !c.readerGone) {
		c.mu.Unlock()
		return
	}
	c.writing = true
	if c.closeCode != 0 || c.readerGone || c.rawConn == nil || c.queuedBytes > inlineWriteBytesMax {
		c.mu.Unlock()
		go c.writeLoop(nil)
		return
	}
	batch := c.takeQueueLocked()
	c.mu.Unlock()

	buffer := getWriteBuffer()
	data := appendFrames((*buffer)[:0], batch)
	frames := len(batch)
	clear(batch)
	written, err := c.writer.write(c.rawConn, data)
	if err == nil && written == len(data) {
		*buffer = data
		putWriteBuffer(buffer)
		c.server.metrics.countWrite(frames)
		c.mu.Lock()
		if cap(batch) <= queueKeepFramesMax {
			c.spare = batch[:0]
		}
		if len(c.queue) == 0 && c.closeCode == 0 && !c.readerGone {
			c.writing = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		go c.writeLoop(nil)
		return
	}
	// The socket did not take everything (or failed): a goroutine writes
	// the rest, blocking, and reports the error if there is one.
	c.server.metrics.countWrite(frames)
	go c.writeLoop(data[written:])
}

// takeQueueLocked returns the queued frames and empties the queue; the
// writer hands the batch back with recycleBatch.
func (c *conn) takeQueueLocked() []outFrame {
	batch := c.queue
	c.queue = c.spare[:0]
	c.spare = nil
	c.queuedBytes = 0
	return batch
}

// queueKeepFramesMax is the largest queue buffer a connection keeps for
// reuse (in frames).
const queueKeepFramesMax = 16

// recycleBatch keeps a written batch's buffer as the next spare queue.
func (c *conn) recycleBatch(batch []outFrame) {
	clear(batch) // do not keep frames alive
	if cap(batch) > queueKeepFramesMax {
		return
	}
	c.mu.Lock()
	c.spare = batch[:0]
	c.mu.Unlock()
}

// inlineWriteBytesMax bounds the queued bytes a flush copies into one
// buffer and writes from the calling goroutine; more (a large SYNC) goes to
// the writer goroutine, which writes the frames in place (writev).
const inlineWriteBytesMax = 64 << 10

// writeBufferKeepBytesMax is the largest write buffer returned to the pool.
const writeBufferKeepBytesMax = 64<<10 + 1024

var writeBufferPool = sync.Pool{New: func() any {
	buffer := make([]byte, 0, 1024)
	return &buffer
}}

func getWriteBuffer() *[]byte { return writeBufferPool.Get().(*[]byte) }

func putWriteBuffer(buffer *[]byte) {
	if cap(*buffer) > writeBufferKeepBytesMax {
		return
	}
	*buffer = (*buffer)[:0]
	writeBufferPool.Put(buffer)
}

// appendFrames appends the WebSocket frames of batch to buffer.
func appendFrames(buffer []byte, batch []outFrame) []byte {
	for _, frame := range batch {
		buffer = appendFrameHeader(buffer, frameOpCode(frame), frame.size)
		buffer = append(buffer, frame.data...)
		for _, part := range frame.parts {
			buffer = append(buffer, part...)
		}
	}
	return buffer
}

func frameOpCode(frame outFrame) ws.OpCode {
	if frame.pong {
		return ws.OpPong
	}
	return ws.OpText
}

// writeLoop owns the socket's write side (c.writing) until the queue is
// empty: it writes pending first, then whatever is queued, blocking with
// WriteTimeout per write. It sends the close frame and ends the connection
// after the close handshake, or when the reader has gone.
func (c *conn) writeLoop(pending []byte) {
	timeout := c.server.config.WriteTimeout
	var headers []byte
	var buffers net.Buffers
	c.mu.Lock()
	if c.backlogSince.IsZero() {
		c.backlogSince = time.Now()
	}
	c.mu.Unlock()
	for {
		if len(pending) > 0 {
			_ = c.netConn.SetWriteDeadline(time.Now().Add(timeout))
			if _, err := c.netConn.Write(pending); err != nil {
				c.writeFailed(err)
				return
			}
			_ = c.netConn.SetWriteDeadline(time.Time{})
			pending = nil
		}
		c.mu.Lock()
		if len(c.queue) > 0 && c.lagsLocked() {
			c.cutLaggingLocked()
		}
		batch := c.takeQueueLocked()
		closeCode, closeReason, readerGone := c.closeCode, c.closeReason, c.readerGone
		if len(batch) == 0 && closeCode == 0 && !readerGone {
			c.writing = false
			c.backlogSince = time.Time{}
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()

		// Frames are written in place (writev): headers first into one
		// array, then the list of header and payload slices.
		headers, buffers = headers[:0], buffers[:0]
		for _, frame := range batch {
			headers = appendFrameHeader(headers, frameOpCode(frame), frame.size)
		}
		offset := 0
		for _, frame := range batch {
			size := frameHeaderBytes(frame.size)
			buffers = append(buffers, headers[offset:offset+size:offset+size], frame.data)
			buffers = append(buffers, frame.parts...)
			offset += size
		}
		if closeCode != 0 {
			body := ws.NewCloseFrameBody(ws.StatusCode(closeCode), closeReason)
			buffers = append(buffers, append(appendFrameHeader(nil, ws.OpClose, len(body)), body...))
		}
		_ = c.netConn.SetWriteDeadline(time.Now().Add(timeout))
		err := c.writeBuffers(buffers)
		clear(buffers)
		c.recycleBatch(batch)
		if err != nil {
			c.writeFailed(err)
			return
		}
		// No deadline while not writing: a later non-blocking write from
		// flush would fail on an expired one.
		_ = c.netConn.SetWriteDeadline(time.Time{})
		c.server.metrics.countWrite(len(batch))
		if closeCode != 0 {
			if !readerGone {
				// Wait, bounded, for the client's close frame or EOF.
				_ = c.netConn.SetReadDeadline(time.Now().Add(closeHandshakeTimeout))
				c.wakeReader()
				<-c.readerDone
			}
			c.finish()
			return
		}
		if readerGone {
			c.finish()
			return
		}
	}
}

// writeBuffers writes a batch's slices. A plain TCP socket takes them in
// place, with one writev. Any other connection gets them copied into one
// buffer first: a *tls.Conn has no writev and makes every Write at least
// one TLS record (with its header and authentication tag) and one system
// call, which slice by slice would be two or three per frame.
func (c *conn) writeBuffers(buffers net.Buffers) error {
	if c.rawConn != nil {
		socket := c.netConn
		if limited, ok := socket.(*limitedConn); ok {
			socket = limited.Conn // net.Buffers uses writev on a *net.TCPConn only
		}
		_, err := buffers.WriteTo(socket)
		return err
	}
	buffer := getWriteBuffer()
	data := (*buffer)[:0]
	for _, slice := range buffers {
		data = append(data, slice...)
	}
	_, err := c.netConn.Write(data)
	*buffer = data
	putWriteBuffer(buffer)
	return err
}

func (c *conn) writeFailed(err error) {
	if !errors.Is(err, net.ErrClosed) {
		c.server.logger.Debug("write failed; closing connection", "conn", c.id, "remote", c.remote, "err", err)
	}
	c.finish()
}

// finish closes the connection; the writer stays marked busy, so nothing
// writes to it again. A parked reader is woken to see the close.
func (c *conn) finish() {
	c.netConn.Close()
	c.wakeReader()
	close(c.writerDone)
	if c.onFinished != nil {
		c.onFinished()
	}
}

// enqueuePong answers a ping. Pongs go through the queue so that frames
// stay in order.
func (c *conn) enqueuePong(payload []byte) {
	c.mu.Lock()
	if c.closeCode != 0 {
		c.mu.Unlock()
		return
	}
	if len(c.queue) >= c.server.config.QueueFramesMax {
		c.server.metrics.slowClients.Add(1)
		c.requestCloseLocked(protocol.CloseSlowClient, "client too slow: send queue full (QueueFramesMax), please reconnect")
	} else {
		c.queue = append(c.queue, outFrame{data: append([]byte(nil), payload...), size: len(payload), pong: true})
	}
	c.mu.Unlock()
	// Flushed before the reader next reads the socket (socketReader), so
	// the pongs of all pings in one read go out in one write.
	c.pongsPending = true
}

// socketReader is what the read buffer reads from: before each read of the
// socket (which may wait) it flushes the pongs the reader queued.
type socketReader struct{ c *conn }

func (r socketReader) Read(p []byte) (int, error) {
	c := r.c
	if len(c.leftover) > 0 {
		n := copy(p, c.leftover)
		c.leftover = c.leftover[n:]
		if len(c.leftover) == 0 {
			c.leftover = nil
		}
		return n, nil
	}
	c.flushPongs()
	return c.netConn.Read(p)
}

func (c *conn) flushPongs() {
	if c.pongsPending {
		c.pongsPending = false
		c.flush()
	}
}
