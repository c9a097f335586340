// Package faults runs the real `metronome serve` binary on a real ext4 file
// system in a loop image and injects the faults an operator meets: power
// loss at seeded random points under load, damaged and truncated files of
// every kind, and a full disk. After each fault it checks, from what the
// clients were sent, that the store kept its promises: every message a
// client received is still there with the same seq and bytes on the same
// timeline, or the session moved to a new timeline and the server said so
// in an ERROR line; the server starts; sessions that were not damaged are
// not affected (docs/protocol.md §7.2, §18.3; store/diskstore/damage.go).
//
// The suite needs root (mkfs.ext4, losetup, mount) and skips otherwise. It
// is slow for a unit test (about three minutes), so it does not run under
// the race detector: scripts/test.sh runs it on its own. See README.md.
package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Settings from the environment, for soaks and replays.
const (
	// seedVariable replaces the base seed; every case derives its own seed
	// from it and names it in its subtest name and in its failures.
	seedVariable = "METRONOME_FAULT_SEED"
	// cutsVariable raises the number of power cuts (default cutsDefault).
	cutsVariable = "METRONOME_FAULT_CUTS"
	// keepVariable, when set, keeps the server logs of passing tests too.
	keepVariable = "METRONOME_FAULT_KEEP"
)

const (
	// seedDefault makes an ordinary run repeat the same fault points.
	seedDefault = 1
	// cutsDefault is the number of power cuts of an ordinary run: at least
	// 50, within the suite's time budget on two cores.
	cutsDefault = 50
)

// buildDirectory holds the binary built once per test process; TestMain
// removes it.
var buildDirectory string

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDirectory != "" {
		os.RemoveAll(buildDirectory)
	}
	os.Exit(code)
}

// baseSeed returns the seed of this run.
func baseSeed(t *testing.T) int64 {
	t.Helper()
	return positiveSetting(t, seedVariable, seedDefault)
}

// cutsWanted returns the number of power cuts of this run.
func cutsWanted(t *testing.T) int {
	t.Helper()
	return int(positiveSetting(t, cutsVariable, cutsDefault))
}

func positiveSetting(t *testing.T, name string, fallback int64) int64 {
	t.Helper()
	text, ok := os.LookupEnv(name)
	if !ok || text == "" {
		return fallback
	}
	value, err := strconv.ParseInt(text, 10, 64)
	if err != nil || value <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, text)
	}
	return value
}

// requiredTools are the programs the suite runs besides the server.
var requiredTools = []string{"mkfs.ext4", "losetup", "mount", "umount", "cp"}

// requireEnvironment skips the test unless it can create, mount and copy
// loop images, and returns the path of the server binary.
func requireEnvironment(t *testing.T) string {
	t.Helper()
	if raceEnabled {
		t.Skip("skipped under -race: the fault suite runs on its own, without -race (scripts/test.sh)")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create and mount ext4 loop images (mkfs.ext4, losetup, mount); run as root, as CI does")
	}
	for _, tool := range requiredTools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s to build and mount ext4 loop images: %v", tool, err)
		}
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skipf("needs loop devices: %v", err)
	}
	return serverBinary(t)
}

var build struct {
	once sync.Once
	path string
	err  error
}

// serverBinary builds ./cmd/metronome once per test process.
func serverBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		buildDirectory, err = os.MkdirTemp("", "metronome-faults-")
		if err != nil {
			build.err = err
			return
		}
		path := filepath.Join(buildDirectory, "metronome")
		command := exec.Command("go", "build", "-o", path, "./cmd/metronome")
		command.Dir = root
		if output, err := command.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/metronome: %v\n%s", err, output)
			return
		}
		build.path = path
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// modulePath names the module whose go.mod moduleRoot looks for.
const modulePath = "github.com/metronome-sync/metronome"

// moduleRoot returns the directory of the module's go.mod, searching
// upwards from the working directory (the package directory under go test).
func moduleRoot() (string, error) {
	directory, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		content, err := os.ReadFile(filepath.Join(directory, "go.mod"))
		if err == nil && strings.Contains(string(content), "module "+modulePath+"\n") {
			return directory, nil
		}
		parent := filepath.Dir(directory)
		if parent == directory {
			return "", fmt.Errorf("no go.mod of %s above the working directory", modulePath)
		}
		directory = parent
	}
}

// tally counts what a test injected and checked, for its closing log line.
type tally struct {
	mu sync.Mutex
	// cuts: power cuts; flips: damaged bytes; truncations: cut files;
	// syncs: SYNCs checked; messages: received messages found again in a
	// SYNC; timelineChanges: rejoins that met a new timeline (each with an
	// ERROR line); closes: closes by the server, by code; refusals:
	// upgrades the server refused, by HTTP status.
	cuts, flips, truncations int
	syncs, messages          int
	timelineChanges          int
	closes, refusals         map[int]int
}

func (c *tally) add(field *int, n int) {
	c.mu.Lock()
	*field += n
	c.mu.Unlock()
}

func (c *tally) closed(code int) { c.count(&c.closes, code) }

func (c *tally) refused(status int) { c.count(&c.refusals, status) }

func (c *tally) count(counts *map[int]int, key int) {
	c.mu.Lock()
	if *counts == nil {
		*counts = map[int]int{}
	}
	(*counts)[key]++
	c.mu.Unlock()
}

// failedJoin counts a join the server refused or closed.
func (c *tally) failedJoin(err error) {
	var closed closeError
	var refused refusedError
	switch {
	case errors.As(err, &closed):
		c.closed(int(closed.code))
	case errors.As(err, &refused):
		c.refused(refused.status)
	}
}

func (c *tally) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("%d power cuts, %d byte flips, %d truncations; %d SYNCs checked holding %d received messages; %d timeline changes (each with an ERROR line); server closes by code %v; upgrades refused by HTTP status %v",
		c.cuts, c.flips, c.truncations, c.syncs, c.messages, c.timelineChanges, c.closes, c.refusals)
}
