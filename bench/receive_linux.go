package bench

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"

	"github.com/gobwas/ws"
)

// On Linux the latency scenario receives on a few event loops instead of
// one goroutine per connection. A goroutine per connection costs two read
// system calls per frame (the second one finds nothing and parks the
// goroutine) plus a wake-up through the scheduler. At 100 × 10 × 5 that
// took most of a core, which the generator then took from the server it
// measures. A loop asks epoll which connections have data and reads each
// of them once. The loop's epoll descriptor is itself registered with Go's
// poller, so an idle loop parks like any goroutine and holds no thread.

// receiveLoopsMax bounds the number of loops (one per P, at most this).
const receiveLoopsMax = 4

// receiveReadBytes is the loops' read size: one read takes everything a
// connection has, up to this.
const receiveReadBytes = 64 << 10

// receiveLoop reads the connections registered with its epoll set.
type receiveLoop struct {
	epoll   *os.File // owns the epoll descriptor epollFD
	epollFD int
	raw     syscall.RawConn
	started bool // set before run starts
	done    chan struct{}
	// clients is filled by add before run starts, then owned by run.
	clients map[int32]*loopClient // by descriptor
}

// loopClient is a client whose frames a loop receives.
type loopClient struct {
	client *loadClient
	fd     int
	parser frameParser
}

// receivers is the set of loops of one run.
type receivers struct {
	loops    []*receiveLoop
	stopOnce sync.Once
}

// startReceivers starts receiving for every client (bookkeeping for
// sendsMax messages per member). stop ends the receiving: the loops stop
// first, then the connections close, and every client's readerDone is
// closed when stop returns.
func startReceivers(clients []*loadClient, sendsMax int) (stop func(), err error) {
	count := min(runtime.GOMAXPROCS(0), receiveLoopsMax, len(clients))
	r := &receivers{}
	for range count {
		loop, err := newReceiveLoop()
		if err != nil {
			r.stop(clients)
			return nil, err
		}
		r.loops = append(r.loops, loop)
	}
	for i, client := range clients {
		client.prepareReceive(sendsMax)
		if err := r.loops[i%count].add(client); err != nil {
			r.stop(clients)
			return nil, fmt.Errorf("receiving on %s: %w", client.viewID, err)
		}
	}
	for _, loop := range r.loops {
		loop.started = true
		go loop.run()
	}
	return func() { r.stop(clients) }, nil
}

func (r *receivers) stop(clients []*loadClient) {
	r.stopOnce.Do(func() { r.stopNow(clients) })
}

func (r *receivers) stopNow(clients []*loadClient) {
	for _, loop := range r.loops {
		loop.epoll.Close() // wakes the loop; its next wait fails
	}
	for _, loop := range r.loops {
		if loop.started {
			<-loop.done
		}
	}
	for _, client := range clients {
		client.close()
		if client.readerDone != nil {
			select {
			case <-client.readerDone:
			default:
				close(client.readerDone)
			}
		}
	}
}

func newReceiveLoop() (*receiveLoop, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	// Non-blocking, so that os.NewFile registers it with Go's poller.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	file := os.NewFile(uintptr(fd), "bench-epoll")
	raw, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, err
	}
	return &receiveLoop{epoll: file, epollFD: fd, raw: raw, done: make(chan struct{}), clients: make(map[int32]*loopClient)}, nil
}

// add registers a client whose join is complete; the bytes its frame
// reader read ahead of the SYNC are the start of its stream.
func (l *receiveLoop) add(client *loadClient) error {
	sc, ok := client.conn.(syscall.Conn)
	if !ok {
		return errors.New("connection has no descriptor")
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return err
	}
	var fd int
	if err := raw.Control(func(descriptor uintptr) { fd = int(descriptor) }); err != nil {
		return err
	}
	lc := &loopClient{client: client, fd: fd}
	// The dialer's own read-ahead buffer was drained into the frame
	// reader's by its first read, so this is everything read so far.
	lc.parser.pending = client.frames.takeBuffered()
	client.frames = nil
	l.clients[int32(fd)] = lc
	event := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if err := syscall.EpollCtl(l.epollFD, syscall.EPOLL_CTL_ADD, fd, &event); err != nil {
		return fmt.Errorf("epoll_ctl: %w", err)
	}
	if len(lc.parser.pending) > 0 {
		// Frames that arrived with the SYNC: parse them now.
		pending := lc.parser.pending
		lc.parser.pending = nil
		if err := lc.parser.feed(pending, client.handle, lc.onControl); err != nil {
			return err
		}
	}
	return nil
}

func (l *receiveLoop) run() {
	defer close(l.done)
	events := make([]syscall.EpollEvent, 128)
	buffer := make([]byte, receiveReadBytes)
	for {
		var ready int
		var waitErr error
		err := l.raw.Read(func(epollFD uintptr) bool {
			ready, waitErr = syscall.EpollWait(int(epollFD), events, 0)
			if waitErr == syscall.EINTR {
				waitErr = nil
			}
			return waitErr != nil || ready > 0 // false: park until the set is readable
		})
		if err != nil || waitErr != nil {
			return // closed by stop
		}
		for _, event := range events[:ready] {
			if lc := l.clients[event.Fd]; lc != nil {
				l.receive(lc, buffer)
			}
		}
	}
}

// receive reads once from a ready connection and handles its frames.
func (l *receiveLoop) receive(lc *loopClient, buffer []byte) {
	n, err := syscall.Read(lc.fd, buffer)
	if err == syscall.EAGAIN || err == syscall.EINTR {
		return
	}
	if err == nil && n == 0 {
		err = io.EOF
	}
	if err == nil {
		err = lc.parser.feed(buffer[:n], lc.client.handle, lc.onControl)
	}
	if err != nil {
		l.finish(lc, err)
	}
}

// finish stops receiving for a client whose stream ended or failed.
func (l *receiveLoop) finish(lc *loopClient, err error) {
	client := lc.client
	if !client.run.closing.Load() {
		client.readErr = err
	}
	delete(l.clients, int32(lc.fd))
	syscall.EpollCtl(l.epollFD, syscall.EPOLL_CTL_DEL, lc.fd, nil)
	close(client.readerDone)
}

func (lc *loopClient) onControl(header ws.Header, payload []byte) error {
	if header.OpCode == ws.OpPing {
		return lc.client.write(ws.OpPong, payload)
	}
	return nil
}
