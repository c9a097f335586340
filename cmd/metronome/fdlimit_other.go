//go:build !unix

package main

// openFilesLimit returns 0: the limit is not known here.
func openFilesLimit() uint64 { return 0 }
