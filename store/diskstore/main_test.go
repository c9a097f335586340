package diskstore

import (
	"os"
	"testing"
)

// TestMain turns the preparing of journal files off: most tests count
// journal files. TestPreallocatedJournal turns it on.
func TestMain(m *testing.M) {
	journalPreallocateBytes = 0
	os.Exit(m.Run())
}
