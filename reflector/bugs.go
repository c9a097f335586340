package reflector

// bugSwitches re-introduce known classes of reflector bugs, so that the
// simulator's self-test (package sim, built with -tags simbugs) can prove it
// finds them. In a normal build bugsBuilt is the constant false and every
// switch compiles away; InjectBug exists only with the simbugs tag.
type bugSwitches struct {
	// syncNotAtomic: a joining client enters the broadcast set only at the
	// next timer wake after its SYNC, so messages stamped in between are
	// neither in its SYNC nor sent to it (breaks docs/protocol.md §17 MUST 5).
	syncNotAtomic bool
	// seqBeforeValidation: a SEND takes a sequence number before its
	// message array is validated, so a rejected SEND leaves a gap (the
	// reference reflector's quirk Q11).
	seqBeforeValidation bool
	// timeBackwardsAfterRestart: Restore resumes at the last stored time
	// instead of the time lease, so ticks sent before a crash can be ahead
	// of the time after it.
	timeBackwardsAfterRestart bool
}
