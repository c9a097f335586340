package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func TestSimCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"sim", "--seeds", "4", "--json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s %s", code, stdout.String(), stderr.String())
	}
	var summary simSummary
	if err := json.Unmarshal(stdout.Bytes(), &summary); err != nil {
		t.Fatal(err)
	}
	if summary.Seeds != 4 || summary.Events == 0 || summary.Stamped == 0 || len(summary.Violations) != 0 {
		t.Fatalf("summary %+v", summary)
	}
}

func TestSimTraceReplaysByteForByte(t *testing.T) {
	var first, second, stderr bytes.Buffer
	if code := run([]string{"sim", "--seed", "5", "--trace"}, &first, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := run([]string{"sim", "--seed", "5", "--trace"}, &second, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if first.Len() == 0 || !bytes.Equal(first.Bytes(), second.Bytes()) {
		t.Fatalf("two traces of seed 5 differ (%d and %d bytes)", first.Len(), second.Len())
	}
	if !strings.Contains(first.String(), "caught up") {
		t.Fatalf("trace does not end with the catch-up:\n%s", first.String())
	}
}

func TestSimReportsBugWithReplayCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"sim", "--seeds", "30", "--bug", "no-input-dedup", "--workers", "1"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stdout.String(), "exactly once violated") || !strings.Contains(stdout.String(), "replay: metronome sim --seed ") {
		t.Fatalf("exit %d, output:\n%s", code, stdout.String())
	}
}

func TestSimFlagErrors(t *testing.T) {
	for _, args := range [][]string{{"sim", "--faults", "gremlins"}, {"sim", "--trace"}, {"sim", "--seeds", "0"}, {"sim", "--bug", "nope", "--seeds", "1"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code == 0 {
			t.Errorf("%v: exit 0", args)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"sim", "--help"}, &stdout, &stderr); code != 0 || !strings.Contains(stderr.String(), "replays") {
		t.Fatalf("--help: exit %d: %s", code, stderr.String())
	}
}
