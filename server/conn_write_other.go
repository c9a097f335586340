//go:build !unix

package server

import "syscall"

// nonBlockingWriter is only implemented on Unix; elsewhere the writer
// goroutine writes everything.
type nonBlockingWriter struct{}

func (w *nonBlockingWriter) write(rawConn syscall.RawConn, data []byte) (int, error) { return 0, nil }
