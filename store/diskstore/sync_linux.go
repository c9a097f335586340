package diskstore

import (
	"os"

	"golang.org/x/sys/unix"
)

const fileSystemSyncAvailable = true

// syncFileSystem flushes every dirty page and inode of the file system
// holding path and commits its journal (syncfs(2)).
func syncFileSystem(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	return syncCall(file, unix.Syncfs)
}

// fdatasync makes file's data (and the metadata needed to read it) durable.
func fdatasync(file *os.File) error { return syncCall(file, unix.Fdatasync) }

// syncCall runs a sync system call on file's descriptor, again when it is
// interrupted.
func syncCall(file *os.File, call func(fd int) error) error {
	raw, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var syncErr error
	if err := raw.Control(func(fd uintptr) {
		for {
			if syncErr = call(int(fd)); syncErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return syncErr
}
