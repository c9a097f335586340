//go:build simbugs

package host

import "fmt"

// BugNames lists the bugs InjectBug can switch on.
var BugNames = []string{"send-before-commit", "raw-pointer", "load-error-as-damage", "delete-in-memory", "open-while-deleting"}

// InjectBug switches on a known bug in sessions opened with options and in
// deletions (the retention bugs: deletions is then required). For the
// simulator's self-test only; it exists only with -tags simbugs.
func InjectBug(options *Options, deletions *Deletions, name string) error {
	switch name {
	case "send-before-commit":
		options.bugs.sendBeforeCommit = true
	case "raw-pointer":
		options.bugs.rawPointer = true
	case "load-error-as-damage":
		options.bugs.loadErrorAsDamage = true
	case "delete-in-memory":
		deletions.bugs.deleteInMemory = true
	case "open-while-deleting":
		deletions.bugs.openWhileDeleting = true
	default:
		return fmt.Errorf("host: unknown bug %q (known: %v)", name, BugNames)
	}
	return nil
}
