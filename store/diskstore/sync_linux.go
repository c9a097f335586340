package diskstore

import (
	"os"

	"golang.org/x/sys/unix"
)

const fileSystemSyncAvailable = true

// syncFileSystem flushes every dirty page and inode of file's file system
// and commits its journal (syncfs(2)).
func syncFileSystem(file *os.File) error {
	raw, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var syncErr error
	if err := raw.Control(func(fd uintptr) { syncErr = unix.Syncfs(int(fd)) }); err != nil {
		return err
	}
	return syncErr
}

// fdatasync makes file's data (and the metadata needed to read it) durable.
func fdatasync(file *os.File) error {
	raw, err := file.SyscallConn()
	if err != nil {
		return err
	}
	var syncErr error
	if err := raw.Control(func(fd uintptr) {
		for {
			syncErr = unix.Fdatasync(int(fd))
			if syncErr != unix.EINTR {
				return
			}
		}
	}); err != nil {
		return err
	}
	return syncErr
}

// syncFileSystemOf syncs the file system holding path (syncfs(2)).
func syncFileSystemOf(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	return syncFileSystem(file)
}
