package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/tools/go/analysis"
	"golang.org/x/tools/go/analysis/checker"
	"golang.org/x/tools/go/packages"

	"github.com/metronome-sync/metronome/vet"
)

const vetUsage = `Usage:
  metronome vet [flags] packages...

Reports nondeterminism in the model packages of a replicated simulation. Every
client runs the same model on the same messages, so the model must compute the
same bits on every machine (amd64, arm64, wasm); one map range or clock read
makes the replicas diverge. metronome vet reports, with what to use instead:

  map order     range over a map; maps.Keys/Values/All unless sorted;
                reflect.Value.MapKeys/MapRange
                → for _, k := range slices.Sorted(maps.Keys(m))
  concurrency   go statements; channel types, sends, receives, range; select
                → a model is single-threaded: call directly, queue in a slice,
                  or schedule a future message (island.Context.Future)
  time          time.Now, Since, Sleep, After, timers, time.Time, ...
                (time.Duration and its units are fine)
                → the session time stamped on each message (island.Context.Now)
  imports       math/rand, math/rand/v2, crypto/rand, hash/maphash
                → the session's seeded random source (island.Context.Random)
                os, net, syscall, io/ioutil, runtime, sync, sync/atomic, unsafe
                (and their subpackages)
                → input arrives as messages; I/O belongs in the view
  math          math.Sin, Cos, Tan, Exp, Log, Pow, Tanh, Atan2, Hypot, Cbrt, ...
                (the last bit differs between platforms; Sqrt, Floor, Mod, FMA
                are exact and fine)
                → the same function in github.com/metronome-sync/metronome/dmath
                  (Sin, Cos, Tan, Asin, Acos, Atan, Atan2, Exp, Log, Pow, Tanh, Hypot)
  multiply-add  x*y + z, z - x*y, z += x*y, -(x*y) + z on floats, also when
                the product comes through a local variable (p := x*y; p + z)
                or a small function of the package (mul(x, y) + z): the
                compiler fuses them into one FMA on arm64, not on wasm
                → float64(x*y) + z, or math.FMA(x, y, z)
  float → int   int(x), int64(x), uint8(x), ... of a float: NaN, infinities
                and values out of range convert differently on amd64, arm64
                and wasm (int64(NaN) is -9223372036854775808 on amd64, 0 on
                arm64); a constant in range is fine
                → compare the converted value with constants first, in a way
                  that is false for NaN: if v >= 0 && v < 1000 { n = int(v) }
  addresses     fmt's %p, pointer → uintptr, reflect.Value.Pointer
                → an id the model assigns

A finding that is deterministic after all is suppressed by a comment with a
reason on its line or on the line before:

  for _, v := range counts { //metronome:allow summing is order-independent

An allow comment without a reason, or one that suppresses nothing, is itself
reported.

What vet cannot see, so check it by hand and compare OnVote hashes on every
platform you ship to:

  - code outside the packages named: what the model calls in other packages,
    even of its own module (name them too), in dependencies and the standard
    library; assembly and cgo; files that build constraints exclude (use
    -tags, and GOOS/GOARCH for another target's files: GOOS=js GOARCH=wasm)
  - map order that arrives as a function value: an iterator (iter.Seq) or a
    callback built from a map in code it does not check
  - package variables that handlers change (each replica has its own copy)
  - a product that reaches an addition through memory (a struct field, slice
    element, pointer, package variable or a variable captured by a closure)
    or through a function of another package, all of which the compiler may
    still fuse; its inlining budget is an estimate (80 syntax nodes), and
    complex multiplication, which compiles to multiply-adds, is not checked
  - float → int conversions made safe by code it does not follow: a check in
    another function (the caller, or a decoder that returns checked values),
    a check on another value (x checked, math.Round(x) converted), a clamp
    with min/max or math.Min/Max (they pass NaN through)
  - NaN bits: 0/0 gives a different NaN on amd64 than on arm64, so
    math.Float64bits of a NaN differs (use dmath.Canonicalize or dmath.Hash)

Packages are go list patterns (./model, ./sim/..., an import path); flags come
before them. Findings go to stdout as file:line:column: message.

Exit status: 0 no findings, 1 findings, 2 usage error or packages that do not
load or type-check.

Flags:
`

// vetCommand runs "metronome vet ..." and returns the exit status.
func vetCommand(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("vet", flag.ContinueOnError)
	flags.SetOutput(stderr)
	tests := flags.Bool("tests", false, "also check the packages' _test.go files")
	jsonOutput := flags.Bool("json", false, "write the findings as JSON (the format of go vet -json) instead of text")
	tags := flags.String("tags", "", "a comma-separated list of build tags to load the packages with, as go build -tags")
	flags.Usage = func() {
		io.WriteString(stderr, vetUsage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if flags.NArg() == 0 {
		fmt.Fprint(stderr, "metronome vet: no packages given; for example: metronome vet ./model\n\n")
		flags.Usage()
		return 2
	}
	graph, err := analyze(flags.Args(), *tests, *tags)
	if err != nil {
		fmt.Fprintf(stderr, "metronome vet: %v\n", err)
		return 2
	}
	found := findings(graph)
	if *jsonOutput {
		if err := graph.PrintJSON(stdout); err != nil {
			fmt.Fprintf(stderr, "metronome vet: %v\n", err)
			return 2
		}
	} else {
		for _, finding := range found {
			fmt.Fprintf(stdout, "%s:%d:%d: %s\n", relativePath(finding.position.Filename), finding.position.Line, finding.position.Column, finding.message)
		}
	}
	if len(found) > 0 {
		fmt.Fprintf(stderr, "metronome vet: %d finding(s); see metronome vet --help for the rules and //metronome:allow\n", len(found))
		return 1
	}
	return 0
}

// analyze loads the packages that match patterns, with the _test.go files
// if tests and the build tags, and runs the analyzer on them. Packages that
// do not load or type-check are an error: the analyzer cannot vouch for code
// it cannot see.
func analyze(patterns []string, tests bool, tags string) (*checker.Graph, error) {
	config := &packages.Config{Mode: packages.LoadSyntax, Tests: tests}
	if tags != "" {
		config.BuildFlags = []string{"-tags=" + tags}
	}
	loaded, err := packages.Load(config, patterns...)
	if err != nil {
		return nil, err
	}
	var problems []string
	packages.Visit(loaded, nil, func(pkg *packages.Package) {
		for _, problem := range pkg.Errors {
			problems = append(problems, problem.Error())
		}
	})
	if len(problems) > 0 {
		return nil, fmt.Errorf("packages do not load:\n  %s", strings.Join(problems, "\n  "))
	}
	// With --tests, go/packages adds a generated test main package per
	// package; it is not the user's code.
	roots := slices.DeleteFunc(loaded, func(pkg *packages.Package) bool {
		return strings.HasSuffix(pkg.ID, ".test")
	})
	if len(roots) == 0 {
		return nil, fmt.Errorf("no packages match %s", strings.Join(patterns, " "))
	}
	graph, err := checker.Analyze([]*analysis.Analyzer{vet.Analyzer}, roots, nil)
	if err != nil {
		return nil, err
	}
	for action := range graph.All() {
		if action.Err != nil {
			return nil, fmt.Errorf("%s: %w", action.Package.PkgPath, action.Err)
		}
	}
	return graph, nil
}

type finding struct {
	position token.Position
	message  string
}

// findings are the diagnostics of the graph's roots, without the duplicates
// of files that belong to a package and its test variant, sorted by file and
// position.
func findings(graph *checker.Graph) []finding {
	seen := map[finding]bool{}
	var found []finding
	for _, root := range graph.Roots {
		for _, diagnostic := range root.Diagnostics {
			item := finding{root.Package.Fset.Position(diagnostic.Pos), diagnostic.Message}
			if !seen[item] {
				seen[item] = true
				found = append(found, item)
			}
		}
	}
	slices.SortFunc(found, func(a, b finding) int {
		return cmp.Or(
			cmp.Compare(a.position.Filename, b.position.Filename),
			cmp.Compare(a.position.Line, b.position.Line),
			cmp.Compare(a.position.Column, b.position.Column),
			cmp.Compare(a.message, b.message))
	})
	return found
}

// relativePath shortens path to be relative to the working directory when
// it lies below it.
func relativePath(path string) string {
	workingDirectory, err := os.Getwd()
	if err != nil {
		return path
	}
	relative, err := filepath.Rel(workingDirectory, path)
	if err != nil || strings.HasPrefix(relative, "..") {
		return path
	}
	return relative
}
