//go:build unix

package server

import "syscall"

// nonBlockingWriter writes as much of data as the socket takes without
// waiting (the descriptor is non-blocking, as every socket of Go's network
// poller). Its function for RawConn.Write is made once per connection: a
// closure over one call's variables would be a heap allocation per write.
type nonBlockingWriter struct {
	data    []byte
	written int
	err     error
	writeFD func(fd uintptr) bool
}

// write returns how much of data was written; a full socket is not an
// error. One goroutine at a time (the connection's writer) may call it.
func (w *nonBlockingWriter) write(rawConn syscall.RawConn, data []byte) (int, error) {
	if w.writeFD == nil {
		w.writeFD = w.writeTo
	}
	w.data, w.written, w.err = data, 0, nil
	controlErr := rawConn.Write(w.writeFD)
	written, err := w.written, w.err
	w.data, w.err = nil, nil
	if err == nil {
		err = controlErr
	}
	return written, err
}

func (w *nonBlockingWriter) writeTo(fd uintptr) bool {
	for w.written < len(w.data) {
		n, err := syscall.Write(int(fd), w.data[w.written:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			w.err = err
			return true
		case n <= 0:
			return true
		}
		w.written += n
	}
	return true // done: never wait for the socket here
}
