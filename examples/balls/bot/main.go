// Command bot is a native participant of the balls example: it joins a
// room like the browser view does, pushes random balls at random times,
// and reports what its replica computed, so that a test (or a person) can
// compare it with the browsers'.
//
//	go run ./examples/balls/bot --room lobby --pushes 10 --every 300ms
//
// Output, one line each:
//
//	view <view id> session <session id>
//	push <n> ball <index>          after each push was published
//	pushed <n>                     after the last push
//	vote time=<ms> hash=<hex>      whenever the replica's snapshot vote changes
//	divergence <description>       when replicas' state hashes disagreed
//	state time=<ms> seq=<n> hash=<hex> pushes=<n> snapshot=<url>   on exit
//
// It stays --stay after its last push (or until SIGINT/SIGTERM), then
// leaves.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/dmath"
	"github.com/metronome-sync/metronome/examples/balls/model"
)

const (
	// joinTimeout bounds joining the session.
	joinTimeout = 30 * time.Second
	// votePollInterval is how often the bot looks for a new snapshot vote.
	votePollInterval = 100 * time.Millisecond
	// pushSpeedMax bounds a push's impulse, in world units per second.
	pushSpeedMax = 800.0
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("bot", flag.ContinueOnError)
	flags.SetOutput(stderr)
	reflector := flags.String("reflector", "ws://127.0.0.1:8888/reflector", "the reflector's WebSocket URL, without the session id")
	room := flags.String("room", "lobby", "the session name (the browser page's ?room=)")
	password := flags.String("pw", "demo", "the session password (the browser page's ?pw=)")
	pushes := flags.Int("pushes", 10, "how many pushes to publish")
	every := flags.Duration("every", 300*time.Millisecond, "the mean time between pushes (each wait is uniform in [0, 2×every])")
	stay := flags.Duration("stay", 2*time.Second, "how long to stay in the session after the last push")
	verbose := flags.Bool("v", false, "log the session's progress to stderr")
	speculate := flags.Bool("speculate", false, "apply its own pushes at once to a speculative copy of the model (docs/sdk.md, \"Speculation\"); the state it prints and votes is the confirmed one either way")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	if *pushes < 0 || *every < 0 || *stay < 0 {
		fmt.Fprintln(stderr, "bot: --pushes, --every and --stay must not be negative")
		return 2
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	signals, stopSignals := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	joinCtx, cancel := context.WithTimeout(signals, joinTimeout)
	session, err := client.Join(joinCtx, model.App, client.Options{
		Reflector: *reflector, Name: *room, Password: *password, Logger: logger,
		OnDivergence: func(d client.Divergence) { fmt.Fprintf(stdout, "divergence %s\n", d.Error()) },
		Speculate:    *speculate,
	})
	cancel()
	if err != nil {
		fmt.Fprintf(stderr, "bot: joining room %q at %s: %v\n", *room, *reflector, err)
		return 1
	}
	fmt.Fprintf(stdout, "view %s session %s\n", session.ViewID(), session.ID())

	votes := time.NewTicker(votePollInterval)
	defer votes.Stop()
	var lastVoteTime int64 = -1
	reportVote := func() {
		if at, hash := session.LastVote(); hash != "" && at != lastVoteTime {
			lastVoteTime = at
			fmt.Fprintf(stdout, "vote time=%d hash=%s\n", at, hash)
		}
	}

	random := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 0))
	wait := func() time.Duration { return time.Duration(random.Int64N(int64(2**every) + 1)) }
	next := time.NewTimer(wait())
	defer next.Stop()
	published := 0
	var leaveAt <-chan time.Time
	if *pushes == 0 {
		fmt.Fprintln(stdout, "pushed 0")
		leaveAt = time.After(*stay)
	}
	code := 0
loop:
	for {
		select {
		case <-signals.Done():
			break loop
		case <-session.Done():
			fmt.Fprintf(stderr, "bot: the session ended: %v\n", session.Err())
			code = 1
			break loop
		case <-leaveAt:
			break loop
		case <-votes.C:
			reportVote()
		case <-next.C:
			ball := random.IntN(model.BallCount)
			angle := random.Float64() * 2 * math.Pi
			speed := random.Float64() * pushSpeedMax
			push := model.Push{Ball: ball, Impulse: dmath.Vec2{X: dmath.Cos(angle), Y: dmath.Sin(angle)}.Scale(speed)}
			if err := session.Publish(model.EventPush, push); err != nil {
				fmt.Fprintf(stderr, "bot: publishing a push: %v\n", err)
				code = 1
				break loop
			}
			published++
			fmt.Fprintf(stdout, "push %d ball %d\n", published, ball)
			if published < *pushes {
				next.Reset(wait())
			} else {
				fmt.Fprintf(stdout, "pushed %d\n", published)
				leaveAt = time.After(*stay)
			}
		}
	}
	if code == 0 {
		reportVote()
		now, seq, hash, err := session.State()
		var pushesApplied int64
		session.Read(func(m *model.Model, _ int64) { pushesApplied = m.Pushes })
		if err == nil {
			fmt.Fprintf(stdout, "state time=%d seq=%d hash=%s pushes=%d snapshot=%s\n", now, seq, hash, pushesApplied, session.Stats().SnapshotURL)
		}
	}
	session.Leave()
	return code
}
