package cluster

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// proxyDialTimeout bounds the connection to one backend.
const proxyDialTimeout = time.Second

// roundRobinProxy is the load balancer in front of a cluster: a TCP proxy
// that sends each accepted connection to the next backend in turn,
// skipping a backend it cannot connect to (a killed node), and copies
// bytes both ways. It has no health checks: a frozen node (SIGSTOP) still
// accepts connections (the kernel does), and gets its turn.
type roundRobinProxy struct {
	listener net.Listener
	backends []string
	next     atomic.Uint64
	// source, if set, is the local address the proxy dials its backends
	// from (the route proxies: see startClusterWith).
	source *net.TCPAddr

	mu     sync.Mutex
	closed bool
	// cut: every connection was closed and new ones are refused (Cut),
	// until Heal.
	cut    bool
	conns  map[net.Conn]struct{}
	active sync.WaitGroup

	// accepted counts client connections, skipped the backends that
	// could not be reached, refused the connections no backend took.
	accepted, skipped, refused atomic.Int64
}

// newRoundRobinProxy listens on 127.0.0.1:0 and serves until the test
// ends (or Close).
func newRoundRobinProxy(t *testing.T, backends []string) *roundRobinProxy {
	t.Helper()
	return newProxyFrom(t, backends, nil)
}

// newProxyFrom is newRoundRobinProxy dialing the backends from source
// (nil: any).
func newProxyFrom(t *testing.T, backends []string, source *net.TCPAddr) *roundRobinProxy {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &roundRobinProxy{listener: listener, backends: backends, source: source, conns: map[net.Conn]struct{}{}}
	p.active.Add(1)
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// Addr is the proxy's address.
func (p *roundRobinProxy) Addr() string { return p.listener.Addr().String() }

// reflectorURL is what an SDK client behind the proxy uses as
// Options.Reflector.
func (p *roundRobinProxy) reflectorURL() string { return "ws://" + p.Addr() + "/reflector" }

// Cut closes every connection both ways and refuses (accepts and closes
// at once) new ones until Heal: a network partition of the backends from
// the proxy's clients.
func (p *roundRobinProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for conn := range p.conns {
		conn.Close()
	}
}

// Heal ends a Cut: new connections are forwarded again.
func (p *roundRobinProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// Close stops accepting, closes every connection both ways and waits for
// the copying goroutines.
func (p *roundRobinProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	for conn := range p.conns {
		conn.Close()
	}
	p.mu.Unlock()
	p.listener.Close()
	p.active.Wait()
}

func (p *roundRobinProxy) serve() {
	defer p.active.Done()
	for {
		conn, err := p.listener.Accept()
		if err != nil {
			var temporary interface{ Temporary() bool }
			if errors.As(err, &temporary) && temporary.Temporary() {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			return
		}
		p.accepted.Add(1)
		if !p.track(conn) {
			conn.Close()
			if p.isClosed() {
				return
			}
			p.refused.Add(1) // cut
			continue
		}
		p.active.Add(1)
		go p.handle(conn)
	}
}

// track registers conn for Close and Cut; false if the proxy is closed
// or cut.
func (p *roundRobinProxy) track(conn net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.cut {
		return false
	}
	p.conns[conn] = struct{}{}
	return true
}

func (p *roundRobinProxy) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

func (p *roundRobinProxy) untrack(conn net.Conn) {
	p.mu.Lock()
	delete(p.conns, conn)
	p.mu.Unlock()
}

// handle connects the client to the next backend that answers and copies
// until either side ends; then both are closed.
func (p *roundRobinProxy) handle(client net.Conn) {
	defer p.active.Done()
	defer p.untrack(client)
	defer client.Close()
	first := p.next.Add(1) - 1
	var backend net.Conn
	for k := range uint64(len(p.backends)) {
		address := p.backends[(first+k)%uint64(len(p.backends))]
		dialer := net.Dialer{Timeout: proxyDialTimeout}
		if p.source != nil {
			dialer.LocalAddr = p.source
		}
		conn, err := dialer.Dial("tcp", address)
		if err == nil {
			backend = conn
			break
		}
		p.skipped.Add(1)
	}
	if backend == nil {
		p.refused.Add(1)
		return
	}
	if !p.track(backend) {
		backend.Close()
		return
	}
	defer p.untrack(backend)
	defer backend.Close()
	done := make(chan struct{}, 2)
	copyAndClose := func(to, from net.Conn) {
		io.Copy(to, from)
		// Either direction ending ends the connection (what a client or
		// a node does on a close anyway), so that a dead side is noticed.
		to.Close()
		from.Close()
		done <- struct{}{}
	}
	go copyAndClose(backend, client)
	go copyAndClose(client, backend)
	<-done
	<-done
}

// TestRoundRobinProxy checks the load balancer itself: connections go to
// the backends in turn, a backend that refuses connections is skipped,
// bytes flow both ways, Cut ends open connections and refuses new ones
// until Heal, and Close ends open connections.
func TestRoundRobinProxy(t *testing.T) {
	var backends []string
	var listeners []net.Listener
	for i := range 3 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		backends = append(backends, l.Addr().String())
		name := byte('a' + i)
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				go func() {
					defer conn.Close()
					line, err := bufio.NewReader(conn).ReadString('\n')
					if err != nil {
						return
					}
					conn.Write(append([]byte{name, ':'}, line...))
					io.Copy(io.Discard, conn) // until the client closes
				}()
			}
		}()
	}
	t.Cleanup(func() {
		for _, l := range listeners {
			l.Close()
		}
	})
	proxy := newRoundRobinProxy(t, backends)
	ask := func() string {
		t.Helper()
		conn, err := net.Dial("tcp", proxy.Addr())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write([]byte("hi\n")); err != nil {
			t.Fatal(err)
		}
		answer, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return answer
	}
	var got []string
	for range 4 {
		got = append(got, ask())
	}
	if want := []string{"a:hi\n", "b:hi\n", "c:hi\n", "a:hi\n"}; !equalStrings(got, want) {
		t.Fatalf("round robin: got %q, want %q", got, want)
	}
	listeners[1].Close() // b is down: its turn goes to c
	got = got[:0]
	for range 3 {
		got = append(got, ask())
	}
	if want := []string{"c:hi\n", "c:hi\n", "a:hi\n"}; !equalStrings(got, want) {
		t.Fatalf("with b down: got %q, want %q", got, want)
	}
	if proxy.skipped.Load() != 1 {
		t.Fatalf("skipped %d backends, want 1", proxy.skipped.Load())
	}
	conn, err := net.Dial("tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hold\n"))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	proxy.Cut() // ends the open connection, refuses new ones
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after Cut the connection should end with EOF, got %v", err)
	}
	refused, err := net.Dial("tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	refused.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := refused.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("a connection to a cut proxy should end with EOF, got %v", err)
	}
	refused.Close()
	proxy.Heal()
	ask() // forwarded again
	conn, err = net.Dial("tcp", proxy.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("hold\n"))
	if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	proxy.Close()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after Close the connection should end with EOF, got %v", err)
	}
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
