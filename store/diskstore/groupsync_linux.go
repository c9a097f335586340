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
