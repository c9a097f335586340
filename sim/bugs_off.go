//go:build !simbugs

package sim

import (
	"fmt"

	"github.com/metronome-sync/metronome/host"
)

// ReflectorBugs lists the reflector and host bugs this build can
// re-introduce: none (build with -tags simbugs).
var ReflectorBugs []string

// bugNoFence: the JetStream model's fencing bug exists only with -tags
// simbugs.
func bugNoFence(string) bool { return false }

func injectBug(*host.Options, *host.Deletions, string) error {
	return fmt.Errorf("unknown bug; only %v are available without -tags simbugs", SimulatorBugs)
}
