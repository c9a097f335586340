package client

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store/memstore"
)

// tally is the test model: every input is counted per view, with a future
// message loop so state depends on session time too.
type tally struct {
	Counts map[string]int
	Sum    int
	Beats  int
}

func tallyApp(snapshotMs int64) App[tally] {
	return App[tally]{
		ID: "io.metronome.test.tally", Version: "1", SnapshotIntervalMs: snapshotMs,
		Init: func(m *tally, ctx *Context) {
			m.Counts = map[string]int{}
			ctx.Future(500, "beat", nil)
		},
		Events: map[string]Handler[tally]{
			"add": func(m *tally, ctx *Context, e Event) {
				var n int
				if err := e.Decode(&n); err == nil {
					m.Counts[e.View]++
					m.Sum += n
					ctx.Emit("sum", m.Sum)
				}
			},
			"beat": func(m *tally, ctx *Context, e Event) {
				m.Beats++
				ctx.Future(500, "beat", nil)
			},
		},
	}
}

func startServer(t *testing.T) string {
	t.Helper()
	s, err := server.New(server.Config{Addr: "127.0.0.1:0", Store: memstore.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s.Addr()
}

func join(t *testing.T, addr, name, password string, app App[tally], onVote ...func(int64, string)) *Session[tally] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	options := Options{Reflector: "ws://" + addr + "/reflector", Name: name, Password: password,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if len(onVote) > 0 {
		options.OnVote = onVote[0]
	}
	s, err := Join(ctx, app, options)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { s.Leave() })
	return s
}

// joinFromSnapshot joins once a snapshot was uploaded: the uploader
// announces it to the reflector just after the upload, so a join at once
// may still start without it; such a joiner leaves and joins again.
func joinFromSnapshot(t *testing.T, addr, name, password string, app App[tally]) *Session[tally] {
	t.Helper()
	for attempt := 1; ; attempt++ {
		s := join(t, addr, name, password, app)
		if s.Stats().SnapshotURL != "" || attempt == 5 {
			return s
		}
		s.Leave()
		time.Sleep(200 * time.Millisecond)
	}
}

// waitAgree waits until every session applied the same last seq with the
// same model, and that model satisfies want; it returns the model.
func waitAgree(t *testing.T, want func(model string) bool, sessions ...*Session[tally]) (uint32, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var seqs []uint32
		var hashes []string
		for _, s := range sessions {
			_, seq, _, err := s.State()
			if err != nil {
				t.Fatal(err)
			}
			seqs = append(seqs, seq)
		}
		same := true
		for _, seq := range seqs {
			same = same && seq == seqs[0]
		}
		if same {
			// Compare hashes at one common position: read them while no
			// message arrives (the sessions are idle but for ticks, which
			// can run future messages, so compare models instead).
			for _, s := range sessions {
				var counts string
				s.Read(func(m *tally, now int64) { counts = describe(m) })
				hashes = append(hashes, counts)
			}
			agree := true
			for _, h := range hashes {
				agree = agree && h == hashes[0]
			}
			if agree && want(hashes[0]) {
				return seqs[0], hashes[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("sessions did not converge: seqs %v, models %v", seqs, hashes)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func describe(m *tally) string {
	var b strings.Builder
	for _, view := range sortedKeys(m.Counts) {
		b.WriteString(view + "=" + itoa(m.Counts[view]) + " ")
	}
	return b.String() + "sum=" + itoa(m.Sum)
}

func itoa(n int) string { return strconv.Itoa(n) }

func sortedKeys(m map[string]int) []string { return slices.Sorted(maps.Keys(m)) }

func TestTwoViewsAgreeAndALateJoinerLoadsTheSnapshot(t *testing.T) {
	addr := startServer(t)
	app := tallyApp(SnapshotIntervalMsMin)
	var votesMu sync.Mutex
	votes := map[int64][]string{} // session time → hashes voted by a and b
	record := func(at int64, hash string) {
		votesMu.Lock()
		defer votesMu.Unlock()
		votes[at] = append(votes[at], hash)
	}
	a := join(t, addr, "room1", "pw", app, record)
	b := join(t, addr, "room1", "pw", app, record)
	var emitted sync.WaitGroup
	emitted.Add(1)
	var once sync.Once
	b.Subscribe("sum", func(data []byte) { once.Do(emitted.Done) })
	for i := range 20 {
		if err := a.Publish("add", i); err != nil {
			t.Fatal(err)
		}
		if err := b.Publish("add", 100+i); err != nil {
			t.Fatal(err)
		}
	}
	emitted.Wait()
	want := func(model string) bool { return strings.HasSuffix(model, "sum=2380") }
	_, model := waitAgree(t, want, a, b)
	if stats := a.Stats(); stats.Connects != 1 || stats.Syncs != 1 || stats.Resets != 0 {
		t.Fatalf("a fresh join: %+v, want 1 connect, 1 sync, no reset", stats)
	}
	// Wait for a snapshot (SnapshotIntervalMsMin of session time), then
	// join late.
	deadline := time.Now().Add(20 * time.Second)
	for a.Stats().SnapshotsUploaded+b.Stats().SnapshotsUploaded == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no snapshot uploaded: %+v, %+v", a.Stats(), b.Stats())
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := joinFromSnapshot(t, addr, "room1", "pw", app)
	_, modelC := waitAgree(t, want, a, b, c)
	if modelC != model {
		t.Fatalf("late joiner: %s, want %s", modelC, model)
	}
	if url := c.Stats().SnapshotURL; !strings.Contains(url, "/files/snapshots/"+c.ID()+"/") {
		t.Fatalf("the late joiner did not start from a snapshot: %q", url)
	}
	votesMu.Lock()
	defer votesMu.Unlock()
	agreed := 0
	for at, hashes := range votes {
		if len(hashes) == 2 {
			if hashes[0] != hashes[1] {
				t.Fatalf("at session time %d the replicas voted %s and %s", at, hashes[0], hashes[1])
			}
			agreed++
		}
	}
	if agreed == 0 {
		t.Fatalf("no snapshot vote by both replicas: %v", votes)
	}
}

func TestInputsDuringAReconnectTakeEffectOnce(t *testing.T) {
	addr := startServer(t)
	app := tallyApp(0)
	a := join(t, addr, "room2", "pw", app)
	b := join(t, addr, "room2", "pw", app)
	for i := range 200 {
		if err := a.Publish("add", 1); err != nil {
			t.Fatal(err)
		}
		if i%25 == 5 {
			a.dropConnection()
		}
	}
	_, model := waitAgree(t, func(model string) bool { return strings.HasSuffix(model, "sum=200") }, a, b)
	if !strings.Contains(model, a.ViewID()+"=200 ") {
		t.Fatalf("model %s: want 200 inputs from %s, each once", model, a.ViewID())
	}
	if stats := a.Stats(); stats.Connects < 2 {
		t.Fatalf("the connection was never dropped: %+v", stats)
	} else {
		t.Logf("link: %d connects, %d inputs re-sent, %d seamless rejoins", stats.Connects, stats.InputsResent, stats.SeamlessRejoins)
	}
}

func TestWrongPasswordFailsTheJoin(t *testing.T) {
	addr := startServer(t)
	app := tallyApp(0)
	join(t, addr, "room3", "right", app)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := Join(ctx, app, Options{Reflector: "ws://" + addr + "/reflector", Name: "room3", Password: "wrong",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("Join with the wrong password: %v, want ErrWrongPassword", err)
	}
	// In the user's words: what is wrong and where, no protocol jargon.
	for _, want := range []string{"wrong password", `session "room3"`, `app "io.metronome.test.tally"`, "Options.Password"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if strings.Contains(strings.ToLower(err.Error()), "tove") {
		t.Errorf("the error %q speaks of the tove", err)
	}
}

// TestJoinRefusesASnapshotIntervalItCannotHonour: below
// SnapshotIntervalMsMin, Join fails naming the field, the limit and the
// value instead of silently using the minimum.
func TestJoinRefusesASnapshotIntervalItCannotHonour(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Join(ctx, tallyApp(2000), Options{Reflector: "ws://127.0.0.1:1/reflector", Name: "room", Password: "pw",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err == nil || !strings.Contains(err.Error(), "App.SnapshotIntervalMs is 2000 ms") || !strings.Contains(err.Error(), "at least 5000 ms (SnapshotIntervalMsMin)") {
		t.Fatalf("Join with SnapshotIntervalMs 2000: %v", err)
	}
}

// divergeCounter makes the "diverge" handler of reentrantApp compute a
// different state in every replica of this process: a deliberately
// nondeterministic model, so that votes disagree and OnDivergence runs.
var divergeCounter atomic.Int64

func reentrantApp() App[tally] {
	app := tallyApp(SnapshotIntervalMsMin)
	app.Events["noop"] = func(*tally, *Context, Event) {}
	app.Events["diverge"] = func(m *tally, _ *Context, _ Event) { m.Sum += int(divergeCounter.Add(1)) }
	return app
}

// TestEveryMethodFromEveryCallback: Subscribe handlers, OnVote,
// OnDivergence and OnEphemeral may call every Session method — Publish and Leave too —
// without a deadlock (callbacks run outside the session goroutine's loop).
func TestEveryMethodFromEveryCallback(t *testing.T) {
	addr := startServer(t)
	var sessions [2]atomic.Pointer[Session[tally]]
	var mu sync.Mutex
	called := map[string]bool{}
	callAll := func(i int, kind string) {
		s := sessions[i].Load()
		if s == nil {
			return
		}
		_, _, _ = s.ID(), s.ViewID(), s.Err()
		select {
		case <-s.Done():
		default:
		}
		s.Read(func(*tally, int64) {})
		s.ReadConfirmed(func(*tally, int64) {})
		if kind != "ephemeral" { // an answer to every broadcast would never end
			s.Broadcast("unused", nil)
		}
		s.State()
		s.LastVote()
		s.Stats()
		s.Subscribe("unused", func([]byte) {})
		if err := s.Publish("noop", nil); err != nil {
			// A callback may still run while the session ends (the Leave
			// below, or the test's cleanup): only a refusal by a running
			// session is wrong.
			select {
			case <-s.Done():
			default:
				t.Errorf("Publish from a %s callback of session %d: %v", kind, i, err)
			}
		}
		mu.Lock()
		called[kind+strconv.Itoa(i)] = true
		mu.Unlock()
	}
	for i := range sessions {
		options := Options{Reflector: "ws://" + addr + "/reflector", Name: "reentrant", Password: "pw",
			Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnVote:       func(int64, string) { callAll(i, "vote") },
			OnDivergence: func(Divergence) { callAll(i, "divergence") },
			OnEphemeral:  func(string, string, []byte) { callAll(i, "ephemeral") }}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		s, err := Join(ctx, reentrantApp(), options)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Leave() })
		sessions[i].Store(s)
		s.Subscribe("sum", func([]byte) { callAll(i, "emit") })
	}
	a := sessions[0].Load()
	if err := a.Publish("add", 1); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish("diverge", nil); err != nil {
		t.Fatal(err)
	}
	want := []string{"emit0", "emit1", "vote0", "vote1", "divergence0", "divergence1", "ephemeral0", "ephemeral1"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		mu.Lock()
		missing := slices.DeleteFunc(slices.Clone(want), func(kind string) bool { return called[kind] })
		mu.Unlock()
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("callbacks that never completed their calls (a deadlock?): %v", missing)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Leave from a callback ends the session.
	left := make(chan struct{})
	a.Subscribe("sum", func([]byte) {
		a.Leave()
		close(left)
	})
	if err := sessions[1].Load().Publish("add", 2); err != nil {
		t.Fatal(err)
	}
	select {
	case <-left:
	case <-time.After(20 * time.Second):
		t.Fatal("Leave from a callback did not return")
	}
	<-a.Done()
}
