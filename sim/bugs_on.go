//go:build simbugs

package sim

import (
	"slices"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/reflector"
)

// BugNoFence makes the cluster's JetStream model accept every append,
// whatever the last sequence it expects (cluster mode): a deposed owner's
// batch is stored behind its successor's back.
const BugNoFence = "no-fence"

// ReflectorBugs lists the bugs of the production code this build can
// re-introduce: the core's (reflector.BugNames) and the host's
// (host.BugNames); and the JetStream model's fencing (BugNoFence), which
// the cluster's rules rely on.
var ReflectorBugs = slices.Concat(reflector.BugNames, host.BugNames, []string{BugNoFence})

// bugNoFence reports whether the run's bug is BugNoFence.
func bugNoFence(name string) bool { return name == BugNoFence }

func injectBug(options *host.Options, deletions *host.Deletions, name string) error {
	if name == BugNoFence {
		return nil // the JetStream model's (cluster.go)
	}
	if slices.Contains(reflector.BugNames, name) {
		return reflector.InjectBug(&options.Config, name)
	}
	return host.InjectBug(options, deletions, name)
}
