//go:build simbugs

package host

import "fmt"

// BugNames lists the bugs InjectBug can switch on.
var BugNames = []string{"send-before-commit", "raw-pointer"}

// InjectBug switches on a known bug in sessions opened with options. For
// the simulator's self-test only; it exists only with -tags simbugs.
func InjectBug(options *Options, name string) error {
	switch name {
	case "send-before-commit":
		options.bugs.sendBeforeCommit = true
	case "raw-pointer":
		options.bugs.rawPointer = true
	default:
		return fmt.Errorf("host: unknown bug %q (known: %v)", name, BugNames)
	}
	return nil
}
