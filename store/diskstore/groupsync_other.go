//go:build !linux

package diskstore

import "os"

const fileSystemSyncAvailable = false

func syncFileSystem(file *os.File) error { return file.Sync() }
