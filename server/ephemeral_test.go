package server

import (
	"testing"

	"github.com/metronome-sync/metronome/store/memstore"
)

// TestDroppableFramesSkipABackloggedClient: an ephemeral frame
// (reflector.Outbound.Droppable, docs/protocol.md §22) is queued to a
// client whose socket keeps up, also behind other frames of the same
// flush, and skipped (and counted) while a writer goroutine still owns the
// socket with frames of earlier flushes. Other frames are queued anyway.
func TestDroppableFramesSkipABackloggedClient(t *testing.T) {
	server, err := New(Config{Logger: testLogger(t), Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	c := pipeConn(t, server, 1)
	frame := []byte(`{"id":"S","action":"EPHM","args":["v1","p"]}`)
	c.enqueue([]byte(`{"id":"S","action":"TICK","args":1}`), nil, false, false)
	c.enqueue(frame, nil, false, true)
	if len(c.queue) != 2 {
		t.Fatalf("%d frames queued to a client that keeps up, want 2", len(c.queue))
	}

	c.mu.Lock()
	c.writing = true // the socket did not take the last flush: a writer goroutine owns it
	c.mu.Unlock()
	c.enqueue(frame, nil, false, true)
	if len(c.queue) != 2 || server.metrics.ephemeralSkipped.Load() != 1 {
		t.Fatalf("behind: %d frames queued, %d skipped; want the ephemeral frame skipped and counted",
			len(c.queue), server.metrics.ephemeralSkipped.Load())
	}
	c.enqueue([]byte(`{"id":"S","action":"RECV","args":[1,2,"m"]}`), nil, false, false)
	if len(c.queue) != 3 {
		t.Fatalf("behind: %d frames queued, want the RECV queued", len(c.queue))
	}
	c.mu.Lock()
	c.writing = false
	c.mu.Unlock()
}
