package main

import (
	"bytes"
	"flag"
	"os"
	"slices"
	"strings"
	"testing"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/checker"
	"golang.org/x/tools/go/packages"

	"github.com/metronome-sync/metronome/vet"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/expected.txt with this target's output")

const expectedPath = "testdata/expected.txt"

// TestOutputMatchesExpected replays the checked-in trace on this target
// and compares the output with the checked-in one. scripts/crosstarget.sh
// runs the same replay on the other targets; this test keeps `go test`
// honest on its own. After an intended change to the model, the island's
// encoding or the trace, run `go test ./client/island/internal/crossrun
// -rewrite`, read the diff, and run scripts/crosstarget.sh.
func TestOutputMatchesExpected(t *testing.T) {
	var output bytes.Buffer
	if err := run(&output, "", ""); err != nil {
		t.Fatal(err)
	}
	if *rewrite {
		if err := os.WriteFile(expectedPath, output.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	expected, err := os.ReadFile(expectedPath)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(expected)), "\n")
	got := strings.Split(strings.TrimSpace(output.String()), "\n")
	if !slices.Equal(got, want) {
		t.Errorf("output differs from %s:\n got:\n%s\nwant:\n%s", expectedPath, strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestTraceExercisesTheModel guards the trace against a regeneration that
// loses coverage: every kind of record and every event name must occur.
func TestTraceExercisesTheModel(t *testing.T) {
	steps, err := parseTrace(bytes.NewReader(embeddedTrace))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]int{}
	for _, s := range steps {
		switch m := s.message; {
		case s.tick:
			seen["tick"]++
		case m.Users != nil && len(m.Users.Joined) > 0:
			seen["join"]++
		case m.Users != nil:
			seen["exit"]++
		case m.Envelope == nil:
			seen["other"]++
		case m.Envelope.Name == "":
			seen["poll"]++
		default:
			seen[m.Envelope.Name]++
		}
	}
	for _, name := range []string{"tick", "join", "exit", "other", "poll", "thrust", "spawn", "paint", "remove", "chat"} {
		if seen[name] == 0 {
			t.Errorf("the trace has no %q", name)
		}
	}
	if messages := len(steps) - seen["tick"]; messages < 2000 {
		t.Errorf("the trace has %d messages; want thousands", messages)
	}
}

// TestModelPassesVet runs metronome vet's analyzer on the model: the
// cross-target check is only meaningful for a model written by the rules.
func TestModelPassesVet(t *testing.T) {
	if testing.Short() {
		t.Skip("loads and type-checks packages")
	}
	loaded, err := packages.Load(&packages.Config{Mode: packages.LoadSyntax}, "./model")
	if err != nil {
		t.Fatal(err)
	}
	if packages.PrintErrors(loaded) > 0 {
		t.Fatal("./model does not load")
	}
	graph, err := checker.Analyze([]*analysis.Analyzer{vet.Analyzer}, loaded, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, root := range graph.Roots {
		if root.Err != nil {
			t.Fatal(root.Err)
		}
		for _, diagnostic := range root.Diagnostics {
			t.Errorf("%s: %s", root.Package.Fset.Position(diagnostic.Pos), diagnostic.Message)
		}
	}
}
