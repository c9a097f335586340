//go:build unix

package main

import "syscall"

// openFilesLimit returns the process's limit of open files (the soft
// RLIMIT_NOFILE, which Go raises to the hard limit at start-up), or 0 if
// it cannot be read.
func openFilesLimit() uint64 {
	var limit syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &limit); err != nil {
		return 0
	}
	return limit.Cur
}
