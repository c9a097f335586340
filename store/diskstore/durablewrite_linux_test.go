package diskstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkDurableWrite measures one durable write of a journal-like file,
// one at a time, by how it is made durable and by what the file is:
//
//	write=fdatasync  pwrite(2) then fdatasync(2), as the journal does
//	write=rwf_dsync  one pwritev2(2) with RWF_DSYNC
//	write=o_dsync    pwrite(2) to a file opened with O_DSYNC
//	write=o_direct_dsync  the same with O_DIRECT as well (bypasses the
//	                 page cache; aligned 4 KiB buffers)
//
//	file=append      a file that grows with every write (i_size and new
//	                 blocks: a file-system journal commit per sync), as
//	                 the journal's files do
//	file=fallocated  fallocate(2)d to its full size first: the blocks are
//	                 allocated but unwritten, so the first write of each
//	                 converts its extent (still metadata per sync)
//	file=zeroed      written with zeros and synced first: overwriting it
//	                 changes no metadata the sync must carry
//
// Each write goes to the next offset (the preallocated files wrap around
// at their size). Metrics: p50-µs and p99-µs per durable write; flushes/op
// and devwrites/op are the disk's cache flushes and completed write
// requests per write (whole disk: other I/O on the machine counts too).
func BenchmarkDurableWrite(b *testing.B) {
	cases := []struct {
		file, write string
		size        int
	}{
		{"append", "fdatasync", 4096},
		{"append", "rwf_dsync", 4096},
		{"append", "o_dsync", 4096},
		{"append", "fdatasync", 256},
		{"fallocated", "fdatasync", 4096},
		{"fallocated", "rwf_dsync", 4096},
		{"fallocated", "o_dsync", 4096},
		{"zeroed", "fdatasync", 4096},
		{"zeroed", "rwf_dsync", 4096},
		{"zeroed", "o_dsync", 4096},
		{"zeroed", "o_direct_dsync", 4096},
		{"zeroed", "fdatasync", 256},
	}
	for _, test := range cases {
		b.Run(fmt.Sprintf("file=%s/write=%s/size=%d", test.file, test.write, test.size), func(b *testing.B) {
			benchmarkDurableWrite(b, test.file, test.write, test.size)
		})
	}
}

// Sizes of the preallocated files: enough for a few seconds of writes;
// longer runs wrap around.
const (
	fallocatedBytesMax = 256 << 20
	zeroedBytesMax     = 64 << 20
)

func benchmarkDurableWrite(b *testing.B, file, write string, size int) {
	directory := benchDirectory(b)
	path := filepath.Join(directory, "journal.log")
	span := int64(b.N) * int64(size)
	switch file {
	case "fallocated":
		span = min(max(span, 1<<20), fallocatedBytesMax)
	case "zeroed":
		span = min(max(span, 1<<20), zeroedBytesMax)
	}
	prepareDurableWriteFile(b, path, directory, file, span)

	flags := unix.O_WRONLY | unix.O_CLOEXEC
	switch write {
	case "o_dsync":
		flags |= unix.O_DSYNC
	case "o_direct_dsync":
		flags |= unix.O_DSYNC | unix.O_DIRECT
	}
	fd, err := unix.Open(path, flags, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	// Page-aligned, as O_DIRECT needs.
	mapped, err := unix.Mmap(-1, 0, 4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Munmap(mapped)
	buffer := mapped[:size]
	for i := range buffer {
		buffer[i] = byte('a' + i%26)
	}
	iovecs := [][]byte{buffer}

	latencies := make([]time.Duration, 0, b.N)
	before := readDeviceCounters(directory)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for i := range b.N {
		offset := int64(i) * int64(size)
		if file != "append" {
			offset %= span
		}
		started := time.Now()
		var n int
		var err error
		switch write {
		case "fdatasync":
			n, err = unix.Pwrite(fd, buffer, offset)
			if err == nil {
				err = retryInterrupted(func() error { return unix.Fdatasync(fd) })
			}
		case "rwf_dsync":
			n, err = unix.Pwritev2(fd, iovecs, offset, unix.RWF_DSYNC)
			if errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EOPNOTSUPP) {
				b.Skipf("pwritev2 with RWF_DSYNC: %v", err)
			}
		default:
			n, err = unix.Pwrite(fd, buffer, offset)
		}
		latencies = append(latencies, time.Since(started))
		if err == nil && n != size {
			err = fmt.Errorf("wrote %d bytes of %d", n, size)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportDevice(b, directory, before, b.N)
	slices.Sort(latencies)
	reportPercentiles(b, latencies, "", false)
}

// prepareDurableWriteFile creates the file at path, durably (file and
// directory entry), of span bytes unless file is "append".
func prepareDurableWriteFile(b *testing.B, path, directory, file string, span int64) {
	fd, err := unix.Open(path, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer unix.Close(fd)
	switch file {
	case "fallocated":
		err = unix.Fallocate(fd, 0, 0, span)
	case "zeroed":
		zeros := make([]byte, 1<<20)
		for offset := int64(0); offset < span && err == nil; offset += int64(len(zeros)) {
			_, err = unix.Pwrite(fd, zeros[:min(int64(len(zeros)), span-offset)], offset)
		}
	}
	if err == nil {
		err = unix.Fsync(fd)
	}
	if err == nil {
		var dir int
		if dir, err = unix.Open(directory, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
			err = unix.Fsync(dir)
			unix.Close(dir)
		}
	}
	if err != nil {
		b.Fatalf("preparing the %s file: %v", file, err)
	}
}

// retryInterrupted calls call again while it fails with EINTR.
func retryInterrupted(call func() error) error {
	for {
		if err := call(); err != unix.EINTR {
			return err
		}
	}
}
