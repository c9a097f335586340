package server

// Bad input from clients (docs/protocol.md §5.1, §6.10, §13.2, §13.3, quirks Q3 and
// Q11) and from file-store users (§12.2). Every WebSocket case checks the
// exact close code, that the reason names the problem, and that another
// client of the same session is unaffected: it stays connected and its
// messages continue without a sequence gap.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store/memstore"
)

// badInput is one bad-input case. The bad client connects to the
// observer's session (or to path, when set), joins first if join is set,
// then act misbehaves. A zero code means the connection must stay open.
type badInput struct {
	name   string
	path   string
	join   bool
	act    func(t *testing.T, bad *client)
	code   int
	reason []string
	// check runs instead of the close check when code is zero.
	check func(t *testing.T, bad, observer *client)
	// skipEOF: do not wait for the server to end the TCP connection after
	// the closing handshake. For connections refused by path the server
	// waits out its close handshake timeout (2 s) before it closes (the bug
	// of TestRefusedConnectionEndsWithTheCloseHandshake), so only one such
	// case waits for it, to keep the suite fast.
	skipEOF bool
}

func sendsText(text string) func(*testing.T, *client) {
	return func(t *testing.T, bad *client) { bad.sendText(text) }
}

func sendsJSON(v any) func(*testing.T, *client) {
	return func(t *testing.T, bad *client) { bad.sendJSON(v) }
}

// joinWith returns a JOIN frame of the standard args with changes
// applied: a nil value deletes the field.
func joinWith(changes map[string]any) map[string]any {
	args := standardJoinArgs("bad")
	for field, value := range changes {
		if value == nil {
			delete(args, field)
		} else {
			args[field] = value
		}
	}
	return map[string]any{"id": "ignored", "action": "JOIN", "args": args}
}

var (
	validTutti = []any{100, 0, `{"hash":"h"}`, nil, true, []string{"handleSnapshotVote"}, "snapshot@100"}
	validSnap  = map[string]any{"time": 100, "seq": 4294967281, "hash": "h", "url": "http://localhost/files/snap", "dissident": nil}
	validSave  = map[string]any{"persistTime": 100, "url": "http://localhost/files/save", "dissident": nil}
)

func badInputs() []badInput {
	inputs := []badInput{
		// Frames that are not JSON objects (docs/protocol.md §5.1, §13.3; Q3: null is
		// 4102 here, not the reference's 4109).
		{name: "not JSON", act: sendsText(`{"action":"PING",`), code: 4102, reason: []string{"JSON"}},
		{name: "not JSON text", act: sendsText(`hello`), code: 4102, reason: []string{"JSON object"}},
		{name: "empty frame", act: sendsText(``), code: 4102, reason: []string{"JSON object"}},
		{name: "null", act: sendsText(`null`), code: 4102, reason: []string{"JSON object"}},
		{name: "number", act: sendsText(`42`), code: 4102, reason: []string{"JSON object"}},
		{name: "array", act: sendsText(`[]`), code: 4102, reason: []string{"JSON object"}},
		{name: "string", act: sendsText(`"JOIN"`), code: 4102, reason: []string{"JSON object"}},
		{name: "invalid UTF-8", act: sendsText("{\"action\":\"PING\",\"args\":\"\xff\xfe\"}"), code: 4102, reason: []string{"UTF-8"}},
		{name: "binary frame", act: func(t *testing.T, bad *client) {
			if err := bad.writeFrame(ws.OpBinary, []byte(`{"action":"PING","args":1}`)); err != nil {
				t.Fatal(err)
			}
		}, code: 4102, reason: []string{"binary"}},

		// Fields of the wrong type.
		{name: "action not a string", act: sendsText(`{"action":5}`), code: 4102, reason: []string{"action"}},
		{name: "SEND args a string", join: true, act: sendsJSON(map[string]any{"action": "SEND", "args": "hello"}), code: 4102, reason: []string{"args", "array"}},
		{name: "SEND args too short", join: true, act: sendsJSON(map[string]any{"action": "SEND", "args": []any{1, 0}}), code: 4102, reason: []string{"args", "elements"}},
		{name: "SEND payload an object", join: true, act: sendsJSON(map[string]any{"action": "SEND", "args": []any{1, 0, map[string]any{"what": "users"}}}), code: 4102, reason: []string{"args[2]", "string"}},
		{name: "SEND tags a string", join: true, act: sendsJSON(map[string]any{"action": "SEND", "args": []any{1, 0, "x"}, "tags": "debounce"}), code: 4102, reason: []string{"tags"}},
		{name: "TUTTI args an object", join: true, act: sendsJSON(map[string]any{"action": "TUTTI", "args": map[string]any{}}), code: 4102, reason: []string{"args"}},
		{name: "SNAP seq a string", join: true, act: sendsJSON(map[string]any{"action": "SNAP", "args": map[string]any{"time": 1, "seq": "1", "url": "u"}}), code: 4102, reason: []string{"args.seq"}},

		// Unknown actions are ignored (docs/protocol.md §6).
		{name: "unknown action", join: true, act: sendsJSON(map[string]any{"action": "DANCE", "args": 1}), check: func(t *testing.T, bad, observer *client) {
			bad.expectOpen()
		}},
		{name: "unknown action before JOIN", act: sendsJSON(map[string]any{"action": "DANCE"}), check: func(t *testing.T, bad, observer *client) {
			bad.expectOpen()
		}},

		// Order of actions.
		{name: "SEND before JOIN", act: sendsJSON(sendFrame("x", "early")), code: 4102, reason: []string{"SEND before JOIN"}},
		{name: "TUTTI before JOIN", act: sendsJSON(map[string]any{"action": "TUTTI", "args": validTutti}), code: 4000, reason: []string{"unknown session", "TUTTI"}},
		{name: "SNAP before JOIN", act: sendsJSON(map[string]any{"action": "SNAP", "args": validSnap}), code: 4000, reason: []string{"unknown session", "SNAP"}},
		{name: "SAVE before JOIN", act: sendsJSON(map[string]any{"action": "SAVE", "args": validSave}), code: 4000, reason: []string{"unknown session", "SAVE"}},
		{name: "TICKS before JOIN", act: sendsJSON(map[string]any{"action": "TICKS", "args": map[string]any{"tick": 100}}), code: 4000, reason: []string{"unknown session", "TICKS"}},
		{name: "TUTTI in a session without island", path: "/reflector/no-island-here", act: sendsJSON(map[string]any{"action": "TUTTI", "args": validTutti}), code: 4000, reason: []string{"unknown session"}},
		{name: "JOIN twice", join: true, act: func(t *testing.T, bad *client) {
			bad.join()
		}, check: checkJoinedTwice},

		// JOIN args (docs/protocol.md §6.1, §17 MUST 2).
		{name: "JOIN without version", act: sendsJSON(joinWith(map[string]any{"version": nil})), code: 4100, reason: []string{"version"}},
		{name: "JOIN with version 0", act: sendsJSON(joinWith(map[string]any{"version": 0})), code: 4100, reason: []string{"version"}},
		{name: "JOIN with numeric args", act: sendsJSON(map[string]any{"action": "JOIN", "args": 1}), code: 4100, reason: []string{"args"}},
		{name: "JOIN without apiKey", act: sendsJSON(joinWith(map[string]any{"apiKey": nil})), code: 4103, reason: []string{"apiKey"}},
		{name: "JOIN with huge ticks.tick", act: sendsJSON(joinWith(map[string]any{"ticks": map[string]any{"tick": 1e12}})), code: 4102, reason: []string{"args.ticks.tick"}},
		{name: "JOIN with ticks.tick 0", act: sendsJSON(joinWith(map[string]any{"ticks": map[string]any{"tick": 0}})), code: 4102, reason: []string{"args.ticks.tick"}},
		{name: "JOIN with negative leaveDelay", act: sendsJSON(joinWith(map[string]any{"leaveDelay": -5})), code: 4102, reason: []string{"args.leaveDelay"}},
		{name: "JOIN with name a number", act: sendsJSON(joinWith(map[string]any{"name": 5})), code: 4102, reason: []string{"args.name"}},

		// Session ids in the URL path (docs/protocol.md §3.1).
		{name: "empty session id", path: "/reflector/", code: 4100, reason: []string{"session id"}},
		{name: "root path", path: "/", code: 4100, reason: []string{"session id"}, skipEOF: true},
		{name: "session id with backslash", path: "/reflector/ab%5Ccd", code: 4100, reason: []string{"session id"}, skipEOF: true},
		{name: "session id with control character", path: "/reflector/ab%01cd", code: 4100, reason: []string{"session id"}, skipEOF: true},
		{name: "session id not UTF-8", path: "/reflector/ab%FFcd", code: 4100, reason: []string{"session id", "UTF-8"}, skipEOF: true},
		{name: "session id dot-dot", path: "/reflector/%2e%2e", code: 4100, reason: []string{"session id"}, skipEOF: true},
		{name: "session id of 129 bytes", path: "/reflector/" + strings.Repeat("s", 129), code: 4100, reason: []string{"session id", "128"}, skipEOF: true},

		// Limits (docs/protocol.md §13.2).
		{name: "frame flood", join: true, act: floodPings, code: 4104, reason: []string{"too many frames"}},
		{name: "oversize frame", join: true, act: sendOversizeFrame, code: 4102, reason: []string{"FrameBytesMax"}},

		// WebSocket framing (RFC 6455 §5.1: client frames must be masked).
		{name: "unmasked frame", join: true, act: sendUnmaskedFrame, code: 1002, reason: []string{"mask"}},
		{name: "reserved control opcode", join: true, act: sendReservedControlFrame, code: 1002, reason: []string{"opcode"}},
	}
	return inputs
}

func TestBadInput(t *testing.T) {
	server := startServer(t, Config{})
	for _, input := range badInputs() {
		t.Run(input.name, func(t *testing.T) {
			t.Parallel()
			runBadInput(t, server.Addr(), input)
		})
	}
}

func runBadInput(t *testing.T, addr string, input badInput) {
	sessionID := newSessionID(t)
	observer := dialSession(t, addr, sessionID, "observer")
	observer.join()

	var bad *client
	if input.path != "" {
		bad = dialPath(t, addr, input.path)
		bad.viewID = "bad"
	} else {
		bad = dialSession(t, addr, sessionID, "bad")
	}
	if input.join {
		bad.join()
	}
	if input.act != nil {
		input.act(t, bad)
	}
	switch {
	case input.code != 0 && input.skipEOF:
		bad.expectCloseFrame(input.code, input.reason...)
	case input.code != 0:
		bad.expectClose(input.code, input.reason...)
	case input.check != nil:
		input.check(t, bad, observer)
	}
	expectUnaffected(t, observer)
}

// expectUnaffected checks that the observer is still served: its next
// messages arrive, and each has exactly the seq after the one before
// (the client checks every RECV; this states it explicitly).
func expectUnaffected(t *testing.T, observer *client) {
	t.Helper()
	before := observer.lastSeq
	marker := fmt.Sprintf("marker-%d", sessionCounter.Add(1))
	observer.sendMessage(marker)
	received := observer.readUntil("RECV of "+marker, func(frame serverFrame) bool {
		n := len(observer.messages)
		return frame.Action == protocol.ActionRecv && observer.messages[n-1].text() == marker
	})
	for i, message := range received {
		if want := before + 1 + uint32(i); message.Seq != want {
			t.Errorf("observer: message %d after the bad input has seq %d, want %d (no gap)", i, message.Seq, want)
		}
	}
	observer.expectOpen()
}

// checkJoinedTwice: a second JOIN gets a second SYNC and no close, and the
// client is not announced again (docs/protocol.md §6.1).
func checkJoinedTwice(t *testing.T, bad, observer *client) {
	bad.expectOpen()
	// Give a (wrong) second announcement time to be stamped: users changes
	// are batched for UsersIntervalMs.
	time.Sleep(3 * time.Duration(reflector.DefaultConfig().UsersIntervalMs) * time.Millisecond)
	marker := "after-second-join"
	observer.sendMessage(marker)
	observer.awaitPayload(marker)
	announced := 0
	for _, message := range observer.messages {
		if users, ok := message.users(); ok {
			for _, user := range users.Joined {
				if string(user) == `"bad"` {
					announced++
				}
			}
		}
	}
	if announced != 1 {
		t.Errorf("the client that joined twice was announced %d times in users messages, want 1", announced)
	}
	bad.awaitPayload(marker) // still receives the session's messages
}

// floodPings sends 1000 PINGs as fast as possible: more than the burst the
// rate limiter allows (FramesBurstMax 400, FramesPerSecondMax 200).
func floodPings(t *testing.T, bad *client) {
	ping := []byte(`{"action":"PING","args":1}`)
	for i := 0; i < 1000; i++ {
		if err := bad.writeFrame(ws.OpText, ping); err != nil {
			return // the server closed the connection: expected
		}
	}
}

// sendOversizeFrame sends a frame one byte above FrameBytesMax. The server
// rejects it from its header, so the write may fail when it closes the
// connection; it runs on its own goroutine so that the close frame can be
// read meanwhile.
func sendOversizeFrame(t *testing.T, bad *client) {
	prefix, suffix := `{"action":"LOG","args":"`, `"}`
	frame := []byte(prefix + strings.Repeat("x", protocol.FrameBytesMax+1-len(prefix)-len(suffix)) + suffix)
	done := make(chan error, 1)
	go func() { done <- bad.writeFrame(ws.OpText, frame) }()
	t.Cleanup(func() {
		select {
		case <-done:
		case <-time.After(2 * frameTimeout):
			t.Error("writing the oversize frame did not end")
		}
	})
}

// sendUnmaskedFrame writes a text frame without a mask, which only a server
// may send.
func sendUnmaskedFrame(t *testing.T, bad *client) {
	payload := []byte(`{"action":"PING","args":1}`)
	frame := append([]byte{0x81, byte(len(payload))}, payload...)
	if err := bad.writeRaw(frame); err != nil {
		t.Fatal(err)
	}
}

// sendReservedControlFrame sends a masked frame with opcode 0xB, a control
// opcode that RFC 6455 reserves.
func sendReservedControlFrame(t *testing.T, bad *client) {
	if err := bad.writeRaw(clientFrame(ws.OpCode(0xB), true, nil, maskOf(1))); err != nil {
		t.Fatal(err)
	}
}

// TestRefusedConnectionEndsWithTheCloseHandshake: a connection refused for
// its path (bad session id) is read by discardUntilClosed "until the close
// handshake ends it". The client's close frame completes the handshake, so
// it must return then; it goes on reading instead, and the server keeps the
// TCP connection until its close handshake timeout (RFC 6455 §5.5.1 and
// §7.1.1: after sending and receiving a Close the endpoint MUST close the
// TCP connection). Deterministic: the reader is driven through a net.Pipe.
func TestRefusedConnectionEndsWithTheCloseHandshake(t *testing.T) {
	server, err := New(Config{Logger: testLogger(t), Store: memstore.New()})
	if err != nil {
		t.Fatal(err)
	}
	serverEnd, clientEnd := net.Pipe()
	defer serverEnd.Close()
	defer clientEnd.Close()
	c := newConn(server, 1, serverEnd, bufio.NewReadWriter(bufio.NewReader(serverEnd), bufio.NewWriter(serverEnd)), "pipe")
	go discardUntilClosed(c)
	clientEnd.SetWriteDeadline(time.Now().Add(frameTimeout))
	if _, err := clientEnd.Write(clientFrame(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""), maskOf(1))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.readerDone:
	case <-time.After(frameTimeout):
		t.Fatal("discardUntilClosed still reads after the client's close frame completed the closing handshake")
	}
}

// TestWebSocketPingFloodIsBounded: pongs go through the connection's queue
// (conn.enqueuePong) but skip the QueueFramesMax/QueueBytesMax check that
// every other frame gets, and WebSocket pings are not rate limited. A
// client that sends pings and never reads makes the server queue pongs
// without limit (memory grows with whatever the client sends). Expected,
// per conn's doc comment ("The queue is bounded: a client that does not
// keep up is disconnected") and style rule 3 (every queue bounded): the
// connection is closed with 4001 like for any other frame.
func TestWebSocketPingFloodIsBounded(t *testing.T) {
	server := startServer(t, Config{QueueFramesMax: 16, QueueBytesMax: 2 << 20})
	flooder := dialSession(t, server.Addr(), newSessionID(t), "flooder")
	flooder.join()
	if tcp, ok := flooder.conn.(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(16 << 10)
	}
	// 100,000 pings of 125 bytes: 13 MB of pongs, far more than the socket
	// buffers and QueueBytesMax hold. Written in batches, never reading.
	var batch bytes.Buffer
	for i := 0; i < 10_000; i++ {
		batch.Write(clientFrame(ws.OpPing, true, bytes.Repeat([]byte{'p'}, 125), maskOf(i)))
	}
	for round := 0; round < 10; round++ {
		if err := flooder.writeRaw(batch.Bytes()); err != nil {
			break // closed by the server: what should happen
		}
	}
	flooder.expectCloseFrame(protocol.CloseSlowClient)
}

// TestSessionIDOf128BytesIsAccepted is the boundary of the session id limit.
func TestSessionIDOf128BytesIsAccepted(t *testing.T) {
	server := startServer(t, Config{})
	sessionID := strings.Repeat("s", protocol.SessionIDBytesMax)
	c := dialSession(t, server.Addr(), sessionID, "view")
	c.join()
	c.awaitJoined("view")
}

// TestJoinWithoutTicksUsesDefault: a first JOIN without ticks gets the
// default tick (quirk Q1: the reference crashes instead).
func TestJoinWithoutTicksUsesDefault(t *testing.T) {
	server := startServer(t, Config{})
	c := dialSession(t, server.Addr(), newSessionID(t), "view")
	args := standardJoinArgs("view")
	delete(args, "ticks")
	c.joinWith(args)
	c.awaitJoined("view")
	c.readUntil("a TICK", func(frame serverFrame) bool { return frame.Action == protocol.ActionTick })
}

// --- file store (docs/protocol.md §12.2) ---

func filesServer(t *testing.T) (*Server, string) {
	t.Helper()
	root := t.TempDir()
	dataDir := filepath.Join(root, "data")
	server := startServer(t, Config{Store: openDiskStore(t, dataDir), FileBytesMax: 1 << 20})
	return server, root
}

func doRequest(t *testing.T, method, url string, body io.Reader, contentLength int64) (*http.Response, []byte) {
	t.Helper()
	request, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentLength >= 0 {
		request.ContentLength = contentLength
	}
	if body != nil {
		request.Header.Set("Content-Type", "application/octet-stream")
	}
	client := &http.Client{Timeout: 2 * frameTimeout}
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer response.Body.Close()
	data, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", method, url, err)
	}
	return response, data
}

func TestFilesRejectPathTraversal(t *testing.T) {
	server, root := filesServer(t)
	base := "http://" + server.Addr()
	paths := []string{
		"/files/../x",
		"/files/a/../../x",
		"/files/a/../x",
		"/files/%2e%2e/x",
		"/files/a/%2e%2e/%2e%2e/x",
		"/files/..%2fx",
		"/files/a%2f..%2f..%2f..%2fx",
		"/files/..%5cx",
		"/files/a/..%5c..%5cx",
		"/files//etc/x",
		"/files/./x",
		"/files/a//x",
	}
	for _, path := range paths {
		response, body := doRequest(t, http.MethodPut, base+path, strings.NewReader("escaped"), -1)
		if response.StatusCode != http.StatusBadRequest {
			t.Errorf("PUT %s: status %d (%s), want 400", path, response.StatusCode, strings.TrimSpace(string(body)))
		}
		response, _ = doRequest(t, http.MethodGet, base+path, nil, -1)
		if response.StatusCode != http.StatusBadRequest && response.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 400 or 404", path, response.StatusCode)
		}
	}
	// Nothing may have been written: not outside the data directory, and
	// not inside the file store either.
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if entry.IsDir() {
			return nil
		}
		relative, _ := filepath.Rel(root, path)
		if strings.HasPrefix(relative, filepath.Join("data", "files")+string(filepath.Separator)) || !strings.HasPrefix(relative, "data"+string(filepath.Separator)) {
			t.Errorf("a rejected PUT wrote %s", relative)
		}
		if data, err := os.ReadFile(path); err == nil && bytes.Contains(data, []byte("escaped")) {
			t.Errorf("%s holds the body of a rejected PUT", relative)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFilesSizeLimit(t *testing.T) {
	server, _ := filesServer(t)
	url := "http://" + server.Addr() + "/files/snapshots/s/limit.snap"
	if response, _ := doRequest(t, http.MethodPut, url, strings.NewReader("old content"), -1); response.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: status %d, want 201", response.StatusCode)
	}
	tooLarge := bytes.Repeat([]byte{'z'}, 1<<20+1)

	// With a Content-Length, the request can be refused before the body.
	response, body := doRequest(t, http.MethodPut, url, bytes.NewReader(tooLarge), int64(len(tooLarge)))
	if response.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("PUT of 1 MiB + 1 byte: status %d, want 413", response.StatusCode)
	}
	if !strings.Contains(string(body), "FileBytesMax") {
		t.Errorf("413 body %q does not name the limit", body)
	}
	// Chunked, the size is only known while reading.
	response, _ = doRequest(t, http.MethodPut, url, io.MultiReader(bytes.NewReader(tooLarge)), -1)
	if response.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked PUT of 1 MiB + 1 byte: status %d, want 413", response.StatusCode)
	}
	if response, body := doRequest(t, http.MethodGet, url, nil, -1); response.StatusCode != http.StatusOK || string(body) != "old content" {
		t.Errorf("after the refused PUTs GET gives %d %q, want 200 \"old content\"", response.StatusCode, shorten(body))
	}

	// Exactly the limit is accepted.
	atLimit := tooLarge[:1<<20]
	if response, _ := doRequest(t, http.MethodPut, url, io.MultiReader(bytes.NewReader(atLimit)), -1); response.StatusCode/100 != 2 {
		t.Errorf("PUT of exactly FileBytesMax: status %d, want 2xx", response.StatusCode)
	}
	if response, body := doRequest(t, http.MethodGet, url, nil, -1); response.StatusCode != http.StatusOK || !bytes.Equal(body, atLimit) {
		t.Errorf("GET after the PUT of FileBytesMax bytes: status %d, %d bytes, want 200 and %d bytes", response.StatusCode, len(body), len(atLimit))
	}
}

func TestFilesRoundTrip(t *testing.T) {
	server, _ := filesServer(t)
	base := "http://" + server.Addr() + "/files/"
	content := make([]byte, 70_000)
	for i := range content {
		content[i] = byte(i * 7)
	}
	path := "apps/io.metronome.test/persistent-id/data/Ab-_09.x"
	response, _ := doRequest(t, http.MethodPut, base+path, bytes.NewReader(content), int64(len(content)))
	if response.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: status %d, want 201", response.StatusCode)
	}
	response, body := doRequest(t, http.MethodGet, base+path, nil, -1)
	if response.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Fatalf("GET: status %d, %d bytes, want 200 and the %d bytes put", response.StatusCode, len(body), len(content))
	}
	if got := response.Header.Get("Access-Control-Allow-Origin"); got != "*" {
		t.Errorf("GET: Access-Control-Allow-Origin %q, want *", got)
	}
	// Overwrite is allowed (docs/protocol.md §12.2).
	response, _ = doRequest(t, http.MethodPut, base+path, strings.NewReader("new"), -1)
	if response.StatusCode/100 != 2 {
		t.Errorf("overwriting PUT: status %d, want 2xx", response.StatusCode)
	}
	if response, body := doRequest(t, http.MethodGet, base+path, nil, -1); string(body) != "new" {
		t.Errorf("GET after overwrite: %d %q, want \"new\"", response.StatusCode, shorten(body))
	}
}

func TestFilesMissingOptionsAndMethods(t *testing.T) {
	server, _ := filesServer(t)
	base := "http://" + server.Addr() + "/files/"

	if response, _ := doRequest(t, http.MethodGet, base+"snapshots/none/missing.snap", nil, -1); response.StatusCode != http.StatusNotFound {
		t.Errorf("GET of a missing file: status %d, want 404", response.StatusCode)
	}

	response, _ := doRequest(t, http.MethodOptions, base+"snapshots/s/x.snap", nil, -1)
	if response.StatusCode != http.StatusNoContent {
		t.Errorf("OPTIONS: status %d, want 204", response.StatusCode)
	}
	wantHeaders := map[string][]string{
		"Access-Control-Allow-Origin":   {"*"},
		"Access-Control-Allow-Methods":  {"GET", "PUT", "OPTIONS"},
		"Access-Control-Allow-Headers":  {"Content-Type", "Cache-Control", "Range", "X-Croquet-App", "X-Croquet-Id", "X-Croquet-Session", "X-Croquet-Version", "X-Croquet-Path"},
		"Access-Control-Expose-Headers": {"Content-Length", "Content-Range"},
		"Access-Control-Max-Age":        {"1728000"},
	}
	for header, values := range wantHeaders {
		got := response.Header.Get(header)
		for _, value := range values {
			if !containsToken(got, value) {
				t.Errorf("OPTIONS: %s is %q, want it to include %s (docs/protocol.md §12.2)", header, got, value)
			}
		}
	}

	response, _ = doRequest(t, http.MethodDelete, base+"snapshots/s/x.snap", nil, -1)
	if response.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: status %d, want 405", response.StatusCode)
	}
	if allow := response.Header.Get("Allow"); !containsToken(allow, "GET") || !containsToken(allow, "PUT") {
		t.Errorf("405 Allow header %q does not list GET and PUT", allow)
	}
}

// containsToken reports whether a comma-separated header value holds token.
func containsToken(header, token string) bool {
	for _, part := range strings.Split(header, ",") {
		if strings.EqualFold(strings.TrimSpace(part), token) {
			return true
		}
	}
	return false
}
