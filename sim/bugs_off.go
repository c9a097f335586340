//go:build !simbugs

package sim

import (
	"fmt"

	"github.com/metronome-sync/metronome/reflector"
)

// ReflectorBugs lists the reflector bugs this build can re-introduce: none
// (build with -tags simbugs).
var ReflectorBugs []string

func injectReflectorBug(*reflector.Config, string) error {
	return fmt.Errorf("unknown bug; only %q is available without -tags simbugs", BugLostDurableWrite)
}
