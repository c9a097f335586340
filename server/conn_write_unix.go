//go:build unix

package server

import "syscall"

// writeNonBlocking writes as much of data as the socket takes without
// waiting (the descriptor is non-blocking, as every socket of Go's network
// poller). It returns how much was written; a full socket is not an error.
func writeNonBlocking(rawConn syscall.RawConn, data []byte) (written int, err error) {
	controlErr := rawConn.Write(func(fd uintptr) bool {
		for written < len(data) {
			n, writeErr := syscall.Write(int(fd), data[written:])
			switch {
			case writeErr == syscall.EINTR:
				continue
			case writeErr == syscall.EAGAIN:
				return true
			case writeErr != nil:
				err = writeErr
				return true
			case n <= 0:
				return true
			}
			written += n
		}
		return true // done: never wait for the socket here
	})
	if err == nil {
		err = controlErr
	}
	return written, err
}
