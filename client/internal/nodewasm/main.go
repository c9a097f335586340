//go:build js && wasm

// Command nodewasm is a Go replica compiled with GOOS=js GOARCH=wasm and
// run under Node.js, for the client package's TestSnapshotsUnderNodeWASM.
// net/http does not use fetch under Node.js, so this proves that the SDK's
// snapshot transfers work there anyway.
//
// It joins a new session alone as view "uploader", publishes Adds inputs
// and waits until its replica, the only voter, has uploaded a snapshot.
// Then it joins the same session again as view "latejoiner", which must
// start from a downloaded snapshot and reach the same model. It prints one
// line per step and exits with 0 only if all of it worked.
//
//	nodewasm -reflector ws://127.0.0.1:8888/reflector -name room
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/metronome-sync/metronome/client"
)

const (
	// Adds is how many inputs the uploader publishes.
	Adds = 3
	// stepTimeout bounds each step (joining derives a key: about a second
	// in WebAssembly; the first snapshot comes after SnapshotIntervalMsMin
	// of session time).
	stepTimeout = 60 * time.Second
	// lateJoinAttempts: the uploader's SNAP may reach the reflector just
	// after the late joiner's JOIN, which then starts without a snapshot;
	// it leaves and tries again.
	lateJoinAttempts = 5
	pollInterval     = 50 * time.Millisecond
)

type sum struct{ Total int }

var app = client.App[sum]{
	ID: "io.metronome.test.nodewasm", Version: "1", SnapshotIntervalMs: client.SnapshotIntervalMsMin,
	Events: map[string]client.Handler[sum]{
		"add": func(m *sum, ctx *client.Context, e client.Event) {
			var n int
			if e.Decode(&n) == nil {
				m.Total += n
			}
		},
	},
}

func main() {
	reflector := flag.String("reflector", "", "the reflector's WebSocket URL, without the session id")
	name := flag.String("name", "", "the session name (a new session)")
	flag.Parse()
	if err := run(*reflector, *name); err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	fmt.Println("ok")
}

func run(reflector, name string) error {
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	options := client.Options{Reflector: reflector, Name: name, Password: "node wasm", ViewID: "uploader", Logger: logger}
	uploader, err := join(options)
	if err != nil {
		return err
	}
	defer uploader.Leave()
	for n := 1; n <= Adds; n++ {
		if err := uploader.Publish("add", n); err != nil {
			return err
		}
	}
	err = waitFor(func() (bool, error) {
		stats := uploader.Stats()
		if stats.SnapshotUploadsFailed > 0 {
			return false, fmt.Errorf("a snapshot upload failed (the log above says why): %+v", stats)
		}
		return stats.SnapshotsUploaded > 0, nil
	})
	if err != nil {
		return fmt.Errorf("uploading a snapshot: %w", err)
	}
	fmt.Println("uploaded")

	want := Adds * (Adds + 1) / 2
	for attempt := 1; ; attempt++ {
		options.ViewID = fmt.Sprintf("latejoiner%d", attempt)
		late, err := join(options)
		if err != nil {
			return err
		}
		snapshot := late.Stats().SnapshotURL
		if snapshot == "" && attempt < lateJoinAttempts {
			late.Leave()
			time.Sleep(time.Second)
			continue
		}
		defer late.Leave()
		if snapshot == "" {
			return fmt.Errorf("%d late joiners started without a snapshot", attempt)
		}
		fmt.Println("downloaded", snapshot)
		return waitFor(func() (bool, error) {
			var total int
			err := late.Read(func(m *sum, _ int64) { total = m.Total })
			return total == want, err
		})
	}
}

func join(options client.Options) (*client.Session[sum], error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()
	session, err := client.Join(ctx, app, options)
	if err != nil {
		return nil, fmt.Errorf("joining as %s: %w", options.ViewID, err)
	}
	return session, nil
}

// waitFor polls done until it reports true or an error, or stepTimeout
// passes.
func waitFor(done func() (bool, error)) error {
	deadline := time.Now().Add(stepTimeout)
	for {
		ok, err := done()
		if ok || err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %v", stepTimeout)
		}
		time.Sleep(pollInterval)
	}
}
