//go:build simbugs

package sim

import (
	"slices"
	"testing"
)

// bugSeedsMax bounds how many seeds the simulator may need to find each
// re-introduced bug.
const bugSeedsMax = 200

// TestSimFindsKnownBugs re-introduces known classes of bugs through the
// test-only hooks (reflector.InjectBug, host.InjectBug and the simulated
// disk) and checks
// that the simulator reports each within bugSeedsMax seeds, as a violation
// of the invariant the bug breaks. Run with: go test -tags simbugs ./sim
func TestSimFindsKnownBugs(t *testing.T) {
	want := map[string][]string{
		BugLostDurableWrite:            {InvariantOrder, InvariantTime},
		"sync-not-atomic":              {InvariantOrder},
		"seq-before-validation":        {InvariantOrder},
		"time-backwards-after-restart": {InvariantTime},
		BugNoInputDedup:                {InvariantExactlyOnce},
		// Joiners skip a message; or, when the announced seq is not stamped
		// yet, the reflector ignores every snapshot and a small buffer
		// fills for good.
		BugSnapshotWrongSeq: {InvariantJoin, InvariantLiveness},
		// A replaced snapshot deleted at once: a SYNC sent just before the
		// SNAP names a file that is gone.
		BugSnapshotKeepNone: {InvariantJoin},
		// Speculated inputs leak into the confirmed state: a speculative
		// replica's hash differs from the others' at the same position.
		BugSpeculationLeak: {InvariantConvergence, InvariantExactlyOnce},
		// Bugs of the one host the server and the simulator share.
		"send-before-commit": {InvariantOrder},
		"raw-pointer":        {InvariantJoin},
		// A new timeline beside data still stored: the checker accepts a
		// timeline change only where the store really lost data.
		"load-error-as-damage": {InvariantOrder},
		// Retention racing a rejoin: the storage of a session in memory
		// is deleted (directly, or after a connection opened it while it
		// was being deleted).
		"delete-in-memory":    {InvariantOrder},
		"open-while-deleting": {InvariantOrder},
		// Cluster mode: a deposed owner's append is stored behind its
		// successor's back (a paused node wakes and flushes, a write
		// delayed by a cut from JetStream arrives).
		BugNoFence: {InvariantSingleWriter},
	}
	for _, bug := range append(slices.Clone(SimulatorBugs), ReflectorBugs...) {
		t.Run(bug, func(t *testing.T) {
			for seed := uint64(1); seed <= bugSeedsMax; seed++ {
				result := Run(Options{Seed: seed, Bug: bug})
				if result.Violation == nil {
					continue
				}
				if !slices.Contains(want[bug], result.Violation.Invariant) {
					t.Fatalf("seed %d found %q as a violation of %s, want one of %v:\n%s", seed, bug, result.Violation.Invariant, want[bug], report(result))
				}
				t.Logf("found by seed %d: %s", seed, result.Violation.Error())
				return
			}
			t.Fatalf("%d seeds did not find bug %q", bugSeedsMax, bug)
		})
	}
}

// TestSimWithoutBugsIsClean runs the same seeds without a bug, so the
// violations above are the bugs' doing.
func TestSimWithoutBugsIsClean(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		if result := Run(Options{Seed: seed}); result.Violation != nil {
			t.Fatal(report(result))
		}
	}
}
