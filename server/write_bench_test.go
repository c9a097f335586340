package server

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store/memstore"
)

// Micro-benchmarks of the write path and one end-to-end benchmark. They
// report time and allocations only; nothing is asserted about speed.

// benchRecvFrame is a typical RECV frame (the SEND of
// protocol/testdata/frames/send.json, stamped).
var benchRecvFrame = []byte(`{"id":"Oq7ScyMxXY7c-vcBSAA8rxHz3IXvH8f7KaGtOR4aQx8","action":"RECV","args":[17563,1234,"D/9l+ZYNPJzLtjQ5lHCkKTiVtqO/wZchLUdJfKRUz66FSe4hLp2cTix7t8aYaNEho1/81yDkDmFssrIcwax8WT1023uvFZHbA/+8I00xEHE=",42]}`)

// benchWireBytes is the size of one server frame with its header.
func benchWireBytes(payload []byte) int {
	return ws.HeaderSize(ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(payload))}) + len(payload)
}

// loopbackPair returns the two ends of a loopback TCP connection.
func loopbackPair(b *testing.B) (server, client net.Conn) {
	b.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer listener.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		conn, err := listener.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- conn
	}()
	client, err = net.Dial("tcp", listener.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		b.Fatal("accept failed")
	}
	b.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

// byteWaiter reads a connection in a goroutine, discarding, and lets the
// benchmark wait until a cumulative number of bytes has arrived.
type byteWaiter struct {
	mu       sync.Mutex
	cond     *sync.Cond
	received int64
	err      error
}

func newByteWaiter(conn net.Conn) *byteWaiter {
	w := &byteWaiter{}
	w.cond = sync.NewCond(&w.mu)
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := conn.Read(buf)
			w.mu.Lock()
			w.received += int64(n)
			if err != nil {
				w.err = err
			}
			w.cond.Broadcast()
			w.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return w
}

func (w *byteWaiter) waitFor(b *testing.B, total int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for w.received < total {
		if w.err != nil {
			b.Fatalf("reader: %v after %d of %d bytes", w.err, w.received, total)
		}
		w.cond.Wait()
	}
}

// BenchmarkWriteFrameFlush appends batches of 1/16/256 RECV frames to one
// buffer (appendFrames, as a flush does) and writes it with one Write on a
// loopback TCP socket drained by a goroutine. One op is one batch; the wait
// for the bytes to arrive is included.
func BenchmarkWriteFrameFlush(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("frames=%d", batch), func(b *testing.B) {
			serverEnd, clientEnd := loopbackPair(b)
			waiter := newByteWaiter(clientEnd)
			frames := make([]outFrame, batch)
			for i := range frames {
				frames[i] = outFrame{data: benchRecvFrame, size: len(benchRecvFrame)}
			}
			var buffer []byte
			perBatch := int64(batch * benchWireBytes(benchRecvFrame))
			var total int64
			b.SetBytes(perBatch)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				buffer = appendFrames(buffer[:0], frames)
				if _, err := serverEnd.Write(buffer); err != nil {
					b.Fatal(err)
				}
				total += perBatch
				waiter.waitFor(b, total)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
		})
	}
}

// BenchmarkConnWriter drives a real conn's write path: each op enqueues a
// batch of 1/16/256 RECV frames and flushes (as the session actor does) and
// waits until a loopback TCP reader has received them all.
func BenchmarkConnWriter(b *testing.B) {
	for _, batch := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("frames=%d", batch), func(b *testing.B) {
			srv, err := New(Config{Addr: "127.0.0.1:0", Store: memstore.New()})
			if err != nil {
				b.Fatal(err)
			}
			serverEnd, clientEnd := loopbackPair(b)
			waiter := newByteWaiter(clientEnd)
			rw := bufio.NewReadWriter(bufio.NewReader(serverEnd), bufio.NewWriterSize(serverEnd, 4096))
			c := newConn(srv, 1, serverEnd, rw, "bench")
			defer func() {
				c.mu.Lock()
				c.readerGone = true
				c.mu.Unlock()
				c.flush()
				<-c.writerDone
			}()
			perBatch := int64(batch * benchWireBytes(benchRecvFrame))
			var total int64
			b.SetBytes(perBatch)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				for range batch {
					c.enqueue(benchRecvFrame, nil, false, false)
				}
				c.flush()
				total += perBatch
				waiter.waitFor(b, total)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batch), "ns/frame")
			if c.closeCode != 0 {
				b.Fatalf("conn closed with %d: %s", c.closeCode, c.closeReason)
			}
		})
	}
}

// benchClient is a minimal WebSocket client for the end-to-end benchmark.
type benchClient struct {
	conn    net.Conn
	reader  *wsutil.Reader
	control wsutil.FrameHandlerFunc
}

func dialBench(b *testing.B, addr, sessionID string) *benchClient {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, br, _, err := ws.Dial(ctx, "ws://"+addr+"/reflector/"+sessionID)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	var source io.Reader = conn
	if br != nil {
		source = io.MultiReader(br, conn)
	}
	// Buffered, so that the client reads many frames per syscall and the
	// benchmark measures the server rather than the client.
	reader := wsutil.NewClientSideReader(bufio.NewReaderSize(source, 64<<10))
	return &benchClient{conn: conn, reader: reader, control: wsutil.ControlFrameHandler(conn, ws.StateClientSide)}
}

func (c *benchClient) send(b *testing.B, data []byte) {
	if err := wsutil.WriteClientMessage(c.conn, ws.OpText, data); err != nil {
		b.Fatal(err)
	}
}

// next reads the next data frame into buf.
func (c *benchClient) next(buf []byte) ([]byte, error) {
	for {
		header, err := c.reader.NextFrame()
		if err != nil {
			return nil, err
		}
		if header.OpCode.IsControl() {
			if err := c.control(header, c.reader); err != nil {
				return nil, err
			}
			continue
		}
		buf = buf[:0]
		for {
			chunk := buf[len(buf):cap(buf)]
			if len(chunk) == 0 {
				buf = append(buf, 0)[:len(buf)]
				chunk = buf[len(buf):cap(buf)]
			}
			n, err := c.reader.Read(chunk)
			buf = buf[:len(buf)+n]
			if err == io.EOF {
				return buf, nil
			}
			if err != nil {
				return nil, err
			}
		}
	}
}

// BenchmarkEndToEnd: an in-memory server, 10 clients in one session; one
// client sends b.N SENDs and the benchmark waits until every client has
// received all of them as RECVs. The per-connection rate limit is raised
// (the default 200 frames/s would throttle the sender), and so is the
// message buffer (no snapshots are taken here).
func BenchmarkEndToEnd(b *testing.B) {
	const clients = 10
	config := Config{Addr: "127.0.0.1:0", Store: memstore.New(), QueueFramesMax: 1 << 20, QueueBytesMax: 1 << 30}
	config.Reflector = benchReflectorConfig()
	srv, err := New(config)
	if err != nil {
		b.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()
	sessionID := fmt.Sprintf("bench-e2e-%d", sessionCounter.Add(1))
	joinTemplate := `{"id":"` + sessionID + `","action":"JOIN","args":{"name":"io.metronome.test/room1","apiKey":"none","appId":"io.metronome.test","url":"http://localhost/node.html","persistentId":"persistent-id-of-room1","sdk":"2.0.4","developerId":"unknown_dev_id","version":1,"user":"VIEW","ticks":{"tick":50,"delay":0},"dormantDelay":10,"tove":"tove-of-room1","codeHash":"code-hash-of-room1","leaveDelay":1250}}`
	members := make([]*benchClient, clients)
	for i := range members {
		members[i] = dialBench(b, srv.Addr(), sessionID)
		members[i].send(b, []byte(strings.Replace(joinTemplate, "VIEW", fmt.Sprintf("view-%d", i), 1)))
		// Wait for the SYNC so that every member is in the broadcast set.
		for {
			frame, err := members[i].next(nil)
			if err != nil {
				b.Fatal(err)
			}
			if strings.Contains(string(frame[:min(len(frame), 120)]), `"action":"SYNC"`) {
				break
			}
		}
	}
	marker := []byte(`"benchmark-payload"`)
	var received atomic.Int64
	var wg sync.WaitGroup
	want := int64(b.N)
	errs := make(chan error, clients)
	for _, member := range members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			count := int64(0)
			_ = member.conn.SetReadDeadline(time.Now().Add(60*time.Second + time.Duration(want)*10*time.Microsecond))
			for count < want {
				frame, err := member.next(buf)
				if err != nil {
					errs <- fmt.Errorf("after %d of %d RECVs: %w", count, want, err)
					return
				}
				buf = frame
				if containsBytes(frame, marker) {
					count++
					received.Add(1)
				}
			}
		}()
	}
	send := []byte(`{"id":"` + sessionID + `","action":"SEND","args":[1234,0,"benchmark-payload",7]}`)
	// The masked frame is encoded once and written with one syscall per
	// SEND (wsutil.WriteClientMessage writes header and payload apart).
	var encoded bytes.Buffer
	if err := ws.WriteFrame(&encoded, ws.MaskFrameInPlace(ws.NewTextFrame(append([]byte(nil), send...)))); err != nil {
		b.Fatal(err)
	}
	sendFrame := encoded.Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := members[0].conn.Write(sendFrame); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(received.Load())/b.Elapsed().Seconds(), "deliveries/s")
}

func containsBytes(frame, marker []byte) bool {
	return bytes.Contains(frame, marker)
}

func benchReflectorConfig() reflector.Config {
	config := reflector.DefaultConfig()
	config.FramesPerSecondMax = 1 << 20
	config.FramesBurstMax = 1 << 20
	config.MessagesSinceSnapshotMax = 10_000_000
	config.MessagesRequestSnapshotFrom = 10_000_000
	return config
}
