package host

// bugSwitches re-introduce known classes of shell bugs, so that the
// simulator's self-test (package sim, built with -tags simbugs) can prove it
// finds them in the one host every shell runs. In a normal build InjectBug
// does not exist and the switches stay false.
type bugSwitches struct {
	// sendBeforeCommit: frames are handed to the connections before the
	// batch's Commit returns, so a failed commit leaves clients holding
	// messages that were never stored (and are stamped again, differently).
	sendBeforeCommit bool
	// rawPointer: a persisted-data pointer is passed to the core as stored
	// ({"url": ...}) instead of decoded, so a SYNC names a file that does
	// not exist.
	rawPointer bool
	// loadErrorAsDamage: a session whose store cannot be read (an I/O
	// error, a full disk) is started fresh on a new timeline as if its
	// data were damaged, although the data is still stored.
	loadErrorAsDamage bool
	// deleteInMemory (Deletions): the retention sweep deletes the storage
	// of a session the shell has in memory.
	deleteInMemory bool
	// openWhileDeleting (Deletions): a connection for a session being
	// deleted opens it instead of being refused.
	openWhileDeleting bool
}
