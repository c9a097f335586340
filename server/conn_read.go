package server

import (
	"bufio"
	"errors"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
)

// readBufferBytes is the size of a connection's read buffer while it reads
// (the size net/http hands over with the hijacked connection).
const readBufferBytes = 4 << 10

var readBufferPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, readBufferBytes) }}

// startReading starts the connection's reader goroutine for session.
func (c *conn) startReading(session *sessionActor) {
	c.session = session
	c.messages = newMessageReader(nil, protocol.FrameBytesMax)
	if readPoller := sharedReadPoller(); readPoller != nil && c.rawConn != nil {
		c.pollKey = readPoller.register(c)
	}
	go c.readLoop()
}

// readLoop reads frames and hands them to the session until the connection
// ends, or until the socket has nothing more to read and the connection
// parks (the read poller then starts readLoop again). It never writes.
func (c *conn) readLoop() {
	if c.reader == nil {
		c.resumeReading()
	}
	for {
		opCode, payload, err := c.messages.next()
		if err != nil {
			var tooLarge *frameTooLargeError
			switch {
			case errors.As(err, &tooLarge):
				c.session.deliver(receiveEvent(c.id, protocol.ClientFrame{}, &protocol.Error{Code: protocol.CloseMalformed,
					Field: "frame", Rule: tooLarge.Error()}))
				c.awaitClose()
			case isProtocolViolation(err):
				c.close(int(ws.StatusProtocolError), err.Error())
			}
			c.readerExit()
			return
		}
		c.noteInput()
		switch opCode {
		case ws.OpText:
			c.server.metrics.framesIn.Add(1)
			frame, decodeErr := protocol.DecodeClientFrame(payload)
			if decodeErr == nil && frame.Action == protocol.ActionJoin &&
				(c.refuseRejoin() || (c.token != nil && c.refuseJoin(frame))) {
				c.readerExit()
				return
			}
			c.session.deliver(receiveEvent(c.id, frame, decodeErr))
		case ws.OpBinary:
			c.session.deliver(receiveEvent(c.id, protocol.ClientFrame{}, &protocol.Error{Code: protocol.CloseMalformed,
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
			c.readerExit()
			return
		}
		if c.reader.Buffered() == 0 && len(c.leftover) == 0 && c.messages.opCode == 0 &&
			c.pollKey != 0 && !c.awaitInput() && c.park() {
			return
		}
	}
}

// A reader waits for the next frame, before it parks, twice the time
// between the connection's last two frames, within these bounds: a
// connection that sends regularly keeps its reader goroutine (parking and
// waking cost system calls, a new goroutine and the poller's latency on
// every frame), one that has gone quiet parks soon.
const (
	readerParkAfterIdleMin = 50 * time.Millisecond
	readerParkAfterIdleMax = 1 * time.Second
)

// noteInput records the arrival of a frame and sets how long the reader
// waits for the next one before it parks.
func (c *conn) noteInput() {
	now := time.Now()
	wait := readerParkAfterIdleMin
	if !c.lastInput.IsZero() {
		wait = min(max(2*now.Sub(c.lastInput), readerParkAfterIdleMin), readerParkAfterIdleMax)
	}
	c.lastInput, c.parkAfterIdle = now, wait
}

// awaitInput waits, up to parkAfterIdle, until the socket has something to
// read. It reports false when the wait timed out.
func (c *conn) awaitInput() bool {
	if c.closing() {
		return true // keep reading until the close handshake ends
	}
	_ = c.netConn.SetReadDeadline(time.Now().Add(c.parkAfterIdle))
	var err error
	if c.reader.Buffered() == 0 && c.rawConn != nil {
		// Wait without holding a read buffer: a thousand connections
		// sending a few frames a second then share a few buffers.
		c.flushPongs()
		c.releaseReadBuffers()
		err = c.readable.wait(c.rawConn)
		c.resumeReading()
	} else {
		_, err = c.reader.Peek(1) // consumes nothing, also on error
	}
	_ = c.netConn.SetReadDeadline(time.Time{})
	if c.closing() {
		// The writer may have set the handshake deadline just before it
		// was cleared above: set it again.
		_ = c.netConn.SetReadDeadline(time.Now().Add(closeHandshakeTimeout))
	}
	var netErr net.Error
	return !(errors.As(err, &netErr) && netErr.Timeout())
}

func (c *conn) closing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeCode != 0
}

// park ends the reader goroutine of a connection whose socket has nothing
// more to read right now (between messages, nothing buffered) and asks the
// read poller to start a new one when data arrives. It keeps the goroutine
// (false) when the connection is closing or cannot be polled.
func (c *conn) park() bool {
	readPoller := sharedReadPoller()
	if c.pollKey == 0 || readPoller == nil || readPoller.hasInput(c) {
		return false
	}
	c.flushPongs()
	// Release the buffers before the state says "parked": from then on a
	// new reader goroutine may run at any moment.
	c.releaseReadBuffers()
	c.mu.Lock()
	if c.closeCode != 0 {
		// Closing: keep reading until the client's close frame, EOF or
		// the handshake deadline.
		c.mu.Unlock()
		c.resumeReading()
		return false
	}
	c.readerParked = true
	c.mu.Unlock()
	if err := readPoller.arm(c); err != nil {
		// Cannot poll (the connection was closed under us): read on, in
		// this goroutine, unless someone else already started a reader.
		c.mu.Lock()
		resume := c.readerParked
		c.readerParked = false
		c.mu.Unlock()
		if !resume {
			return true
		}
		c.resumeReading()
		return false
	}
	return true
}

// releaseReadBuffers returns the read buffers to their pools between
// messages; resumeReading takes new ones.
func (c *conn) releaseReadBuffers() {
	c.messages.release()
	if c.reader.Size() == readBufferBytes {
		c.reader.Reset(nil)
		readBufferPool.Put(c.reader)
	}
	c.reader, c.messages.reader = nil, nil
}

func (c *conn) resumeReading() {
	c.reader = readBufferPool.Get().(*bufio.Reader)
	c.reader.Reset(socketReader{c})
	if c.messages != nil {
		c.messages.reader = c.reader
	}
}

// wakeReader starts the reader goroutine of a parked connection (the
// poller saw data, or the connection is closing and the reader must see
// the client's close frame, EOF or the read deadline).
func (c *conn) wakeReader() {
	c.mu.Lock()
	parked := c.readerParked
	c.readerParked = false
	c.mu.Unlock()
	if parked {
		go c.readLoop()
	}
}

// readerExit ends the reader: the session learns of the disconnect, and
// the writer sends what is queued and closes the connection.
func (c *conn) readerExit() {
	c.pongsPending = false // flushed below with everything queued
	c.session.deliver(disconnectEvent(c.id))
	if c.pollKey != 0 {
		sharedReadPoller().unregister(c)
	}
	c.messages.release()
	c.reader, c.messages.reader = nil, nil
	close(c.readerDone)
	c.mu.Lock()
	c.readerGone = true
	c.mu.Unlock()
	c.flush()
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

// discardUntilClosed reads a connection that has no session until the
// close handshake ends it.
func discardUntilClosed(c *conn) {
	defer func() {
		close(c.readerDone)
		c.mu.Lock()
		c.readerGone = true
		c.mu.Unlock()
		c.flush()
	}()
	c.resumeReading()
	messages := newMessageReader(c.reader, protocol.FrameBytesMax)
	for {
		opCode, _, err := messages.next()
		if err != nil || opCode == ws.OpClose {
			return // the client answered our close (or went away)
		}
	}
}

func isProtocolViolation(err error) bool {
	return errors.Is(err, errFrameUnmasked) || errors.Is(err, errFrameReservedBits) ||
		errors.Is(err, errFrameControl) || errors.Is(err, errFrameSequence) || errors.Is(err, errFrameOpCode)
}
