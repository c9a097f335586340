package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

// The vet testdata packages live with the analyzer.
const vetTestdata = "../../vet/testdata/src/"

func TestVetHelpTeaches(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"vet", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("vet --help exited %d", code)
	}
	help := stderr.String()
	for _, want := range []string{
		"metronome vet [flags] packages", "range over a map", "slices.Sorted(maps.Keys(m))", "go statements",
		"select", "time.Now", "time.Duration", "math/rand", "seeded random source", "sync/atomic", "unsafe",
		"metronome/dmath", "math.FMA", "%p", "//metronome:allow", "reason", "Exit status: 0 no findings, 1 findings, 2",
		"-tests", "-json", "-tags", "p := x*y; p + z", "mul(x, y) + z", "float → int", "if v >= 0 && v < 1000",
		// What it cannot see.
		"What vet cannot see", "other packages", "assembly", "build constraints", "GOOS=js GOARCH=wasm",
		"iter.Seq", "package variables", "struct field", "captured by a closure", "complex multiplication",
		"math.Min/Max", "NaN bits", "dmath.Canonicalize",
	} {
		if !strings.Contains(help, want) {
			t.Errorf("vet --help does not mention %q:\n%s", want, help)
		}
	}
	stdout.Reset()
	run([]string{"help"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "metronome vet") {
		t.Errorf("metronome help does not list vet:\n%s", stdout.String())
	}
}

// TestVetEndToEnd runs the subcommand on testdata packages: it loads them
// with go list, type-checks them and prints sorted findings.
func TestVetEndToEnd(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"vet", vetTestdata + "allow", vetTestdata + "clean"}, &stdout, &stderr)
	if code != 1 {
		t.Fatalf("vet on findings exited %d, want 1; stderr:\n%s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
	want := []string{
		"allow.go:14:2: range over map counts: Go randomizes map iteration order",
		"allow.go:14:21: //metronome:allow needs a reason",
		"allow.go:18:2: //metronome:allow suppresses nothing",
	}
	if len(lines) != len(want) {
		t.Fatalf("vet printed %d findings, want %d:\n%s", len(lines), len(want), stdout.String())
	}
	for i, line := range lines {
		if !strings.Contains(line, want[i]) {
			t.Errorf("finding %d = %q, want it to contain %q", i, line, want[i])
		}
	}
	if !strings.Contains(stderr.String(), "3 finding(s)") {
		t.Errorf("stderr does not count the findings: %q", stderr.String())
	}

	stdout.Reset()
	stderr.Reset()
	if code := run([]string{"vet", vetTestdata + "clean"}, &stdout, &stderr); code != 0 || stdout.Len() != 0 {
		t.Errorf("vet on a clean package: exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}

// TestVetTags loads a package whose map range is in a file behind a build
// tag: without -tags vet does not see it, with -tags it does.
func TestVetTags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"vet", vetTestdata + "tagged"}, &stdout, &stderr); code != 0 {
		t.Errorf("vet without -tags exited %d, want 0; stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
	for _, tags := range []string{"metronome_vet_example", "other,metronome_vet_example"} {
		stdout.Reset()
		stderr.Reset()
		code := run([]string{"vet", "-tags", tags, vetTestdata + "tagged"}, &stdout, &stderr)
		if code != 1 || !strings.Contains(stdout.String(), "tagged_extra.go:8:2: range over map Counts") {
			t.Errorf("vet -tags %s exited %d, want 1 and the map range of tagged_extra.go; stdout %q, stderr %q", tags, code, stdout.String(), stderr.String())
		}
	}
}

func TestVetJSON(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"vet", "--json", vetTestdata + "concurrency"}, &stdout, &stderr); code != 1 {
		t.Fatalf("vet --json exited %d, want 1; stderr:\n%s", code, stderr.String())
	}
	// package ID → analyzer name → diagnostics
	var tree map[string]map[string][]struct {
		Posn     string `json:"posn"`
		Message  string `json:"message"`
		Category string `json:"category"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &tree); err != nil {
		t.Fatalf("vet --json output is not JSON: %v\n%s", err, stdout.String())
	}
	count := 0
	for _, byAnalyzer := range tree {
		for _, diagnostic := range byAnalyzer["metronome"] {
			count++
			if diagnostic.Category != "concurrency" || diagnostic.Posn == "" {
				t.Errorf("unexpected diagnostic %+v", diagnostic)
			}
		}
	}
	if count == 0 {
		t.Errorf("vet --json reported no diagnostics:\n%s", stdout.String())
	}
}

func TestVetErrors(t *testing.T) {
	for _, test := range []struct {
		name   string
		args   []string
		stderr string
	}{
		{"no packages", []string{"vet"}, "no packages given"},
		{"unknown flag", []string{"vet", "--no-such-flag", "./x"}, "no-such-flag"},
		{"type error", []string{"vet", vetTestdata + "broken"}, "packages do not load"},
		{"no such package", []string{"vet", vetTestdata + "does-not-exist"}, "metronome vet:"},
	} {
		t.Run(test.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(test.args, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), test.stderr) {
				t.Errorf("exit %d, want 2; stderr %q does not contain %q", code, stderr.String(), test.stderr)
			}
		})
	}
}
