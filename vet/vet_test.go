package vet_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/metronome-sync/metronome/vet"
)

// Each testdata package holds the findings of one rule as // want comments,
// next to the deterministic forms that must stay silent.
func TestRules(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"maporder", "concurrency", "clock", "imports", "pointers", "allow", "clean", "fusion", "conversions"} {
		t.Run(pkg, func(t *testing.T) {
			t.Parallel()
			analysistest.Run(t, analysistest.TestData(), vet.Analyzer, pkg)
		})
	}
}

// The multiply-add findings come with a fix that rounds the product; the
// fixed file is floats.go.golden.
func TestFusedMultiplyAddFix(t *testing.T) {
	t.Parallel()
	analysistest.RunWithSuggestedFixes(t, analysistest.TestData(), vet.Analyzer, "floats")
}

// fusedInstruction matches a fused multiply-add in the arm64 assembly that
// go build -gcflags=-S prints, and captures its line in fusion.go.
var fusedInstruction = regexp.MustCompile(`fusion\.go:(\d+)\)\s+F(N?)M(ADD|SUB)`)

// The fusion rules are an approximation of the compiler, so they are checked
// against it: every line of testdata/src/fusion that has a want comment, and
// no other line, compiles to a fused multiply-add on arm64.
func TestFusionFollowsCompiler(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the compiler")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command:", err)
	}
	t.Parallel()
	source := filepath.Join("testdata", "src", "fusion", "fusion.go")
	build := exec.Command(goTool, "build", "-gcflags=-S", "-o", os.DevNull, source)
	build.Env = append(os.Environ(), "GOOS=linux", "GOARCH=arm64", "CGO_ENABLED=0")
	assembly, err := build.CombinedOutput()
	if err != nil {
		t.Fatalf("go build for arm64: %v\n%s", err, assembly)
	}
	fused := map[int]bool{}
	for _, match := range fusedInstruction.FindAllSubmatch(assembly, -1) {
		line, _ := strconv.Atoi(string(match[1]))
		fused[line] = true
	}
	text, err := os.ReadFile(source)
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(string(text), "\n") {
		if wanted := strings.Contains(line, "// want"); wanted != fused[i+1] {
			t.Errorf("fusion.go:%d: vet reports a multiply-add: %v; arm64 fuses one: %v\n%s", i+1, wanted, fused[i+1], line)
		}
	}
}
