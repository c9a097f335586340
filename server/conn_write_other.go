//go:build !unix

package server

import "syscall"

// writeNonBlocking is only implemented on Unix; elsewhere the writer
// goroutine writes everything.
func writeNonBlocking(rawConn syscall.RawConn, data []byte) (int, error) { return 0, nil }
