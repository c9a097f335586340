//go:build !linux

package diskstore

import (
	"errors"
	"os"
)

const fileSystemSyncAvailable = false

// fdatasync is fsync where fdatasync is not used (the journal is Linux-only).
func fdatasync(file *os.File) error { return file.Sync() }

// syncFileSystem cannot sync a whole file system here; the journal, which
// needs it, is only used on Linux.
func syncFileSystem(path string) error {
	return errors.New("diskstore: a journal left by a Linux run cannot be replayed on this system")
}
