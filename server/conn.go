package server

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// conn is one client WebSocket connection. Its reader goroutine decodes
// frames and hands them to the session; its writer goroutine sends what the
// session queued, coalescing everything queued into one flush. The queue is
// bounded: a client that does not keep up is disconnected with a reconnect
// code instead of stalling the session or growing memory without limit.
type conn struct {
	id      reflector.ConnID
	server  *Server
	netConn net.Conn
	reader  *bufio.Reader
	writer  *bufio.Writer
	remote  string

	mu             sync.Mutex
	queue          []outFrame
	queuedBytes    int
	closeCode      int // non-zero: close requested
	closeReason    string
	wake           chan struct{} // capacity 1: the writer has work
	closeRequested chan struct{} // closed when a close is requested
	readerDone     chan struct{} // closed when the reader exits
	writerDone     chan struct{} // closed when the writer exits
}

func newConn(server *Server, id reflector.ConnID, netConn net.Conn, rw *bufio.ReadWriter, remote string) *conn {
	return &conn{
		id:             id,
		server:         server,
		netConn:        netConn,
		reader:         rw.Reader,
		writer:         rw.Writer,
		remote:         remote,
		wake:           make(chan struct{}, 1),
		closeRequested: make(chan struct{}),
		readerDone:     make(chan struct{}),
		writerDone:     make(chan struct{}),
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// enqueue queues a frame for sending. Ticks are skipped while the queue
// holds unsent frames (spec §4.2). A full queue closes the connection with
// CloseSlowClient (the client reconnects and resyncs).
func (c *conn) enqueue(frame []byte, tick bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	if tick && len(c.queue) > 0 {
		c.server.metrics.ticksSkipped.Add(1)
		return
	}
	limits := &c.server.config
	// A frame larger than QueueBytesMax (a big SYNC) is accepted into an
	// empty queue, so that no client is locked out by its session's size.
	if len(c.queue) >= limits.QueueFramesMax || (len(c.queue) > 0 && c.queuedBytes+len(frame) > limits.QueueBytesMax) {
		c.server.metrics.slowClients.Add(1)
		c.requestCloseLocked(protocol.CloseSlowClient,
			"client too slow: send queue full (QueueFramesMax/QueueBytesMax), please reconnect")
		return
	}
	c.queue = append(c.queue, outFrame{data: frame})
	c.queuedBytes += len(frame)
	c.signal()
}

// close asks the writer to send a close frame after the queued frames.
func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requestCloseLocked(code, reason)
}

func (c *conn) requestCloseLocked(code int, reason string) {
	if c.closeCode != 0 {
		return
	}
	c.closeCode = code
	c.closeReason = protocol.TruncateReason(reason)
	close(c.closeRequested)
	c.signal()
}

// closeHandshakeTimeout is how long the server waits for the client's close
// frame (or EOF) after sending its own.
const closeHandshakeTimeout = 2 * time.Second

// outFrame is a queued frame: a text frame, or a pong answering a ping.
type outFrame struct {
	data []byte
	pong bool
}

func (c *conn) writeLoop() {
	defer close(c.writerDone)
	defer c.netConn.Close()
	var batch []outFrame
	for {
		readerGone := false
		select {
		case <-c.wake:
		case <-c.readerDone:
			readerGone = true
		}
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.queuedBytes = 0
		closeCode, closeReason := c.closeCode, c.closeReason
		c.mu.Unlock()

		_ = c.netConn.SetWriteDeadline(time.Now().Add(c.server.config.WriteTimeout))
		var err error
		for i, frame := range batch {
			if err == nil {
				opCode := ws.OpText
				if frame.pong {
					opCode = ws.OpPong
				}
				err = writeFrame(c.writer, opCode, frame.data)
			}
			batch[i] = outFrame{}
		}
		if err == nil && closeCode != 0 {
			err = writeFrame(c.writer, ws.OpClose, ws.NewCloseFrameBody(ws.StatusCode(closeCode), closeReason))
		}
		if err == nil {
			err = c.writer.Flush()
		}
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.server.logger.Debug("write failed; closing connection", "conn", c.id, "remote", c.remote, "err", err)
			}
			return
		}
		c.server.metrics.framesOut.Add(uint64(len(batch)))
		if closeCode != 0 {
			if !readerGone {
				// Wait, bounded, for the client's close frame or EOF.
				_ = c.netConn.SetReadDeadline(time.Now().Add(closeHandshakeTimeout))
				<-c.readerDone
			}
			return
		}
		if readerGone {
			return
		}
	}
}

// readLoop reads frames until the connection ends and hands them to the
// session. It runs in the connection's own goroutine; it never writes.
func (c *conn) readLoop(session *sessionActor) {
	defer close(c.readerDone)
	defer session.deliver(disconnectEvent(c.id))
	messages := newMessageReader(c.reader, protocol.FrameBytesMax)
	for {
		opCode, payload, err := messages.next()
		if err != nil {
			var tooLarge *frameTooLargeError
			switch {
			case errors.As(err, &tooLarge):
				session.deliver(receiveEvent(c.id, protocol.ClientFrame{}, &protocol.Error{Code: protocol.CloseMalformed,
					Field: "frame", Rule: tooLarge.Error()}))
				c.awaitClose()
			case isProtocolViolation(err):
				c.close(int(ws.StatusProtocolError), err.Error())
			}
			return
		}
		switch opCode {
		case ws.OpText:
			c.server.metrics.framesIn.Add(1)
			frame, decodeErr := protocol.DecodeClientFrame(payload)
			session.deliver(receiveEvent(c.id, frame, decodeErr))
		case ws.OpBinary:
			session.deliver(receiveEvent(c.id, protocol.ClientFrame{}, &protocol.Error{Code: protocol.CloseMalformed,
				Field: "frame", Rule: "a text frame (binary frames are not used)"}))
		case ws.OpPing:
			c.enqueuePong(payload)
		case ws.OpPong:
		case ws.OpClose:
			code, _ := ws.ParseCloseFrameData(payload)
			if code.Empty() {
				code = ws.StatusNormalClosure
			}
			c.close(int(code), "")
			return
		}
	}
}

// awaitClose waits, bounded, until the session has asked for the close
// (so its reason goes out before the reader's exit ends the connection).
func (c *conn) awaitClose() {
	timer := time.NewTimer(closeHandshakeTimeout)
	defer timer.Stop()
	select {
	case <-c.closeRequested:
	case <-timer.C:
	}
}

// enqueuePong answers a ping. Pongs go through the queue so that the writer
// stays the only goroutine writing the socket.
func (c *conn) enqueuePong(payload []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeCode != 0 {
		return
	}
	if len(c.queue) >= c.server.config.QueueFramesMax {
		c.server.metrics.slowClients.Add(1)
		c.requestCloseLocked(protocol.CloseSlowClient, "client too slow: send queue full (QueueFramesMax), please reconnect")
		return
	}
	c.queue = append(c.queue, outFrame{data: append([]byte(nil), payload...), pong: true})
	c.signal()
}

func isProtocolViolation(err error) bool {
	return errors.Is(err, errFrameUnmasked) || errors.Is(err, errFrameReservedBits) ||
		errors.Is(err, errFrameControl) || errors.Is(err, errFrameSequence) || errors.Is(err, errFrameOpCode)
}
