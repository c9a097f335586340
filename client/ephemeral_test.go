package client

import (
	"context"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// received collects a view's OnEphemeral calls.
type received struct {
	mu   sync.Mutex
	got  []string // "from name data"
	last map[string]string
}

func (r *received) on(from, name string, data []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, from+" "+name+" "+string(data))
	if r.last == nil {
		r.last = map[string]string{}
	}
	r.last[from+" "+name] = string(data)
}

func (r *received) snapshot() (got []string, last map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	last = map[string]string{}
	for key, value := range r.last {
		last[key] = value
	}
	return append([]string(nil), r.got...), last
}

func joinEphemeral(t *testing.T, addr, name string, on func(from, name string, data []byte)) *Session[tally] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Join(ctx, tallyApp(0), Options{Reflector: "ws://" + addr + "/reflector", Name: name, Password: "pw",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), OnEphemeral: on})
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { s.Leave() })
	return s
}

// rawClient is a client that speaks the plain protocol, as the standard
// Croquet client does: a JOIN without "ephemeral", then it records the
// action of every frame it is sent.
type rawClient struct {
	mu      sync.Mutex
	actions map[string]int
}

func dialRaw(t *testing.T, addr, sessionID string) *rawClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, _, err := websocket.Dial(ctx, "ws://"+addr+"/reflector/"+sessionID, nil)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetReadLimit(FrameBytesMax)
	t.Cleanup(func() { cancel(); conn.CloseNow() })
	join := protocol.AppendJoinFrame(nil, sessionID, &protocol.JoinRequest{Name: "io.metronome.test.tally/x", User: []byte(`"rawview"`), TickMs: 100})
	if err := conn.Write(ctx, websocket.MessageText, join); err != nil {
		t.Fatal(err)
	}
	raw := &rawClient{actions: map[string]int{}}
	go func() {
		for {
			_, data, err := conn.Read(ctx)
			if err != nil {
				return
			}
			frame, err := protocol.DecodeServerFrame(data)
			raw.mu.Lock()
			if err != nil {
				raw.actions["undecodable"]++
			} else {
				raw.actions[frame.Action]++
			}
			raw.mu.Unlock()
		}
	}()
	return raw
}

func (r *rawClient) count(action string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.actions[action]
}

func waitUntil(t *testing.T, what string, condition func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !condition() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEphemeralChannel: two views that set OnEphemeral exchange
// broadcasts through a real reflector; the latest value of each name
// arrives; nobody gets its own; a view without OnEphemeral and a plain
// protocol client (a standard Croquet client's JOIN) are sent nothing; the
// model, its sequence numbers and a later joiner see nothing of it.
func TestEphemeralChannel(t *testing.T) {
	addr := startServer(t)
	var gotA, gotB, gotD received
	a := joinEphemeral(t, addr, "room", gotA.on)
	b := joinEphemeral(t, addr, "room", gotB.on)
	c := joinEphemeral(t, addr, "room", nil)
	raw := dialRaw(t, addr, a.ID())
	waitUntil(t, "the plain client's SYNC", func() bool { return raw.count(protocol.ActionSync) == 1 })
	// Everyone has seen every join: the seq no longer moves.
	var seq uint32
	waitUntil(t, "all views to agree on the seq after the joins", func() bool {
		var seqs []uint32
		for _, s := range []*Session[tally]{a, b, c} {
			_, seq, _, _ := s.State()
			seqs = append(seqs, seq)
		}
		seq = seqs[0]
		return seqs[0] == seqs[1] && seqs[1] == seqs[2] && raw.count(protocol.ActionRecv) >= 1
	})

	const moves = 100
	for i := range moves {
		if err := a.Broadcast("pointer", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Broadcast("drag", []byte("ball 3")); err != nil {
		t.Fatal(err)
	}
	last := strconv.Itoa(moves - 1)
	waitUntil(t, "b to get a's latest pointer and a to get b's drag", func() bool {
		_, lastB := gotB.snapshot()
		_, lastA := gotA.snapshot()
		return lastB[a.ViewID()+" pointer"] == last && lastA[b.ViewID()+" drag"] == "ball 3"
	})
	all, _ := gotB.snapshot()
	if len(all) >= moves {
		t.Errorf("b got %d of %d pointer moves: broadcasts faster than the send rate must be coalesced", len(all), moves)
	}
	for _, entry := range all {
		if !strings.HasPrefix(entry, a.ViewID()+" pointer ") {
			t.Errorf("b got %q: only a's pointer was broadcast to it", entry)
		}
	}
	gotOwn, _ := gotA.snapshot()
	if len(gotOwn) != 1 {
		t.Errorf("a got %q: its own broadcasts must not come back", gotOwn)
	}
	statsA := a.Stats()
	if statsA.EphemeralSent+statsA.EphemeralCoalesced != moves || statsA.EphemeralSent != len(all) {
		t.Errorf("a's stats %+v: sent + coalesced must be %d, and b got every one sent (%d)", statsA, moves, len(all))
	}

	// Nothing reached the model: same seq, same state everywhere.
	time.Sleep(300 * time.Millisecond) // let anything misrouted arrive
	for _, s := range []*Session[tally]{a, b, c} {
		if _, got, _, _ := s.State(); got != seq {
			t.Errorf("view %s is at seq %d after the broadcasts, was %d: a broadcast was stamped", s.ViewID(), got, seq)
		}
	}
	a.Read(func(m *tally, _ int64) {
		if m.Sum != 0 || len(m.Counts) != 0 {
			t.Errorf("the model counted inputs: %+v", m)
		}
	})
	if n := c.Stats().EphemeralReceived; n != 0 {
		t.Errorf("the view without OnEphemeral was sent %d EPHM frames", n)
	}
	if n := raw.count(protocol.ActionEphemeral) + raw.count("undecodable"); n != 0 {
		t.Errorf("the plain client was sent %d EPHM or unknown frames", n)
	}

	// A later joiner gets nothing of what was broadcast before.
	d := joinEphemeral(t, addr, "room", gotD.on)
	time.Sleep(300 * time.Millisecond)
	if got, _ := gotD.snapshot(); len(got) != 0 || d.Stats().EphemeralReceived != 0 {
		t.Errorf("the late joiner got %q", got)
	}
	if err := d.Broadcast("hello", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a and b to get d's broadcast", func() bool {
		_, lastA := gotA.snapshot()
		_, lastB := gotB.snapshot()
		_, okA := lastA[d.ViewID()+" hello"]
		_, okB := lastB[d.ViewID()+" hello"]
		return okA && okB
	})
}

// TestBroadcastLimits: name and data of EphemeralBytesMax seal into one
// EPHM payload the reflector takes; more is refused with an error naming
// the limit.
func TestBroadcastLimits(t *testing.T) {
	addr := startServer(t)
	var got received
	a := joinEphemeral(t, addr, "limits", nil)
	b := joinEphemeral(t, addr, "limits", got.on)
	name := "n"
	data := []byte(strings.Repeat("x", EphemeralBytesMax-len(name)))
	if err := a.Broadcast(name, data); err != nil {
		t.Fatalf("a broadcast of EphemeralBytesMax: %v", err)
	}
	waitUntil(t, "the largest broadcast to arrive", func() bool {
		_, last := got.snapshot()
		return last[a.ViewID()+" n"] == string(data)
	})
	err := a.Broadcast(name, append(data, 'x'))
	if err == nil || !strings.Contains(err.Error(), "EphemeralBytesMax") {
		t.Fatalf("a broadcast over EphemeralBytesMax: %v", err)
	}
	if a.Stats().Connects != 1 || b.Stats().Connects != 1 {
		t.Fatal("a connection was lost")
	}
}

// TestEphemeralPacingFitsTheReflectorsFrameBudget: a view sends inputs and
// broadcasts at their full rates (and a pulse) within the reflector's
// frame budget per connection, which EPHMs share with every frame
// (docs/protocol.md §22).
func TestEphemeralPacingFitsTheReflectorsFrameBudget(t *testing.T) {
	budget := reflector.DefaultConfig()
	rate := int64(link.SendRatePerSecondDefault + link.EphemeralSendRatePerSecondDefault + 1)
	burst := int64(link.SendBurstMaxDefault + link.EphemeralSendBurstMaxDefault + 1)
	if rate > budget.FramesPerSecondMax || burst > budget.FramesBurstMax {
		t.Fatalf("a view may send %d frames/s in bursts of %d; the reflector allows %d/s, bursts of %d",
			rate, burst, budget.FramesPerSecondMax, budget.FramesBurstMax)
	}
}
