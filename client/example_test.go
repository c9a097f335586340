package client_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store/memstore"
)

// Board is the shared model: every view sees the same notes.
type Board struct {
	Notes []string
}

var board = client.App[Board]{
	ID:      "io.example.board",
	Version: "1",
	Events: map[string]client.Handler[Board]{
		"post": func(m *Board, ctx *client.Context, e client.Event) {
			var text string
			if e.Decode(&text) == nil {
				m.Notes = append(m.Notes, e.View+": "+text)
				ctx.Emit("posted", len(m.Notes))
			}
		},
	},
}

// Two views join a session on a reflector (here one started in-process;
// normally `metronome serve`), one posts, both see the post.
func ExampleJoin() {
	reflector, _ := server.New(server.Config{Addr: "127.0.0.1:0", Store: memstore.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	reflector.Start()
	defer reflector.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	options := client.Options{Reflector: "ws://" + reflector.Addr() + "/reflector", Name: "room1", Password: "secret",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	options.ViewID = "alice"
	alice, err := client.Join(ctx, board, options)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer alice.Leave()
	options.ViewID = "bob"
	bob, err := client.Join(ctx, board, options)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bob.Leave()

	posted := make(chan struct{}, 1)
	bob.Subscribe("posted", func([]byte) { posted <- struct{}{} })
	alice.Publish("post", "hello")
	<-posted
	bob.Read(func(m *Board, now int64) { fmt.Println(m.Notes) })
	// Output: [alice: hello]
}
