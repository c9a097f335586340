// Package cluster runs real multi-process clusters of `metronome serve`
// (cluster mode: an embedded NATS JetStream per node, docs/cluster.md)
// with Go SDK clients (package client), and checks what a client of a
// cluster must be able to count on: every replica of a session holds the
// same events, none twice, each view's in the order it published them,
// while clients reach the session through any node (forwarded to its
// owner), while the owner is killed (another node takes the session over
// and restores it from the stream) and while the owner is frozen past its
// lease (it must stop stamping when it wakes: no split brain).
//
// The tests start three server processes each, so they skip under
// -short. See README.md.
package cluster

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Settings from the environment.
const (
	// raceServerVariable, when set, builds the server binary with -race
	// too (slow on two cores: the timings it logs mean little then).
	raceServerVariable = "METRONOME_CLUSTER_RACE_SERVER"
	// keepVariable, when set, prints every node's whole log at the end of
	// each test, passing or not.
	keepVariable = "METRONOME_CLUSTER_LOGS"
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

// skipShort skips a test that starts a cluster under -short.
func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a three-node cluster of metronome serve processes: skipped under -short")
	}
}

var build struct {
	once sync.Once
	path string
	err  error
}

// serverBinary builds ./cmd/metronome once per test process (the same
// helper as tests/faults).
func serverBinary(t *testing.T) string {
	t.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		buildDirectory, err = os.MkdirTemp("", "metronome-cluster-")
		if err != nil {
			build.err = err
			return
		}
		path := filepath.Join(buildDirectory, "metronome")
		args := []string{"build", "-o", path}
		if os.Getenv(raceServerVariable) != "" {
			args = append(args, "-race")
		}
		command := exec.Command("go", append(args, "./cmd/metronome")...)
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
