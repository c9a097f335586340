package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// Tests of the limits against abuse: JOINs per address (joinrate.go),
// sessions per server, the send queue's age, open connections
// (listenlimit.go), and what one attacker's JOINs can make the server send.

// behindProxy trusts the loopback peer's X-Forwarded-For, so that a test
// can speak as any client address.
var behindProxy = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}

// dialFrom connects to a session as the client address from (announced in
// X-Forwarded-For); an upgrade refused with an HTTP status returns
// ws.StatusError.
func dialFrom(t testing.TB, addr, sessionID, viewID, from string) (*client, error) {
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	dialer := ws.Dialer{Header: ws.HandshakeHeaderHTTP(http.Header{"X-Forwarded-For": {from}})}
	conn, reader, _, err := dialer.Dial(ctx, "ws://"+addr+"/reflector/"+sessionID)
	if err != nil {
		return nil, err
	}
	if reader == nil {
		reader = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, reader: reader, maxTime: -1, sessionID: sessionID, viewID: viewID}, nil
}

func expectRefused(t *testing.T, err error, status int) {
	t.Helper()
	var statusError ws.StatusError
	if !errors.As(err, &statusError) || int(statusError) != status {
		t.Fatalf("upgrade: %v, want HTTP %d", err, status)
	}
}

// TestJoinsPerAddress: a client address has JoinsPerIPBurst JOINs; each
// upgrade takes one before the upgrade (refused with 429 when none is
// left), and a repeated JOIN on one connection takes another (closed with
// 4003 when none is left). Other addresses are not affected.
func TestJoinsPerAddress(t *testing.T) {
	server := startServer(t, Config{TrustedProxies: behindProxy, JoinsPerIPPerSecond: 0.001, JoinsPerIPBurst: 3})
	sessionID := newSessionID(t)
	const attacker = "203.0.113.9"
	a, err := dialFrom(t, server.Addr(), sessionID, "a", attacker) // token 1
	if err != nil {
		t.Fatal(err)
	}
	a.join()
	b, err := dialFrom(t, server.Addr(), sessionID, "b", attacker) // token 2
	if err != nil {
		t.Fatal(err)
	}
	b.join()
	a.sendJSON(map[string]any{"id": sessionID, "action": "JOIN", "args": standardJoinArgs("a")}) // token 3
	a.readUntil("the SYNC of a second JOIN", func(frame serverFrame) bool { return frame.Action == protocol.ActionSync })
	a.sendJSON(map[string]any{"id": sessionID, "action": "JOIN", "args": standardJoinArgs("a")}) // none left
	a.expectClose(protocol.CloseReconnect, "too many JOINs from "+attacker, "JoinsPerIPPerSecond")

	_, err = dialFrom(t, server.Addr(), sessionID, "c", attacker)
	expectRefused(t, err, http.StatusTooManyRequests)
	if got := server.metrics.joinsRateLimited.Load(); got != 2 {
		t.Errorf("metronome_joins_rate_limited_total %d, want 2", got)
	}
	other, err := dialFrom(t, server.Addr(), sessionID, "d", "198.51.100.2")
	if err != nil {
		t.Fatalf("another address: %v", err)
	}
	other.join()
	// The session goes on for the members that were not refused.
	b.sendMessage("still here")
	b.awaitPayload("still here")
	other.awaitPayload("still here")
}

// TestJoinBucketRefills: the bucket refills at JoinsPerIPPerSecond up to
// JoinsPerIPBurst.
func TestJoinBucketRefills(t *testing.T) {
	var limiter joinLimiter
	address := netip.MustParseAddr("203.0.113.1")
	start := time.Unix(1000, 0)
	for i := 0; i < 4; i++ {
		if !limiter.take(address, start, 2, 4) {
			t.Fatalf("JOIN %d of a burst of 4 refused", i)
		}
	}
	if limiter.take(address, start, 2, 4) {
		t.Fatal("a fifth JOIN at once was allowed")
	}
	if !limiter.take(address, start.Add(500*time.Millisecond), 2, 4) {
		t.Fatal("one JOIN 0.5 s later at 2/s was refused")
	}
	if limiter.take(address, start.Add(500*time.Millisecond), 2, 4) {
		t.Fatal("a second JOIN 0.5 s later at 2/s was allowed")
	}
	later := start.Add(time.Hour)
	for i := 0; i < 4; i++ {
		if !limiter.take(address, later, 2, 4) {
			t.Fatalf("JOIN %d an hour later refused: the bucket did not refill to its burst", i)
		}
	}
	if limiter.take(address, later, 2, 4) {
		t.Fatal("the bucket refilled beyond its burst")
	}
	// Many addresses: full buckets are pruned, memory does not grow.
	for i := 0; i < 3*joinBucketsPruneSize; i++ {
		other := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		limiter.take(other, later.Add(time.Duration(i)*time.Second), 2, 4)
	}
	if size := len(limiter.buckets); size > joinBucketsPruneSize+2 {
		t.Errorf("%d buckets kept for addresses idle for longer than burst/rate, want at most %d", size, joinBucketsPruneSize+2)
	}
}

// TestSyncAmplificationIsBounded: an attacker at one address that JOINs
// over and over, on new connections and on one connection, makes the
// server send at most JoinsPerIPBurst SYNCs of the session in a burst (and
// JoinsPerIPPerSecond a second after that), however many it asks for.
func TestSyncAmplificationIsBounded(t *testing.T) {
	const burst = 4
	server := startServer(t, Config{TrustedProxies: behindProxy, JoinsPerIPPerSecond: 0.001, JoinsPerIPBurst: burst})
	sessionID := newSessionID(t)
	member := dialSession(t, server.Addr(), sessionID, "member")
	member.join()
	payload := strings.Repeat("x", 4000)
	for i := 0; i < 50; i++ {
		member.sendMessage(fmt.Sprintf("%03d-%s", i, payload))
	}
	member.awaitPayload(fmt.Sprintf("%03d-%s", 49, payload))
	probe := dialSession(t, server.Addr(), sessionID, "probe") // loopback: not limited
	syncBytes := 0
	for _, message := range probe.join().Messages {
		syncBytes += len(message)
	}
	if syncBytes < 50*len(payload) {
		t.Fatalf("the SYNC has %d bytes, want the 50 messages of %d bytes", syncBytes, len(payload))
	}

	var received atomic.Int64
	attempts, refused := 0, 0
	for i := 0; i < 20; i++ {
		attempts++
		conn, err := dialFrom(t, server.Addr(), sessionID, fmt.Sprintf("evil%d", i), "203.0.113.66")
		if err != nil {
			refused++
			continue
		}
		for j := 0; j < 5; j++ { // five JOINs per connection, each after the last one's answer
			if err := conn.writeFrame(ws.OpText, mustJSON(map[string]any{"id": sessionID, "action": "JOIN", "args": standardJoinArgs(conn.viewID)})); err != nil {
				break
			}
			bytes, ended := drainBytes(t, conn.conn, conn.reader, 300*time.Millisecond)
			received.Add(bytes)
			if ended {
				break
			}
		}
		conn.conn.Close()
	}
	bound := int64(burst) * int64(syncBytes+64<<10) // 64 KiB: ticks, INFO, close frames
	t.Logf("attacker: %d connections tried (%d refused with 429), 100 JOINs sent, %d bytes received; one SYNC is %d bytes; bound %d",
		attempts, refused, received.Load(), syncBytes, bound)
	if received.Load() > bound {
		t.Errorf("the attacker received %d bytes, more than %d SYNCs (%d bytes)", received.Load(), burst, bound)
	}
	if received.Load() < int64(syncBytes) {
		t.Errorf("the attacker received %d bytes, less than one SYNC: the test does not measure what it should", received.Load())
	}
}

// drainBytes reads a connection (through reader) until it ends or is
// quiet for quiet, and returns the bytes read and whether it ended.
func drainBytes(t *testing.T, conn net.Conn, reader io.Reader, quiet time.Duration) (total int64, ended bool) {
	t.Helper()
	buffer := make([]byte, 64<<10)
	for {
		_ = conn.SetReadDeadline(time.Now().Add(quiet))
		n, err := reader.Read(buffer)
		total += int64(n)
		if err != nil {
			var netError net.Error
			if errors.As(err, &netError) && netError.Timeout() {
				return total, false
			}
			if errors.Is(err, io.EOF) || isConnectionReset(err) || errors.Is(err, net.ErrClosed) {
				return total, true
			}
			t.Fatalf("reading: %v", err)
		}
	}
}

// TestSessionsMax: a connection to a new session beyond SessionsMax is
// refused with 503 naming the limit; the sessions that exist go on and
// take new members.
func TestSessionsMax(t *testing.T) {
	server := startServer(t, Config{SessionsMax: 2})
	first, second := newSessionID(t), newSessionID(t)
	a := dialSession(t, server.Addr(), first, "a")
	a.join()
	b := dialSession(t, server.Addr(), second, "b")
	b.join()
	_, err := tryDialPath(t, server.Addr(), "/reflector/"+newSessionID(t))
	var statusError ws.StatusError
	if !errors.As(err, &statusError) || int(statusError) != http.StatusServiceUnavailable {
		t.Fatalf("a third session: %v, want HTTP 503", err)
	}
	if got := server.metrics.rejectedSessionsMax.Load(); got != 1 {
		t.Errorf("metronome_sessions_rejected_total %d, want 1", got)
	}
	request, err := http.NewRequest(http.MethodGet, "http://"+server.Addr()+"/reflector/"+newSessionID(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	request.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	if !strings.Contains(string(body), "SessionsMax=2") {
		t.Errorf("the refusal says %q, want the limit named", body)
	}
	c := dialSession(t, server.Addr(), first, "c")
	c.join()
	a.sendMessage("hello")
	c.awaitPayload("hello")
}

// TestLaggingClientIsCut: a client that reads, but too slowly to ever
// empty its send queue, is closed with 4001 once its backlog is older
// than QueueAgeMax, although the queue never fills (QueueFramesMax,
// QueueBytesMax); the session goes on for the others.
func TestLaggingClientIsCut(t *testing.T) {
	reflectorConfig := reflector.DefaultConfig()
	reflectorConfig.FramesPerSecondMax = 10_000
	reflectorConfig.FramesBurstMax = 10_000
	server := startServer(t, Config{QueueAgeMax: time.Second, WriteTimeout: time.Minute, Reflector: reflectorConfig})
	sessionID := newSessionID(t)
	fast := dialSession(t, server.Addr(), sessionID, "fast")
	fast.join()
	slow := dialSession(t, server.Addr(), sessionID, "slow")
	if tcp, ok := slow.conn.(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(16 << 10)
	}
	slow.join()

	// The slow client reads 4 KiB every 50 ms (80 KiB/s) while the
	// session sends it about 4 MB/s: its backlog never clears, but its
	// queue (16 MiB) does not fill before the age rule applies.
	throttle := &throttledReader{conn: slow.conn, chunk: 4 << 10, every: 50 * time.Millisecond}
	go func() { _, _ = io.Copy(io.Discard, throttle) }()
	payload := strings.Repeat("y", 200_000)
	deadline := time.Now().Add(30 * time.Second)
	for i := 0; server.metrics.slowClientsLagging.Load() == 0; i++ {
		if time.Now().After(deadline) {
			t.Fatal("the lagging client was not cut within 30 s")
		}
		fast.sendMessage(fmt.Sprintf("m%05d-%s", i, payload))
		fast.awaitPayload(fmt.Sprintf("m%05d-%s", i, payload))
		time.Sleep(50 * time.Millisecond)
	}
	if full := server.metrics.slowClients.Load() - server.metrics.slowClientsLagging.Load(); full != 0 {
		t.Errorf("%d clients cut for a full queue: the test meant the age rule", full)
	}
	// The server ends the connection in bounded time: the write in
	// progress (megabytes the client reads at a trickle) gets 2 s more,
	// then the socket is closed.
	cutAt := time.Now()
	for server.metrics.connections.Load() > 1 {
		if time.Since(cutAt) > 10*time.Second {
			t.Fatalf("10 s after the cut the server still has %d connections, want 1", server.metrics.connections.Load())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("the connection ended %s after the cut was seen", time.Since(cutAt).Round(time.Millisecond))
	fast.sendMessage("after")
	fast.awaitPayload("after")
}

// throttledReader reads at most chunk bytes per every from conn.
type throttledReader struct {
	conn  net.Conn
	chunk int
	every time.Duration
}

func (r *throttledReader) Read(p []byte) (int, error) {
	time.Sleep(r.every)
	if len(p) > r.chunk {
		p = p[:r.chunk]
	}
	_ = r.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	return r.conn.Read(p)
}
