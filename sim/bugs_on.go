//go:build simbugs

package sim

import "github.com/metronome-sync/metronome/reflector"

// ReflectorBugs lists the reflector bugs this build can re-introduce.
var ReflectorBugs = reflector.BugNames

func injectReflectorBug(config *reflector.Config, name string) error {
	return reflector.InjectBug(config, name)
}
