// Command crossrun replays a recorded input trace through a complete model
// (package model: dmath physics, maps, random draws, future messages,
// publishes, views joining and leaving) and prints state hashes, so that
// runs of the same program built for different targets (amd64 v1/v3,
// arm64, wasm) can be compared: scripts/crosstarget.sh does that and fails
// if any output differs between targets or from testdata/expected.txt.
//
// The trace, testdata/trace.jsonl, is data: JSON lines of reflected
// messages ({kind, time, seq, view, input, name, data}) and ticks, written
// once by -generate from a fixed seed and checked in. It is embedded in
// the binary, so the program needs no files on the target.
//
// The replay runs the trace on a new island; after half of the messages it
// takes a snapshot, restores a second island from it and runs the rest on
// both. It prints the state hash after every 500th message, the snapshot's
// hash, digests of the effects and the final hash, and exits non-zero if
// the two islands ever disagree.
//
// Usage:
//
//	go run ./client/island/internal/crossrun [-trace FILE]
//	go run ./client/island/internal/crossrun -generate client/island/internal/crossrun/testdata/trace.jsonl
package main

import (
	"bytes"
	_ "embed"
	"flag"
	"fmt"
	"io"
	"os"
)

//go:embed testdata/trace.jsonl
var embeddedTrace []byte

func main() {
	generatePath := flag.String("generate", "", "write a new trace to this file (from the fixed seed) and exit")
	tracePath := flag.String("trace", "", "replay this trace file instead of the embedded testdata/trace.jsonl")
	flag.Parse()
	if err := run(os.Stdout, *generatePath, *tracePath); err != nil {
		fmt.Fprintln(os.Stderr, "crossrun:", err)
		os.Exit(1)
	}
}

func run(w io.Writer, generatePath, tracePath string) error {
	if generatePath != "" {
		file, err := os.Create(generatePath)
		if err != nil {
			return err
		}
		if err := generate(file); err != nil {
			file.Close()
			return err
		}
		return file.Close()
	}
	trace := embeddedTrace
	if tracePath != "" {
		var err error
		if trace, err = os.ReadFile(tracePath); err != nil {
			return err
		}
	}
	steps, err := parseTrace(bytes.NewReader(trace))
	if err != nil {
		return err
	}
	return replay(steps, w)
}
