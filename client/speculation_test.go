package client

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"
)

// TestSpeculativeReadShowsPublishAtOnce: with Options.Speculate, Read
// shows a published input as soon as Publish returns; once reflected,
// the speculative and the non-speculative session agree on the
// confirmed state.
func TestSpeculativeReadShowsPublishAtOnce(t *testing.T) {
	addr := startServer(t)
	app := tallyApp(0)
	plain := join(t, addr, "speculation", "pw", app)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	fast, err := Join(ctx, app, Options{Reflector: "ws://" + addr + "/reflector", Name: "speculation", Password: "pw",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Speculate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.Leave()
	for k := 1; k <= 3; k++ {
		if err := fast.Publish("add", k); err != nil {
			t.Fatal(err)
		}
		var sum int
		fast.Read(func(m *tally, _ int64) { sum = m.Sum })
		if want := k * (k + 1) / 2; sum != want {
			t.Fatalf("Read right after Publish #%d shows sum %d, want %d", k, sum, want)
		}
	}
	plain.Publish("add", 10)
	waitAgree(t, func(model string) bool { return model != "" }, plain, fast)
	deadline := time.Now().Add(10 * time.Second)
	for {
		var confirmed int
		fast.ReadConfirmed(func(m *tally, _ int64) { confirmed = m.Sum })
		_, _, a, _ := fast.State()
		_, _, b, _ := plain.State()
		if confirmed == 16 && a == b {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("confirmed sum %d, hashes %s / %s", confirmed, a, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
	stats := fast.Stats().Speculation
	if stats.Speculated != 3 || stats.Pending != 0 {
		t.Errorf("speculation stats %+v: want 3 speculated, none pending", stats)
	}
}
