package server

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// TestShutdownStepsQueuedFrames: frames the readers have already queued
// when the shutdown arrives are stepped before the session's Shutdown:
// their messages are stamped and stored, not dropped. The actor is driven
// directly so that the frame is certainly queued at that moment.
func TestShutdownStepsQueuedFrames(t *testing.T) {
	st := memstore.New()
	actor := newTestActor(t, st, "shutdown-drain")
	c := pipeConn(t, actor.server, 1)
	join, err := protocol.DecodeClientFrame(protocol.AppendJoinFrame(nil, "shutdown-drain",
		&protocol.JoinRequest{Name: "n", User: []byte(`"u"`), TickMs: 100}))
	if err != nil {
		t.Fatal(err)
	}
	actor.step(actorEvent{event: reflector.Connect{Conn: 1}, conn: c})
	actor.step(receiveEvent(1, join, nil))
	actor.flush()

	send, err := protocol.DecodeClientFrame(protocol.AppendSendFrame(nil, "shutdown-drain", 0, []byte(`"queued before the shutdown"`), nil))
	if err != nil {
		t.Fatal(err)
	}
	actor.deliver(receiveEvent(1, send, nil))
	actor.shutdown()
	actor.flush()

	stored, err := st.LoadSession(context.Background(), "shutdown-drain")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, message := range stored.Messages {
		found = found || strings.Contains(string(message.Data), "queued before the shutdown")
	}
	if !found {
		t.Errorf("the frame queued before the shutdown was not stamped: stored %d messages", len(stored.Messages))
	}
	if !actor.host.Ended() {
		t.Error("the session did not end at the shutdown")
	}
}

// TestShutdownIsNotHeldBySlowUpload: a PUT whose body trickles in does not
// keep the sessions from persisting and asking their clients to reconnect:
// the 4003 arrives while the upload is still open. The upload itself is
// cut off by FileTransferTimeout with 408.
func TestShutdownIsNotHeldBySlowUpload(t *testing.T) {
	server := startServer(t, Config{FileTransferTimeout: 2 * time.Second})
	a := dialSession(t, server.Addr(), newSessionID(t), "viewA")
	a.join()

	upload, err := net.Dial("tcp", server.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer upload.Close()
	// Expect: 100-continue makes the server answer once its handler reads
	// the body: the upload is then certainly running.
	fmt.Fprintf(upload, "PUT /files/slow.bin HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n")
	replies := bufio.NewReader(upload)
	for {
		line, err := replies.ReadString('\n')
		if err != nil {
			t.Fatalf("waiting for 100 Continue: %v", err)
		}
		if line == "\r\n" {
			break
		}
	}
	fmt.Fprintf(upload, "x")

	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		shutdownServer(t, server)
	}()
	a.expectClose(protocol.CloseReconnect, "reconnect")
	// The upload is still running: its answer has not come yet.
	_ = upload.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := replies.Peek(1); err == nil {
		t.Fatal("the slow upload was answered before the sessions were asked to reconnect")
	}
	_ = upload.SetReadDeadline(time.Time{})
	response, err := http.ReadResponse(replies, nil)
	if err != nil {
		t.Fatalf("the slow upload got no response: %v", err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusRequestTimeout {
		t.Errorf("the slow upload got %s, want 408 (FileTransferTimeout)", response.Status)
	}
	<-shutdownDone
}

// newTestActor returns a loaded session actor of a new server on st, to be
// driven directly (its goroutine is not started).
func newTestActor(t *testing.T, st store.Store, sessionID string) *sessionActor {
	t.Helper()
	server, err := New(Config{Logger: testLogger(t), Store: st})
	if err != nil {
		t.Fatal(err)
	}
	actor := newSessionActor(server, sessionID)
	actor.load()
	return actor
}

// pipeConn returns a server connection over an in-memory pipe whose client
// end is read and discarded, so that writes never block.
func pipeConn(t *testing.T, server *Server, id reflector.ConnID) *conn {
	t.Helper()
	serverEnd, clientEnd := net.Pipe()
	t.Cleanup(func() { serverEnd.Close(); clientEnd.Close() })
	go io.Copy(io.Discard, clientEnd)
	return newConn(server, id, serverEnd, bufio.NewReadWriter(bufio.NewReader(serverEnd), bufio.NewWriter(serverEnd)), "pipe")
}
