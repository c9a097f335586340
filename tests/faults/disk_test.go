package faults

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// disk is an ext4 file system in an image file, attached to a loop device
// and mounted. A power cut replaces the image by a copy of what reached
// the loop device (powerCut), and the copy is mounted in its place.
type disk struct {
	t         *testing.T
	directory string
	image     string
	device    string // /dev/loopN while attached
	mountPath string
	mounted   bool
	copies    int
}

// Image sizes.
const (
	// imageBytes holds the journal's prepared files (36 MiB each, see
	// store/diskstore/journal.go) with room to spare.
	imageBytes = 256 << 20
	// smallImageBytes is the image the full-disk test fills: smaller than
	// one prepared journal file.
	smallImageBytes = 16 << 20
)

// newDisk makes and mounts a fresh ext4 image of sizeBytes (sparse).
// Without reserved blocks (-m 0), so that the server, which runs as root,
// meets the same full disk as the filler.
func newDisk(t *testing.T, sizeBytes int64) *disk {
	t.Helper()
	d := &disk{t: t, directory: t.TempDir()}
	d.mountPath = filepath.Join(d.directory, "mnt")
	d.image = filepath.Join(d.directory, "disk-0.img")
	if err := os.Mkdir(d.mountPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(createFile(t, d.image), sizeBytes); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.ext4", "-q", "-F", "-m", "0", d.image)
	t.Cleanup(func() {
		d.detach()
		d.keepIfFailed()
	})
	d.attach()
	return d
}

// keepIfFailed moves the image of a failed test out of the test's
// temporary directory, for a post-mortem, and says where.
func (d *disk) keepIfFailed() {
	if d.t.Failed() {
		d.keep(d.image, "the image as the test left it")
	}
}

// keep moves an image out of the test's temporary directory and says
// where. The copy turns runs of zeros (the prepared journal files) into
// holes, so that kept images stay small.
func (d *disk) keep(image, what string) {
	directory, err := os.MkdirTemp("", "metronome-faults-image-")
	kept := filepath.Join(directory, filepath.Base(image))
	if err == nil {
		_, err = runErr("cp", "--sparse=always", image, kept)
	}
	if err != nil {
		d.t.Logf("keeping %s: %v", image, err)
		return
	}
	os.Remove(image)
	d.t.Logf("%s: %s (mount a copy with: mount -o loop COPY /mnt)", what, kept)
}

// pristineCopy copies an image that powerCut made before a server
// changes it, so that a failure can be examined on the disk exactly as
// the cut left it.
func (d *disk) pristineCopy(image string) string {
	d.t.Helper()
	pristine := strings.TrimSuffix(image, ".img") + "-as-cut.img"
	run(d.t, "cp", "--sparse=always", image, pristine)
	return pristine
}

func createFile(t *testing.T, path string) string {
	t.Helper()
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	file.Close()
	return path
}

// dataDirectory is the server's --data-dir on the mounted file system.
func (d *disk) dataDirectory() string { return filepath.Join(d.mountPath, "data") }

// attach attaches the image to a loop device and mounts it.
func (d *disk) attach() {
	d.t.Helper()
	d.device = strings.TrimSpace(run(d.t, "losetup", "--find", "--show", d.image))
	run(d.t, "mount", "-t", "ext4", d.device, d.mountPath)
	d.mounted = true
}

// detach unmounts the file system and frees the loop device. The server
// must not be running.
func (d *disk) detach() {
	d.t.Helper()
	if d.mounted {
		if _, err := runErr("umount", d.mountPath); err != nil {
			d.t.Errorf("umount %s: %v", d.mountPath, err)
			runErr("umount", "-l", d.mountPath)
		}
		d.mounted = false
	}
	if d.device != "" {
		if _, err := runErr("losetup", "-d", d.device); err != nil {
			d.t.Errorf("losetup -d %s: %v", d.device, err)
		}
		d.device = ""
	}
}

// powerCut copies the image as the disk holds it now, while the server is
// stopped (SIGSTOP): what ext4 had not yet written to the loop device,
// the server's unsynced writes among it, is not in the copy. The kernel
// keeps writing back while the copy runs, so the copy is taken again
// until no write reached the loop device during it: then it is the disk
// at one instant, as a power cut leaves it. It returns the copy's path.
func (d *disk) powerCut() string {
	d.t.Helper()
	for attempt := 1; ; attempt++ {
		d.copies++
		target := filepath.Join(d.directory, fmt.Sprintf("disk-%d.img", d.copies))
		before := d.writeCounters()
		run(d.t, "cp", "--sparse=always", d.image, target)
		after := d.writeCounters()
		if before == after && !before.busy() {
			return target
		}
		os.Remove(target)
		if attempt == powerCutCopyAttempts {
			d.t.Fatalf("the loop device %s kept writing during %d copies of the image (%v, then %v)", d.device, attempt, before, after)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// powerCutCopyAttempts bounds the copies powerCut takes.
const powerCutCopyAttempts = 50

// switchTo unmounts the current image (the server must be dead), discards
// it and mounts image, a copy that powerCut made, in its place.
func (d *disk) switchTo(image string) {
	d.t.Helper()
	d.detach()
	if err := os.Remove(d.image); err != nil {
		d.t.Fatal(err)
	}
	d.image = image
	d.attach()
}

// loopCounters are the loop device's counts of requests that change the
// image: writes, discards, flushes, and the requests in flight.
type loopCounters struct {
	writes, discards, flushes, inFlight string
}

func (c loopCounters) busy() bool { return c.inFlight != "0" }

// writeCounters reads /sys/block/loopN/stat (fields as documented for
// the block layer's stat file: 5 writes, 9 in flight, 12 discards,
// 16 flushes).
func (d *disk) writeCounters() loopCounters {
	d.t.Helper()
	content, err := os.ReadFile(filepath.Join("/sys/block", filepath.Base(d.device), "stat"))
	if err != nil {
		d.t.Fatal(err)
	}
	fields := strings.Fields(string(content))
	field := func(number int) string {
		if number > len(fields) {
			return "-"
		}
		return fields[number-1]
	}
	return loopCounters{writes: field(5), inFlight: field(9), discards: field(12), flushes: field(16)}
}

// fill writes a file into the mounted file system until the disk is full
// and returns its path.
func (d *disk) fill() string {
	d.t.Helper()
	path := filepath.Join(d.mountPath, "filler")
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		d.t.Fatal(err)
	}
	defer file.Close()
	// Large chunks first, then smaller ones for the last free blocks.
	for _, chunk := range []int{1 << 20, 64 << 10, 4 << 10, 512} {
		buffer := make([]byte, chunk)
		for {
			if _, err := file.Write(buffer); err != nil {
				break
			}
		}
	}
	file.Sync()
	return path
}

// freeBytes returns the free space of the mounted file system.
func (d *disk) freeBytes() int64 {
	d.t.Helper()
	return freeBytesAt(d.t, d.mountPath)
}

// freeBytesAt returns the free space of the file system that holds path.
func freeBytesAt(t *testing.T, path string) int64 {
	t.Helper()
	var stat syscall.Statfs_t
	if err := syscall.Statfs(path, &stat); err != nil {
		t.Fatal(err)
	}
	return int64(stat.Bavail) * stat.Bsize
}

// run runs a command and fails the test if it fails.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	output, err := runErr(name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v", name, strings.Join(args, " "), err)
	}
	return output
}

func runErr(name string, args ...string) (string, error) {
	output, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(output), fmt.Errorf("%w: %s", err, strings.TrimSpace(string(output)))
	}
	return string(output), nil
}
