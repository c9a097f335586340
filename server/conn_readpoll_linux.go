//go:build linux

package server

import (
	"sync"
	"syscall"
)

// readPoller watches the sockets of parked connections with one epoll
// instance and starts a connection's reader goroutine when its socket
// becomes readable (data, EOF or an error). Registrations are one-shot: a
// reader re-arms when it parks again. Events carry a key, never a file
// descriptor, so an event for a connection that is gone (its descriptor
// possibly reused) finds nothing.
type readPoller struct {
	epollFD int

	mu      sync.Mutex
	conns   map[uint64]*conn
	nextKey uint64
}

// readPollerEventsMax bounds the events taken from the kernel per wait.
const readPollerEventsMax = 256

// readPollEvents: readable, peer closed; one-shot until re-armed.
const readPollEvents = uint32(syscall.EPOLLIN|syscall.EPOLLRDHUP) | uint32(syscall.EPOLLONESHOT)

var (
	readPollerOnce   sync.Once
	readPollerShared *readPoller
)

// sharedReadPoller returns the process's read poller, nil if epoll is not
// available (connections then keep their reader goroutines).
func sharedReadPoller() *readPoller {
	readPollerOnce.Do(func() {
		epollFD, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return
		}
		readPollerShared = &readPoller{epollFD: epollFD, conns: make(map[uint64]*conn)}
		go readPollerShared.run()
	})
	return readPollerShared
}

func (p *readPoller) run() {
	events := make([]syscall.EpollEvent, readPollerEventsMax)
	for {
		n, err := syscall.EpollWait(p.epollFD, events, -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			// Only a programming error (bad descriptor or buffer) gets here;
			// parked connections would never be read again.
			panic("server: epoll_wait failed: " + err.Error())
		}
		for i := range events[:n] {
			key := uint64(uint32(events[i].Fd)) | uint64(uint32(events[i].Pad))<<32
			p.mu.Lock()
			c := p.conns[key]
			p.mu.Unlock()
			if c != nil {
				c.wakeReader()
			}
		}
	}
}

// register returns the connection's key (never 0).
func (p *readPoller) register(c *conn) uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.nextKey++
	p.conns[p.nextKey] = c
	return p.nextKey
}

// arm asks for one event when c's socket is readable.
func (p *readPoller) arm(c *conn) error {
	event := syscall.EpollEvent{Events: readPollEvents, Fd: int32(uint32(c.pollKey)), Pad: int32(uint32(c.pollKey >> 32))}
	var err error
	// Control holds the descriptor open while the function runs, so it
	// cannot be closed and reused for another connection meanwhile.
	controlErr := c.rawConn.Control(func(fd uintptr) {
		err = syscall.EpollCtl(p.epollFD, syscall.EPOLL_CTL_MOD, int(fd), &event)
		if err == syscall.ENOENT {
			err = syscall.EpollCtl(p.epollFD, syscall.EPOLL_CTL_ADD, int(fd), &event)
		}
	})
	if controlErr != nil {
		return controlErr
	}
	return err
}

// unregister forgets c (its reader has exited for good).
func (p *readPoller) unregister(c *conn) {
	_ = c.rawConn.Control(func(fd uintptr) {
		_ = syscall.EpollCtl(p.epollFD, syscall.EPOLL_CTL_DEL, int(fd), nil)
	})
	p.mu.Lock()
	delete(p.conns, c.pollKey)
	p.mu.Unlock()
}

// hasInput reports whether c's socket has something to read right now
// (data, EOF or an error), without waiting: a reader parks only on an
// empty socket, so a busy connection keeps its goroutine and drains its
// socket like a blocking reader.
func (p *readPoller) hasInput(c *conn) bool {
	input := true
	_ = c.rawConn.Control(func(fd uintptr) { input = c.readable.check(fd) })
	return input
}

// readableWaiter waits until a socket has something to read (data, EOF or
// an error) or its read deadline passes, without reading: the caller holds
// no buffer while it waits. Its function for RawConn.Read is made once per
// connection, so that a wait allocates nothing.
type readableWaiter struct {
	peek    [1]byte
	checkFD func(fd uintptr) bool
}

func (w *readableWaiter) wait(rawConn syscall.RawConn) error {
	if w.checkFD == nil {
		w.checkFD = w.check
	}
	return rawConn.Read(w.checkFD)
}

// check reports whether the socket has input now (data, EOF or an error),
// without waiting; RawConn.Read waits for readiness while it has none.
func (w *readableWaiter) check(fd uintptr) bool {
	for {
		_, _, err := syscall.Recvfrom(int(fd), w.peek[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		if err == syscall.EINTR {
			continue
		}
		return err != syscall.EAGAIN
	}
}
