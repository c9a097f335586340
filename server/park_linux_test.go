package server

import (
	"io"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
)

// parkedConns counts the server's connections whose reader is parked.
func parkedConns(server *Server) int {
	readPoller := sharedReadPoller()
	readPoller.mu.Lock()
	conns := make([]*conn, 0, len(readPoller.conns))
	for _, c := range readPoller.conns {
		if c.server == server {
			conns = append(conns, c)
		}
	}
	readPoller.mu.Unlock()
	parked := 0
	for _, c := range conns {
		c.mu.Lock()
		if c.readerParked {
			parked++
		}
		c.mu.Unlock()
	}
	return parked
}

// awaitParked waits until n connections are parked.
func awaitParked(t *testing.T, server *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for parkedConns(server) != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections parked, want %d", parkedConns(server), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIdleConnectionsParkAndWake: readers of idle connections park (no
// goroutine) and are started again by input: a SEND, a WebSocket ping, and
// at the end the server's close handshake with a parked client. Readers
// park only on Linux (epoll).
func TestIdleConnectionsParkAndWake(t *testing.T) {
	server := startServer(t, Config{})
	sessionID := newSessionID(t)
	a := dialSession(t, server.Addr(), sessionID, "viewA")
	a.join()
	b := dialSession(t, server.Addr(), sessionID, "viewB")
	b.join()
	a.awaitJoined("viewB")
	awaitParked(t, server, 2)

	a.sendMessage("after parking")
	a.awaitPayload("after parking")
	b.awaitPayload("after parking")
	awaitParked(t, server, 2)

	if err := b.writeFrame(ws.OpPing, []byte("are you there")); err != nil {
		t.Fatal(err)
	}
	if err := b.conn.SetReadDeadline(time.Now().Add(frameTimeout)); err != nil {
		t.Fatal(err)
	}
	for {
		header, err := ws.ReadHeader(b.reader)
		if err != nil {
			t.Fatalf("waiting for the pong: %v", err)
		}
		payload := make([]byte, header.Length)
		if _, err := io.ReadFull(b.reader, payload); err != nil {
			t.Fatalf("waiting for the pong: %v", err)
		}
		if header.OpCode == ws.OpPong {
			if string(payload) != "are you there" {
				t.Fatalf("pong %q", payload)
			}
			break
		}
	}
	b.ping("protocol ping") // a PING frame (docs/protocol.md §6.7) after the WebSocket one
	awaitParked(t, server, 2)

	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		shutdownServer(t, server)
	}()
	a.expectClose(protocol.CloseReconnect, "reconnect")
	b.expectClose(protocol.CloseReconnect, "reconnect")
	<-shutdownDone
}
