package archtest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/metronome-sync/metronome"

// forbidden lists, per package, the imports it must not have. A prefix ending in "/" matches every package below it.
var forbidden = map[string][]string{
	"protocol":  {module + "/"},
	"reflector": append(pureCore, module+"/store", module+"/server"),
	// The client's connection machine is pure too, and knows nothing of
	// the reflector's side.
	"client/link": append(pureCore, module+"/reflector", module+"/store", module+"/server", module+"/sim"),
	// The client's replica host is as pure as the machines it drives.
	"client/replica": append(pureCore, module+"/reflector", module+"/store", module+"/server", module+"/sim", module+"/host"),
	// The model runtime is pure as well: replicas must compute alike.
	"client/island": append(pureCore, module+"/reflector", module+"/store", module+"/server", module+"/sim"),
	// The simulator runs the pure cores under a simulated clock, network
	// and disk: no real I/O, time, randomness or goroutines.
	"sim": append(pureCore, module+"/server", module+"/store/diskstore", module+"/store/memstore"),
	// The one session host is as pure as the core it drives; stores and
	// transports come in through its interfaces.
	"host": append(pureCore, module+"/server", module+"/sim", module+"/store/diskstore", module+"/store/memstore"),
	// The server is a shell: the command chooses and opens the store.
	"server":    {module + "/store/diskstore", module + "/store/memstore", module + "/sim"},
	"store":     {module + "/server", module + "/reflector"},
	"store/...": {module + "/server"},
}

// pureCore is what a pure state machine must not import: I/O, clocks,
// randomness, concurrency, logging.
var pureCore = []string{
	"net", "net/", "os", "os/", "time", "sync", "sync/", "math/rand", "math/rand/", "crypto/rand",
	"log", "log/", "io/fs", "syscall",
}

type listedPackage struct {
	ImportPath string
	Deps       []string
	Imports    []string
}

func TestImportBoundaries(t *testing.T) {
	for pattern, rules := range forbidden {
		output, err := exec.Command("go", "list", "-json", module+"/"+pattern).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pattern, err)
		}
		decoder := json.NewDecoder(strings.NewReader(string(output)))
		for decoder.More() {
			var pkg listedPackage
			if err := decoder.Decode(&pkg); err != nil {
				t.Fatal(err)
			}
			for _, rule := range rules {
				// Standard-library rules apply to direct imports (fmt itself
				// imports os); rules on our own packages apply transitively.
				dependencies := pkg.Imports
				if strings.HasPrefix(rule, module) {
					dependencies = pkg.Deps
				}
				for _, dependency := range dependencies {
					if matches(dependency, rule) && !allowed(pkg.ImportPath, dependency) {
						t.Errorf("%s depends on %s, which its boundary forbids (%q)", pkg.ImportPath, dependency, rule)
					}
				}
			}
		}
	}
}

func matches(dependency, rule string) bool {
	if strings.HasSuffix(rule, "/") {
		return strings.HasPrefix(dependency, rule)
	}
	return dependency == rule
}

// allowed lists dependencies that are forbidden by a prefix rule but fine:
// protocol is the one package of ours the others may use freely.
func allowed(importPath, dependency string) bool {
	return dependency == module+"/protocol" && importPath != module+"/protocol"
}

// TestCoreHasNoGoroutines checks the pure packages' source for "go "
// statements and channel operations, which the dependency list cannot see.
func TestCoreHasNoGoroutines(t *testing.T) {
	for _, pkg := range []string{"reflector", "client/link", "client/island", "client/replica", "sim", "host"} {
		output, err := exec.Command("go", "list", "-f", "{{.Dir}}", module+"/"+pkg).Output()
		if err != nil {
			t.Fatal(err)
		}
		dir := strings.TrimSpace(string(output))
		grep := exec.Command("grep", "-rnE", `(^|[^a-zA-Z_])go (func|[a-zA-Z_]+\()|chan |<-|select \{`, "--include=*.go", "--exclude=*_test.go", dir)
		found, _ := grep.Output()
		if len(found) > 0 {
			t.Errorf("%s must not use goroutines or channels:\n%s", pkg, found)
		}
	}
}
