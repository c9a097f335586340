package server

// End-to-end tests over real loopback sockets and real files: delivery
// order (docs/protocol.md §4.5, §6B, §17 MUST 4-7), session isolation, slow clients,
// persistence across a graceful restart and across a crash (docs/protocol.md §12), and
// the plain HTTP endpoints (docs/protocol.md §3.2).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

func TestTwoClientsSeeTheSameMessages(t *testing.T) {
	server := startServer(t, Config{})
	sessionID := newSessionID(t)

	a := dialSession(t, server.Addr(), sessionID, "viewA")
	syncA := a.join()
	if syncA.URL != "" || len(syncA.Messages) != 0 || *syncA.Seq != protocol.SeqInitial || syncA.Tove != "tove-of-room1" {
		t.Errorf("SYNC of a new session: url %q, %d messages, seq %d, tove %q; want \"\", 0, %d, the JOIN's tove (docs/protocol.md §8.1)",
			syncA.URL, len(syncA.Messages), *syncA.Seq, syncA.Tove, protocol.SeqInitial)
	}
	joinedA := a.awaitJoined("viewA")
	if users, _ := joinedA.users(); users.Active != 1 || users.Total != 1 {
		t.Errorf("users message for the first client: active %d, total %d, want 1, 1", users.Active, users.Total)
	}

	b := dialSession(t, server.Addr(), sessionID, "viewB")
	syncB := b.join()
	if syncB.Timeline != syncA.Timeline {
		t.Errorf("second SYNC has timeline %q, want %q", syncB.Timeline, syncA.Timeline)
	}

	var payloads, fromA, fromB []string
	for i := 0; i < 8; i++ {
		fromA = append(fromA, fmt.Sprintf("from-a-%d", i))
		fromB = append(fromB, fmt.Sprintf("from-b-%d", i))
		a.sendMessage(fromA[i])
		b.sendMessage(fromB[i])
	}
	payloads = append(append(payloads, fromA...), fromB...)

	// Each reads until it has every payload and the users message that
	// announces B: the same point of the same stream.
	for _, c := range []*client{a, b} {
		c.awaitAll(payloads)
		if !anyMessage(c.messages, func(m stampedMessage) bool { return m.joinedView("viewB") }) {
			c.awaitJoined("viewB")
		}
	}
	// B may have stopped reading before A: continue both to the same seq.
	for a.lastSeq != b.lastSeq {
		behind := a
		if seqAfter(b.lastSeq, a.lastSeq) {
			behind = b
		}
		behind.readUntil("RECV", func(frame serverFrame) bool { return frame.Action == protocol.ActionRecv })
	}
	if len(a.messages) != len(b.messages) {
		t.Fatalf("A saw %d messages, B (SYNC + RECVs) %d, up to the same seq %d", len(a.messages), len(b.messages), a.lastSeq)
	}
	for i := range a.messages {
		if !bytes.Equal(a.messages[i].Raw, b.messages[i].Raw) {
			t.Fatalf("message %d differs: A %s, B %s", i, a.messages[i].Raw, b.messages[i].Raw)
		}
	}

	// Per-sender FIFO, verbatim extra elements, users counts.
	expectInOrder(t, a.messages, fromA)
	expectInOrder(t, a.messages, fromB)
	for _, message := range a.messages {
		if text := message.text(); strings.HasPrefix(text, "from-") {
			if want := fmt.Sprintf(`[%d,%d,"%s",7]`, message.Time, message.Seq, text); string(message.Raw) != want {
				t.Errorf("RECV %s, want %s (time and seq stamped, latency kept, docs/protocol.md §4.4)", message.Raw, want)
			}
		}
		if message.joinedView("viewB") {
			if users, _ := message.users(); users.Active != 2 || users.Total != 2 || len(users.Joined) != 1 {
				t.Errorf("users message for B: %s, want active 2, total 2, joined [viewB]", message.Payload)
			}
		}
	}
	if seqs := a.seqs(); seqs[0] != protocol.SeqInitial+1 {
		t.Errorf("first seq %d, want %d", seqs[0], protocol.SeqInitial+1)
	}

	// Idle: ticks arrive (JOIN ticks.tick 50 ms), at or after the last
	// message time; the client checks that times never decrease.
	for _, c := range []*client{a, b} {
		ticks := c.ticks
		c.readUntil("3 idle TICKs", func(frame serverFrame) bool { return c.ticks >= ticks+3 })
	}
	a.ping("still-there")
}

// seqAfter reports whether b comes after a (uint32 wrap-around, docs/protocol.md §4.5).
func seqAfter(a, b uint32) bool { return int32(b-a) > 0 }

func anyMessage(messages []stampedMessage, match func(stampedMessage) bool) bool {
	for _, message := range messages {
		if match(message) {
			return true
		}
	}
	return false
}

// expectInOrder checks that the payloads appear in messages in this order.
func expectInOrder(t *testing.T, messages []stampedMessage, payloads []string) {
	t.Helper()
	next := 0
	for _, message := range messages {
		if next < len(payloads) && message.text() == payloads[next] {
			next++
		}
	}
	if next != len(payloads) {
		t.Errorf("payloads of one sender are not delivered in the order sent: found %d of %v in order", next, payloads)
	}
}

func TestSessionsAreIsolated(t *testing.T) {
	server := startServer(t, Config{})
	one, two := newSessionID(t), newSessionID(t)
	a := dialSession(t, server.Addr(), one, "viewA")
	b := dialSession(t, server.Addr(), two, "viewB")
	c := dialSession(t, server.Addr(), one, "viewC")
	syncA, syncB := a.join(), b.join()
	c.join()
	if syncA.Timeline == syncB.Timeline {
		t.Errorf("two sessions share the timeline %q", syncA.Timeline)
	}
	for i := 0; i < 5; i++ {
		a.sendMessage(fmt.Sprintf("one-%d", i))
		b.sendMessage(fmt.Sprintf("two-%d", i))
	}
	a.awaitPayload("one-4")
	c.awaitPayload("one-4")
	b.awaitPayload("two-4")
	// A last message in each session: anything leaking would come before it.
	a.sendMessage("one-end")
	b.sendMessage("two-end")
	a.awaitPayload("one-end")
	c.awaitPayload("one-end")
	b.awaitPayload("two-end")
	for _, check := range []struct {
		c       *client
		foreign string
	}{{a, "two-"}, {c, "two-"}, {b, "one-"}} {
		for _, message := range check.c.messages {
			if strings.HasPrefix(message.text(), check.foreign) {
				t.Errorf("client %s received %s from the other session", check.c.viewID, message.Raw)
			}
			if users, ok := message.users(); ok && check.c == b && (containsUser(users.Joined, "viewA") || containsUser(users.Joined, "viewC")) {
				t.Errorf("client B was told of a user of the other session: %s", message.Payload)
			}
		}
	}
	// Both sessions count seqs independently from the start.
	if a.messages[0].Seq != protocol.SeqInitial+1 || b.messages[0].Seq != protocol.SeqInitial+1 {
		t.Errorf("first seqs %d and %d, want both %d", a.messages[0].Seq, b.messages[0].Seq, protocol.SeqInitial+1)
	}
}

// TestSlowClientIsDisconnected: a client that does not read is closed with
// 4001 once its queue is full, without stalling the session: the other
// client receives every message, before and after.
func TestSlowClientIsDisconnected(t *testing.T) {
	reflectorConfig := reflector.DefaultConfig()
	reflectorConfig.FramesPerSecondMax = 100_000 // the sender is fast on purpose
	reflectorConfig.FramesBurstMax = 100_000
	server := startServer(t, Config{
		QueueFramesMax: 16,
		QueueBytesMax:  2 << 20,
		WriteTimeout:   time.Minute, // the queue, not the write timeout, must end it
		Reflector:      reflectorConfig,
	})
	sessionID := newSessionID(t)
	fast := dialSession(t, server.Addr(), sessionID, "fast")
	fast.join()
	slow := dialSession(t, server.Addr(), sessionID, "slow")
	if tcp, ok := slow.conn.(interface{ SetReadBuffer(int) error }); ok {
		_ = tcp.SetReadBuffer(16 << 10) // fill the kernel buffers sooner
	}
	slow.join()
	// From here on the slow client reads nothing.

	const (
		payloadBytes = 200_000
		messagesMax  = 400 // 80 MB: far more than socket buffers hold
		inFlightMax  = 4   // keeps the fast client itself from falling behind
	)
	tokens := make(chan struct{}, inFlightMax)
	for i := 0; i < inFlightMax; i++ {
		tokens <- struct{}{}
	}
	stop := make(chan struct{})
	sent := make(chan int, 1)
	go func() {
		count := 0
		defer func() { sent <- count }()
		for count < messagesMax {
			select {
			case <-stop:
				return
			case <-tokens:
			}
			payload := fmt.Sprintf("bulk-%04d-%s", count, strings.Repeat("z", payloadBytes))
			if err := fast.writeFrame(ws.OpText, mustJSON(sendFrame(sessionID, payload))); err != nil {
				t.Errorf("sending message %d: %v", count, err)
				return
			}
			count++
		}
	}()

	// The fast client receives every bulk message, in order; once the slow
	// client has been disconnected the sender stops.
	total := -1
	for received := 0; total < 0 || received < total; received++ {
		message := fast.awaitMessage("a bulk message", func(m stampedMessage) bool { return strings.HasPrefix(m.text(), "bulk-") })
		if want := fmt.Sprintf("bulk-%04d-", received); !strings.HasPrefix(message.text(), want) {
			t.Fatalf("bulk message %d is %s, want %s...", received, message.text()[:10], want)
		}
		tokens <- struct{}{}
		if total < 0 && server.metrics.slowClients.Load() > 0 {
			close(stop)
			select {
			case total = <-sent:
			case <-time.After(2 * frameTimeout):
				t.Fatal("the sender did not stop")
			}
		}
		if total < 0 && received+1 == messagesMax {
			t.Fatalf("%d messages of %d bytes sent and the slow client is still connected", messagesMax, payloadBytes)
		}
	}
	if total < 0 {
		t.Fatal("the slow client was never disconnected")
	}

	// The session goes on for the fast client.
	for i := 0; i < 5; i++ {
		fast.sendMessage(fmt.Sprintf("after-%d", i))
	}
	fast.awaitAll([]string{"after-0", "after-1", "after-2", "after-3", "after-4"})

	// The slow client finally reads: a gap-free prefix (checked frame by
	// frame), then 4001.
	slow.expectClose(protocol.CloseSlowClient, "too slow")
	if n := len(slow.messages); n > 0 && seqAfter(fast.lastSeq, slow.messages[n-1].Seq) {
		t.Errorf("slow client received seq %d, beyond the last seq %d", slow.messages[n-1].Seq, fast.lastSeq)
	}
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return data
}

// runSession joins two clients, exchanges messages (enough to wrap the seq
// around 2^32) and waits until both have seen everything, so that no users
// change is pending.
func runSession(t *testing.T, addr, sessionID string) (a, b *client) {
	t.Helper()
	a = dialSession(t, addr, sessionID, "viewA")
	a.join()
	a.awaitJoined("viewA")
	b = dialSession(t, addr, sessionID, "viewB")
	b.join()
	var payloads []string
	for i := 0; i < 12; i++ {
		payloads = append(payloads, fmt.Sprintf("a-%d", i), fmt.Sprintf("b-%d", i))
		a.sendMessage(payloads[len(payloads)-2])
		b.sendMessage(payloads[len(payloads)-1])
	}
	for _, c := range []*client{a, b} {
		c.awaitAll(payloads)
		if !anyMessage(c.messages, func(m stampedMessage) bool { return m.joinedView("viewB") }) {
			c.awaitJoined("viewB")
		}
	}
	return a, b
}

// lastSeen returns the last seq and the latest time any of the clients saw.
func lastSeen(clients ...*client) (seq uint32, maxTime int64) {
	seq = clients[0].lastSeq
	for _, c := range clients {
		if seqAfter(seq, c.lastSeq) {
			seq = c.lastSeq
		}
		maxTime = max(maxTime, c.maxTime)
	}
	return seq, maxTime
}

// expectResumed checks a SYNC after a restart: same timeline, time not
// before anything seen, and every message seen, byte for byte, at its
// place.
func expectResumed(t *testing.T, sync syncArgs, timeline string, seen []stampedMessage, maxTime int64) {
	t.Helper()
	if sync.Timeline != timeline {
		t.Errorf("SYNC after restart has timeline %q, want %q (docs/protocol.md §17 MUST 11)", sync.Timeline, timeline)
	}
	if *sync.Time < maxTime {
		t.Errorf("SYNC after restart has time %d, before the time %d clients saw (docs/protocol.md §8.2: time must not go back)", *sync.Time, maxTime)
	}
	if len(sync.decoded) < len(seen) {
		t.Fatalf("SYNC after restart has %d messages, clients saw %d", len(sync.decoded), len(seen))
	}
	for i, message := range seen {
		if !bytes.Equal(sync.decoded[i].Raw, message.Raw) {
			t.Fatalf("SYNC message %d after restart is %s, clients saw %s", i, sync.decoded[i].Raw, message.Raw)
		}
	}
}

func TestRestartKeepsTheSession(t *testing.T) {
	dataDir := t.TempDir()
	firstStore := openDiskStore(t, dataDir)
	first := startServer(t, Config{Store: firstStore})
	sessionID := newSessionID(t)
	a, b := runSession(t, first.Addr(), sessionID)
	timeline := a.sync.Timeline

	// Shutdown asks every client to reconnect (4003, never 1000: docs/protocol.md §5.3).
	shutdownDone := make(chan struct{})
	go func() {
		defer close(shutdownDone)
		shutdownServer(t, first)
	}()
	a.expectClose(protocol.CloseReconnect, "reconnect")
	b.expectClose(protocol.CloseReconnect, "reconnect")
	<-shutdownDone
	if err := firstStore.Close(); err != nil {
		t.Fatal(err)
	}
	seq, maxTime := lastSeen(a, b)
	if a.lastSeq != b.lastSeq {
		t.Errorf("before the restart A saw up to seq %d, B up to %d", a.lastSeq, b.lastSeq)
	}

	second := startServer(t, Config{Store: openDiskStore(t, dataDir)})
	rejoined := dialSession(t, second.Addr(), sessionID, "viewA")
	sync := rejoined.join()
	expectResumed(t, sync, timeline, a.messages, maxTime)
	if *sync.Seq != seq {
		t.Errorf("SYNC after restart has seq %d, want %d, the last seq clients saw", *sync.Seq, seq)
	}
	if len(sync.decoded) != len(a.messages) {
		t.Errorf("SYNC after restart has %d messages, want the %d stamped since the session started", len(sync.decoded), len(a.messages))
	}
	// The session goes on from there, without a gap.
	rejoined.sendMessage("after-restart")
	rejoined.awaitPayload("after-restart")
}

// TestCrashKeepsEveryReceivedMessage: with Durable, a message is on disk
// before any client receives it. A copy of the data directory taken while
// the server runs (and keeps stamping) is what a crash at that moment
// leaves; a new server on the copy must offer every message a client had
// received before the copy began.
func TestCrashKeepsEveryReceivedMessage(t *testing.T) {
	dataDir := t.TempDir()
	running := startServer(t, Config{Store: openDiskStore(t, dataDir)})
	sessionID := newSessionID(t)
	a, b := runSession(t, running.Addr(), sessionID)
	timeline := a.sync.Timeline
	seen := append([]stampedMessage(nil), a.messages...)
	if len(b.messages) > len(seen) {
		seen = append([]stampedMessage(nil), b.messages...)
	}
	_, maxTime := lastSeen(a, b)

	// Keep the server busy while the copy is taken, so that the copy may
	// hold a torn write.
	stop := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		defer close(busy)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := b.writeFrame(ws.OpText, mustJSON(sendFrame(sessionID, fmt.Sprintf("during-copy-%d", i)))); err != nil {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}()
	crashDir := filepath.Join(t.TempDir(), "crashed")
	copyDataDir(t, dataDir, crashDir)
	close(stop)
	<-busy

	recovered := startServer(t, Config{Store: openDiskStore(t, crashDir)})
	c := dialSession(t, recovered.Addr(), sessionID, "viewC")
	sync := c.join()
	expectResumed(t, sync, timeline, seen, maxTime)
	c.sendMessage("after-crash")
	c.awaitPayload("after-crash")
}

// copyDataDir copies a live data directory in an order a crash could
// produce: within a session, record.json before messages.log. The store
// writes a commit's messages before its record, so a record read first is
// never newer than the log read after it.
func copyDataDir(t *testing.T, from, to string) {
	t.Helper()
	var files []string
	err := filepath.WalkDir(from, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !entry.IsDir() {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(files, func(i, j int) bool {
		return filepath.Base(files[i]) != "messages.log" && filepath.Base(files[j]) == "messages.log"
	})
	for _, path := range files {
		relative, err := filepath.Rel(from, path)
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(path)
		if os.IsNotExist(err) {
			continue // a temporary file renamed meanwhile
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(to, relative)
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(target, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHTTPEndpoints(t *testing.T) {
	server := startServer(t, Config{})
	base := "http://" + server.Addr()

	response, body := httpGet(t, base+"/healthz")
	if response.StatusCode != http.StatusOK {
		t.Errorf("/healthz: status %d (%q), want 200", response.StatusCode, body)
	}

	one, two := newSessionID(t), newSessionID(t)
	a := dialSession(t, server.Addr(), one, "viewA")
	a.join()
	a.awaitJoined("viewA")
	b := dialSession(t, server.Addr(), one, "viewB")
	b.join()
	c := dialSession(t, server.Addr(), two, "viewC")
	c.join()
	for i := 0; i < 3; i++ {
		a.sendMessage(fmt.Sprintf("m-%d", i))
	}
	a.awaitAll([]string{"m-0", "m-1", "m-2"})
	if !anyMessage(a.messages, func(m stampedMessage) bool { return m.joinedView("viewB") }) {
		a.awaitJoined("viewB")
	}
	c.awaitJoined("viewC")
	stamped := len(a.messages) + len(c.messages) // nothing else was stamped

	metrics := awaitMetrics(t, base, func(values map[string]float64) bool {
		return values["metronome_messages_total"] >= float64(stamped)
	})
	if got := metrics["metronome_connections"]; got != 3 {
		t.Errorf("metronome_connections %v, want 3 open connections", got)
	}
	if got := metrics["metronome_messages_total"]; got != float64(stamped) {
		t.Errorf("metronome_messages_total %v, want %d (the messages the clients received)", got, stamped)
	}
	if got := metrics["metronome_sessions"]; got != 2 {
		t.Errorf("metronome_sessions %v, want 2", got)
	}

	response, body = httpGet(t, startAdmin(t, server)+"/sessions") // the admin listener's (admin.go)
	if response.StatusCode != http.StatusOK {
		t.Errorf("/sessions: status %d", response.StatusCode)
	}
	lines := strings.Fields(string(body))
	for _, id := range []string{one, two} {
		if !containsLine(string(body), id) {
			t.Errorf("/sessions %q does not list %s", lines, id)
		}
	}

	// Connections that end are no longer counted.
	a.conn.Close()
	b.conn.Close()
	c.conn.Close()
	awaitMetrics(t, base, func(values map[string]float64) bool { return values["metronome_connections"] == 0 })
}

// TestConnectAfterStorageFailure: a connection that reaches a session
// whose storage failed (here: it cannot be read) is asked to reconnect
// (4003) and nothing panics. The window is a race in production (a client
// connecting while a commit fails), so the actor is driven directly here.
func TestConnectAfterStorageFailure(t *testing.T) {
	actor := newTestActor(t, failingStore{memstore.New()}, "storage-failure")
	late := pipeConn(t, actor.server, 7)
	defer func() {
		if panicked := recover(); panicked != nil {
			t.Fatalf("a Connect after a storage failure panics: %v", panicked)
		}
		late.mu.Lock()
		code := late.closeCode
		late.mu.Unlock()
		if code != protocol.CloseReconnect {
			t.Errorf("the late connection got close code %d, want 4003", code)
		}
		if !actor.host.Ended() {
			t.Error("the failed session did not end")
		}
	}()
	actor.step(actorEvent{event: reflector.Connect{Conn: 7}, conn: late})
	actor.flush()
}

// failingStore is a store whose sessions cannot be read or written.
type failingStore struct{ store.Store }

func (failingStore) LoadSession(context.Context, string) (store.Session, error) {
	return store.Session{}, errors.New("disk unreadable")
}

func (failingStore) Commit(context.Context, string, store.Batch) error {
	return errors.New("disk full")
}

func containsLine(text, line string) bool {
	for _, candidate := range strings.Split(text, "\n") {
		fields := strings.Fields(candidate)
		if len(fields) > 0 && fields[0] == line {
			return true
		}
	}
	return false
}

func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	client := &http.Client{Timeout: frameTimeout}
	response, err := client.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return response, body
}

// awaitMetrics polls /metrics until done holds (bounded), checking that
// every sample line parses, and returns the unlabelled samples.
func awaitMetrics(t *testing.T, base string, done func(map[string]float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for {
		response, body := httpGet(t, base+"/metrics")
		if response.StatusCode != http.StatusOK || !strings.HasPrefix(response.Header.Get("Content-Type"), "text/plain") {
			t.Fatalf("/metrics: status %d, content type %q", response.StatusCode, response.Header.Get("Content-Type"))
		}
		values := parseMetrics(t, body)
		if done(values) {
			return values
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never reached the expected values:\n%s", body)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func parseMetrics(t *testing.T, body []byte) map[string]float64 {
	t.Helper()
	values := make(map[string]float64)
	scanner := bufio.NewScanner(bytes.NewReader(body))
	for scanner.Scan() {
		line := scanner.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		number, err := strconv.ParseFloat(value, 64)
		if !ok || err != nil {
			t.Errorf("/metrics line %q is not \"name value\"", line)
			continue
		}
		values[name] = number
	}
	for _, name := range []string{"metronome_connections", "metronome_messages_total"} {
		if _, ok := values[name]; !ok {
			t.Fatalf("/metrics lacks %s:\n%s", name, body)
		}
	}
	return values
}

// TestLargeSyncIsWrittenWhole fills a session with more message bytes than
// one write buffer and several message-buffer chunks hold, then joins: the
// SYNC, written from the stored runs of messages (writev, docs/protocol.md §8.1),
// must carry every message byte for byte as the first client received it.
func TestLargeSyncIsWrittenWhole(t *testing.T) {
	config := Config{Reflector: reflector.DefaultConfig()}
	config.Reflector.FramesPerSecondMax = 100_000
	config.Reflector.FramesBurstMax = 100_000
	server := startServer(t, config)
	sessionID := newSessionID(t)

	a := dialSession(t, server.Addr(), sessionID, "viewA")
	a.join()
	a.awaitJoined("viewA")
	var payloads []string
	for i := range 1500 {
		payload := fmt.Sprintf("m-%04d-%s", i, strings.Repeat("x", 150+i%100))
		payloads = append(payloads, payload)
		a.sendMessage(payload)
	}
	a.awaitAll(payloads)

	b := dialSession(t, server.Addr(), sessionID, "viewB")
	sync := b.join()
	if len(sync.Messages) < len(payloads) {
		t.Fatalf("SYNC holds %d messages, want at least %d", len(sync.Messages), len(payloads))
	}
	for i, message := range a.messages {
		if i >= len(sync.Messages) {
			break
		}
		if !bytes.Equal(message.Raw, sync.Messages[i]) {
			t.Fatalf("SYNC message %d is %s, the first client received %s", i, shorten(sync.Messages[i]), shorten(message.Raw))
		}
	}
	b.awaitJoined("viewB")
}
