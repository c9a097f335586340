//go:build simbugs

package reflector

import "fmt"

// bugsBuilt is true only in builds with -tags simbugs: see bugSwitches.
const bugsBuilt = true

// BugNames lists the bugs InjectBug can switch on.
var BugNames = []string{"sync-not-atomic", "seq-before-validation", "time-backwards-after-restart"}

// InjectBug switches on a known bug in sessions created with config. For
// the simulator's self-test only; it exists only with -tags simbugs.
func InjectBug(config *Config, name string) error {
	switch name {
	case "sync-not-atomic":
		config.bugs.syncNotAtomic = true
	case "seq-before-validation":
		config.bugs.seqBeforeValidation = true
	case "time-backwards-after-restart":
		config.bugs.timeBackwardsAfterRestart = true
	default:
		return fmt.Errorf("reflector: unknown bug %q (known: %v)", name, BugNames)
	}
	return nil
}
