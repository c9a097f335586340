package server

import (
	"errors"
	"net"
	"sync"
	"time"
)

// # Open connections and file descriptors
//
// Every accepted TCP connection takes a file descriptor, whether it
// upgrades to a WebSocket or not (a plain HTTP request, or a stranger who
// connects and sends nothing until the header timeout). The journal, the
// session logs and file transfers need descriptors too, and a process that
// has run out fails their opens with EMFILE: a flood of idle connections
// would break the storage of sessions that are already running.
//
// So the listener accepts at most OpenConnectionsMax connections at once
// (metronome serve sets it from the open-file limit, less a reserve for
// the server's own files). While that many are open, Accept waits: new
// connections wait in the kernel's listen backlog, which holds no
// descriptor of ours, and are accepted as others close. Connections
// already open, and the files of running sessions, are not affected.

// limitListener is a net.Listener that keeps at most max connections open.
type limitListener struct {
	net.Listener
	slots   chan struct{}
	onWait  func() // called when Accept has to wait for a slot
	closed  chan struct{}
	closeMu sync.Once
}

func newLimitListener(inner net.Listener, max int, onWait func()) *limitListener {
	return &limitListener{Listener: inner, slots: make(chan struct{}, max), onWait: onWait, closed: make(chan struct{})}
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.slots <- struct{}{}:
	default:
		if l.onWait != nil {
			l.onWait()
		}
		select {
		case l.slots <- struct{}{}:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	conn, err := l.Listener.Accept()
	if err != nil {
		<-l.slots
		return nil, err
	}
	return &limitedConn{Conn: conn, release: func() { <-l.slots }}, nil
}

func (l *limitListener) Close() error {
	l.closeMu.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// limitedConn gives its slot back once, on the first Close.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}

// CloseWrite half-closes a TCP connection (net/http uses it to end a
// response cleanly).
func (c *limitedConn) CloseWrite() error {
	if inner, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return inner.CloseWrite()
	}
	return errors.ErrUnsupported
}

// acceptWaitLogInterval bounds the warnings about a full listener.
const acceptWaitLogInterval = time.Minute

// noteAcceptWait counts a wait of the listener for a free slot, and warns
// at most once per acceptWaitLogInterval.
func (s *Server) noteAcceptWait() {
	s.metrics.acceptWaits.Add(1)
	now := time.Now().UnixNano()
	last := s.acceptWaitLogged.Load()
	if now-last < int64(acceptWaitLogInterval) || !s.acceptWaitLogged.CompareAndSwap(last, now) {
		return
	}
	s.logger.Warn("open connections at their limit: new connections wait in the listen backlog until others close (OpenConnectionsMax, from the open-file limit)",
		"open_connections_max", s.config.OpenConnectionsMax, "waits", s.metrics.acceptWaits.Load())
}
