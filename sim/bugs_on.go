//go:build simbugs

package sim

import (
	"slices"

	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/reflector"
)

// ReflectorBugs lists the bugs of the production code this build can
// re-introduce: the core's (reflector.BugNames) and the host's
// (host.BugNames).
var ReflectorBugs = slices.Concat(reflector.BugNames, host.BugNames)

func injectBug(options *host.Options, deletions *host.Deletions, name string) error {
	if slices.Contains(reflector.BugNames, name) {
		return reflector.InjectBug(&options.Config, name)
	}
	return host.InjectBug(options, deletions, name)
}
