//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package diskstore

import (
	"os"

	"golang.org/x/sys/unix"
)

// directoryLockAvailable reports whether Open locks the data directory.
const directoryLockAvailable = true

// tryLockFile takes an exclusive flock(2) of file without waiting. It
// reports false if another open file description holds a lock of the file
// (in this process or another one).
func tryLockFile(file *os.File) (locked bool, err error) {
	raw, err := file.SyscallConn()
	if err != nil {
		return false, err
	}
	var lockErr error
	if err := raw.Control(func(fd uintptr) {
		for {
			if lockErr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB); lockErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return false, err
	}
	if lockErr == unix.EWOULDBLOCK {
		return false, nil
	}
	return lockErr == nil, lockErr
}
