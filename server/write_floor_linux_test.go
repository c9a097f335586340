package server

import (
	"fmt"
	"net"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// BenchmarkLoopbackWriteFloor measures what the kernel charges the writer
// for one small write(2) to a loopback TCP socket: the floor under the
// server's CPU per delivered frame when every frame is its own write (a
// TICK to an idle client always is). The writer is locked to its thread
// and reports its own CPU time (getrusage RUSAGE_THREAD: user + system) per
// write as cpu-ns/write, for 1,000 sockets written round robin and drained
// by reader goroutines, and for 1, 4 and 16 frames per write.
func BenchmarkLoopbackWriteFloor(b *testing.B) {
	const sockets = 1000
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer listener.Close()
	servers := make([]*net.TCPConn, 0, sockets)
	var readers sync.WaitGroup
	var clients []net.Conn
	for range sockets {
		client, err := net.Dial("tcp", listener.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		server, err := listener.Accept()
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, client)
		servers = append(servers, server.(*net.TCPConn))
		readers.Go(func() {
			buffer := make([]byte, 4096)
			for {
				if _, err := client.Read(buffer); err != nil {
					return
				}
			}
		})
	}
	defer func() {
		for i := range servers {
			servers[i].Close()
			clients[i].Close()
		}
		readers.Wait()
	}()
	fds := make([]int, sockets)
	for i, server := range servers {
		raw, err := server.SyscallConn()
		if err != nil {
			b.Fatal(err)
		}
		raw.Control(func(fd uintptr) { fds[i] = int(fd) })
	}
	frame := make([]byte, 0, 16*64)
	for _, perWrite := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("frames=%d", perWrite), func(b *testing.B) {
			data := frame[:0]
			for range perWrite {
				data = appendFrameHeader(data, 1, 40)
				data = append(data, `{"id":"abcdefgh","action":"TICK","args":1}`[:40]...)
			}
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var before, after syscall.Rusage
			b.ResetTimer()
			syscall.Getrusage(syscall.RUSAGE_THREAD, &before)
			for i := range b.N {
				// A full socket (EAGAIN) is skipped: the reader is behind.
				syscall.Write(fds[i%sockets], data)
			}
			syscall.Getrusage(syscall.RUSAGE_THREAD, &after)
			b.StopTimer()
			cpu := syscall.TimevalToNsec(after.Utime) - syscall.TimevalToNsec(before.Utime) +
				syscall.TimevalToNsec(after.Stime) - syscall.TimevalToNsec(before.Stime)
			b.ReportMetric(float64(cpu)/float64(b.N), "cpu-ns/write")
			b.ReportMetric(float64(cpu)/float64(b.N*perWrite), "cpu-ns/frame")
		})
	}
}
