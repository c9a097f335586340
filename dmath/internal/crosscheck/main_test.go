package main

import (
	"bytes"
	"flag"
	"os"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite testdata/dmath.sha256 with this target's hashes")

const goldenPath = "testdata/dmath.sha256"

// TestHashesMatchGolden checks this target's dmath hashes against the
// checked-in ones. scripts/crosstarget.sh runs the same computation on the
// other targets; this test keeps `go test` honest on its own (a changed
// constant or a fused product shows up here first). After an intended
// change to a dmath result, run `go test ./dmath/internal/crosscheck
// -rewrite` and then scripts/crosstarget.sh.
func TestHashesMatchGolden(t *testing.T) {
	var output bytes.Buffer
	if err := run(&output, defaultInputsPerFunction, false); err != nil {
		t.Fatal(err)
	}
	if *rewrite {
		if err := os.WriteFile(goldenPath, output.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden, err := os.ReadFile(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Split(strings.TrimSpace(string(golden)), "\n")
	got := strings.Split(strings.TrimSpace(output.String()), "\n")
	if len(got) != len(want) {
		t.Errorf("%d hashes, %s has %d (rerun with -rewrite after adding a function)", len(got), goldenPath, len(want))
	}
	for i := 0; i < len(got) && i < len(want); i++ {
		if got[i] != want[i] {
			t.Errorf("hash differs from %s:\n got: %s\nwant: %s", goldenPath, got[i], want[i])
		}
	}
}

// TestGeneratorIsStable pins the first outputs of the input generator:
// if they changed, every golden hash would change for no dmath reason.
func TestGeneratorIsStable(t *testing.T) {
	g := newGenerator(generatorSeed)
	for i, want := range []uint64{0x5cb3d5def97ea7a, 0x2219f815333636d3, 0x2399f40bbd3941d9} {
		if got := g.next(); got != want {
			t.Fatalf("output %d = %#x, want %#x", i, got, want)
		}
	}
	for range 1000 {
		if x := g.magnitude(-1074, -1074); x != 5e-324 && x != -5e-324 {
			t.Fatalf("magnitude at the smallest exponent = %v, want ±5e-324", x)
		}
	}
}
