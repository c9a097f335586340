package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store/memstore"
)

// startMetronome starts an in-process, in-memory server and returns its
// reflector URL.
func startMetronome(t *testing.T) string {
	t.Helper()
	srv, err := server.New(server.Config{Addr: "127.0.0.1:0", Store: memstore.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return "ws://" + srv.Addr() + "/reflector"
}

func testPrefix(t *testing.T) string {
	return strings.ReplaceAll(t.Name(), "/", "_") + fmt.Sprint(time.Now().UnixNano())
}

func TestIdleAgainstMetronome(t *testing.T) {
	config := DefaultIdleConfig()
	config.URL = startMetronome(t)
	config.Connections, config.Clients, config.Duration = 20, 10, time.Second
	config.SessionPrefix, config.Progress = testPrefix(t), testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	result, err := RunIdle(ctx, config)
	if err != nil {
		t.Fatalf("RunIdle: %v", err)
	}
	var table strings.Builder
	result.WriteTable(&table)
	t.Log("\n" + table.String())
	if !result.OK || result.Synced != 20 || result.Connect.Count != 20 || result.Sessions != 2 {
		t.Fatalf("want OK, 20 synced in 2 sessions; got OK %v synced %d count %d sessions %d (%s)",
			result.OK, result.Synced, result.Connect.Count, result.Sessions, result.FirstError)
	}
	if result.Ticks == 0 {
		t.Error("no TICK received in 1 s of idle sessions ticking every 50 ms")
	}
}

func TestJoinAgainstMetronome(t *testing.T) {
	config := DefaultJoinConfig()
	config.URL = startMetronome(t)
	config.Messages, config.Joins, config.Writers = 300, 2, 2
	config.SessionPrefix, config.Progress = testPrefix(t), testWriter{t}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	result, err := RunJoin(ctx, config)
	if err != nil {
		t.Fatalf("RunJoin: %v", err)
	}
	var table strings.Builder
	result.WriteTable(&table)
	t.Log("\n" + table.String())
	if !result.OK || result.Sent != 300 || result.Join.Count != 2 || len(result.SyncMessages) != 2 {
		t.Fatalf("want OK, 300 sent, 2 joins; got OK %v sent %d joins %d (%s)", result.OK, result.Sent, result.Join.Count, result.FirstError)
	}
	for j, count := range result.SyncMessages {
		if count < 300 || result.SyncBytes[j] <= 0 {
			t.Errorf("join %d: SYNC of %d bytes holds %d messages, want ≥ 300", j, result.SyncBytes[j], count)
		}
	}
}

func TestJoinWithoutMessages(t *testing.T) {
	config := DefaultJoinConfig()
	config.URL = startMetronome(t)
	config.Messages, config.Joins = 0, 1
	config.SessionPrefix = testPrefix(t)
	result, err := RunJoin(context.Background(), config)
	if err != nil || !result.OK || result.Writers != 0 || result.Join.Count != 1 {
		t.Fatalf("K=0: %+v, %v", result, err)
	}
}

func TestSaturationRampAgainstMetronome(t *testing.T) {
	config := DefaultSaturationConfig()
	config.Step.URL = startMetronome(t)
	config.Step.Sessions, config.Step.Clients = 4, 3
	config.Step.Duration, config.Step.Warmup = time.Second, 200*time.Millisecond
	config.Step.SessionPrefix, config.Step.Progress = testPrefix(t), testWriter{t}
	config.StartRate, config.Factor, config.StepsMax = 20, 2, 3
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	result, err := RunSaturation(ctx, config)
	if err != nil {
		t.Fatalf("RunSaturation: %v", err)
	}
	var table strings.Builder
	result.WriteTable(&table)
	t.Log("\n" + table.String())
	if len(result.Steps) == 0 || result.Steps[0].RatePerClient != 20 || result.Steps[0].DeliveryRate <= 0 {
		t.Fatalf("steps %+v", result.Steps)
	}
	for i := 1; i < len(result.Steps); i++ {
		if result.Steps[i].RatePerClient != 2*result.Steps[i-1].RatePerClient {
			t.Fatalf("step %d rate %v after %v: want doubling", i, result.Steps[i].RatePerClient, result.Steps[i-1].RatePerClient)
		}
	}
	if result.Steps[0].GeneratorCPUPercent <= 0 {
		t.Errorf("no generator CPU measured: %+v", result.Steps[0])
	}
	// A bad ramp is refused with the field named.
	config.Factor = 1
	if _, err := RunSaturation(ctx, config); err == nil || !strings.Contains(err.Error(), "factor") {
		t.Fatalf("factor 1 accepted: %v", err)
	}
}
