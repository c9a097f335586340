//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd)

package diskstore

import (
	"errors"
	"os"
)

// directoryLockAvailable reports whether Open locks the data directory: not
// on this system, which has no flock(2). Nothing stops two Stores from
// using one data directory here.
const directoryLockAvailable = false

// tryLockFile is never called where directoryLockAvailable is false.
func tryLockFile(file *os.File) (locked bool, err error) {
	return false, errors.New("diskstore: no file locking on this system")
}
