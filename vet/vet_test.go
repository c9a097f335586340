package vet_test

import (
	"testing"

	"golang.org/x/tools/go/analysis/analysistest"

	"github.com/metronome-sync/metronome/vet"
)

// Each testdata package holds the findings of one rule as // want comments,
// next to the deterministic forms that must stay silent.
func TestRules(t *testing.T) {
	t.Parallel()
	for _, pkg := range []string{"maporder", "concurrency", "clock", "imports", "pointers", "allow", "clean"} {
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
