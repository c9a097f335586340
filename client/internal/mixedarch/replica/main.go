// Command replica is the odd replica of the client package's
// TestMixedArchitectureSessionRecovers, built for another target than the
// test (GOOS=js GOARCH=wasm under Node.js, or linux/arm64 under qemu). It
// joins the session, publishes mixedarch.Inputs and prints one line per
// snapshot vote and divergence report:
//
//	vote <time> <hash>
//	divergence local=<bool> recovered=<bool> majority=<hash> local-hash=<hash>
//
// It ends with "ok" after the first vote that follows a recovered
// divergence, with "agreed" if RecoveryVotes votes after its inputs
// agreed (this target computes math.Exp alike: nothing to recover), and
// with "FAIL <why>" (exit status 1) otherwise.
//
//	replica -reflector ws://127.0.0.1:8888/reflector -name room
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/client/internal/mixedarch"
)

const (
	// runTimeout bounds the run: joining (a key derivation, about a second
	// in WebAssembly and several under qemu) and a few snapshot votes,
	// SnapshotIntervalMsMin of session time apart.
	runTimeout = 90 * time.Second
	// agreedVotes is how many votes after its inputs must agree before the
	// replica concludes that this target computes math.Exp alike.
	agreedVotes = 2
)

func main() {
	reflector := flag.String("reflector", "", "the reflector's WebSocket URL, without the session id")
	name := flag.String("name", "", "the session name")
	flag.Parse()
	outcome, err := run(*reflector, *name)
	if err != nil {
		fmt.Println("FAIL", err)
		os.Exit(1)
	}
	fmt.Println(outcome)
}

func run(reflector, name string) (string, error) {
	var mu sync.Mutex
	applied, recovered := false, false
	agreed := 0
	finished := make(chan string, 1)
	finish := func(outcome string) {
		select {
		case finished <- outcome:
		default:
		}
	}
	options := client.Options{Reflector: reflector, Name: name, Password: "mixed", ViewID: "odd",
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		OnVote: func(at int64, hash string) {
			fmt.Printf("vote %d %s\n", at, hash)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case recovered:
				finish("ok")
			case applied:
				if agreed++; agreed > agreedVotes { // the vote before the tally of the last one counts
					finish("agreed")
				}
			}
		},
		OnDivergence: func(d client.Divergence) {
			fmt.Printf("divergence local=%v recovered=%v majority=%s local-hash=%s\n", d.Local, d.Recovered, d.Groups[0].Hash, d.LocalHash)
			if d.Local && !d.Recovered {
				finish("") // reported below as a failure
				return
			}
			mu.Lock()
			defer mu.Unlock()
			recovered = recovered || d.Recovered
		}}
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	session, err := client.Join(ctx, mixedarch.App, options)
	if err != nil {
		return "", err
	}
	defer session.Leave()
	session.Subscribe(mixedarch.EventExp, func([]byte) {
		mu.Lock()
		defer mu.Unlock()
		applied = true
	})
	if err := session.Publish(mixedarch.EventExp, mixedarch.Inputs()); err != nil {
		return "", err
	}
	select {
	case outcome := <-finished:
		if outcome == "" {
			return "", fmt.Errorf("a divergence was not recovered (see the line above)")
		}
		return outcome, nil
	case <-ctx.Done():
		return "", fmt.Errorf("no recovery within %v", runTimeout)
	}
}
