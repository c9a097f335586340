package diskstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers of the durable benchmarks (durablecommit_linux_test.go,
// durablewrite_linux_test.go): a directory on a real disk and the block
// device's counters.

// benchDirectoryVariable names a directory for the durable benchmarks'
// files. It must be on the disk to measure: a tmpfs makes every sync free.
const benchDirectoryVariable = "METRONOME_BENCH_DIR"

// fileSystemNames names the file system types (statfs f_type) a benchmark
// may run on.
var fileSystemNames = map[int64]string{
	unix.EXT4_SUPER_MAGIC:      "ext4",
	unix.XFS_SUPER_MAGIC:       "xfs",
	unix.BTRFS_SUPER_MAGIC:     "btrfs",
	unix.TMPFS_MAGIC:           "tmpfs",
	unix.RAMFS_MAGIC:           "ramfs",
	unix.OVERLAYFS_SUPER_MAGIC: "overlayfs",
	unix.NFS_SUPER_MAGIC:       "nfs",
	unix.F2FS_SUPER_MAGIC:      "f2fs",
}

// fileSystemType names the type of the file system holding path.
func fileSystemType(path string) string {
	var stat unix.Statfs_t
	if err := unix.Statfs(path, &stat); err != nil {
		return "unknown (" + err.Error() + ")"
	}
	if name, ok := fileSystemNames[int64(stat.Type)]; ok {
		return name
	}
	return fmt.Sprintf("0x%x", stat.Type)
}

// inMemory reports whether a file system type keeps files in memory only.
func inMemory(fileSystem string) bool { return fileSystem == "tmpfs" || fileSystem == "ramfs" }

// benchLogged holds the parent directories whose file system was logged.
var benchLogged sync.Map

// benchDirectory returns a new directory for a durable benchmark, removed
// at its end: under $METRONOME_BENCH_DIR if set, else b.TempDir() unless
// that is in memory, else under the parent of the module's directory. It
// logs the file system type and block device once per process.
func benchDirectory(b *testing.B) string {
	b.Helper()
	var parent string
	if root := os.Getenv(benchDirectoryVariable); root != "" {
		parent = root
	} else if directory := b.TempDir(); !inMemory(fileSystemType(directory)) {
		return logBenchDirectory(b, os.TempDir(), directory)
	} else {
		parent = moduleParent()
	}
	directory, err := os.MkdirTemp(parent, "metronome-bench-*")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(directory) })
	return logBenchDirectory(b, parent, directory)
}

func logBenchDirectory(b *testing.B, parent, directory string) string {
	fileSystem := fileSystemType(directory)
	device, _ := blockDevice(directory)
	if _, logged := benchLogged.LoadOrStore(parent, true); !logged {
		b.Logf("durable benchmark files under %s: file system %s, block device %s", parent, fileSystem, device)
	}
	if inMemory(fileSystem) {
		b.Logf("warning: %s is %s, syncs cost nothing; set %s to a directory on a disk", directory, fileSystem, benchDirectoryVariable)
	}
	return directory
}

// moduleParent is the parent of the directory holding go.mod above the
// working directory (the package's directory under go test), else the
// working directory.
func moduleParent() string {
	working, err := os.Getwd()
	if err != nil {
		return "."
	}
	for directory := working; ; {
		if _, err := os.Stat(filepath.Join(directory, "go.mod")); err == nil {
			return filepath.Dir(directory)
		}
		parent := filepath.Dir(directory)
		if parent == directory {
			return working
		}
		directory = parent
	}
}

// blockDevice returns the sysfs directory of the block device holding path
// (/sys/dev/block/MAJOR:MINOR, resolved) and its name.
func blockDevice(path string) (name string, sysfs string) {
	var stat unix.Stat_t
	if err := unix.Stat(path, &stat); err != nil {
		return "unknown", ""
	}
	link := fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(stat.Dev), unix.Minor(stat.Dev))
	resolved, err := filepath.EvalSymlinks(link)
	if err != nil {
		return fmt.Sprintf("%d:%d (no sysfs entry)", unix.Major(stat.Dev), unix.Minor(stat.Dev)), ""
	}
	return filepath.Base(resolved), resolved
}

// deviceCounters are cumulative counters of a block device
// (Documentation/block/stat.rst): requests completed. A partition's
// flushes are counted on its disk, so the disk's counters are read.
type deviceCounters struct {
	writes, flushes uint64
	ok              bool
}

// readDeviceCounters reads the counters of the disk holding path; ok is
// false when they are not available (no sysfs entry, or a kernel older than
// 5.5 without flush counters).
func readDeviceCounters(path string) deviceCounters {
	_, sysfs := blockDevice(path)
	if sysfs == "" {
		return deviceCounters{}
	}
	content, err := os.ReadFile(filepath.Join(sysfs, "stat"))
	if _, statErr := os.Stat(filepath.Join(sysfs, "partition")); statErr == nil {
		content, err = os.ReadFile(filepath.Join(filepath.Dir(sysfs), "stat"))
	}
	if err != nil {
		return deviceCounters{}
	}
	fields := strings.Fields(string(content))
	if len(fields) < 17 {
		return deviceCounters{}
	}
	writes, _ := strconv.ParseUint(fields[4], 10, 64)
	flushes, _ := strconv.ParseUint(fields[15], 10, 64)
	return deviceCounters{writes: writes, flushes: flushes, ok: true}
}

// reportDevice reports the device's write requests and flushes per op
// since before (the whole disk: other processes' I/O counts too).
func reportDevice(b *testing.B, path string, before deviceCounters, ops int) {
	after := readDeviceCounters(path)
	if !before.ok || !after.ok || ops == 0 {
		return
	}
	b.ReportMetric(float64(after.flushes-before.flushes)/float64(ops), "flushes/op")
	b.ReportMetric(float64(after.writes-before.writes)/float64(ops), "devwrites/op")
}
