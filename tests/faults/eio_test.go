package faults

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// # Storage that fails with I/O errors
//
// A device-mapper "error" target (dmsetup: a table switched from linear
// to error and back) is the usual way to make a disk fail under a running
// program. This suite cannot count on it: the kernel it was written on has
// no device mapper (dmsetup is installed, but /dev/mapper/control answers
// ENODEV: CONFIG_BLK_DEV_DM is not set and modules cannot be loaded).
// It uses two triggers every ext4 kernel has instead:
//
//   - read-only: ext4's error handling itself. The file system is mounted
//     with errors=remount-ro and an error is reported through
//     /sys/fs/ext4/<device>/trigger_fs_error, as a failing disk's I/O
//     error would: ext4 aborts its journal and turns read-only
//     ("emergency_ro"). From then on every write and every fsync fails
//     (EROFS), and a remount read-write is refused until the file system
//     is unmounted and checked: the server cannot recover by itself. It
//     must say so (/healthz 503, an ERROR line, clients closed with 4003
//     or refused with 503), stay up, stop when asked, and after a check
//     of the file system and a restart, every message a client received
//     must still be there.
//   - thin device out of space: the loop device's image lives on a tmpfs
//     of its size; the free blocks of the file system are discarded
//     (fstrim punches them out of the image) and the tmpfs is filled, so
//     that every write to a block not written before fails with EIO, as
//     on a thin-provisioned volume (LVM thin, a SAN) that ran out of
//     space, while blocks already written can be rewritten. The server
//     commits through its journal's prepared files (already written
//     blocks) and writes session files into new blocks, which reach the
//     device only in the background: the errors meet it when it syncs
//     them, at its shutdown at the latest. The device is then given
//     space again (the tmpfs is emptied) and the server restarted: every
//     message a client received must still be there, and the sessions
//     must work.

// Storage error timing.
const (
	// errorLoadDuration is how long the clients send while storage fails.
	errorLoadDuration = 3 * time.Second
	// shutdownWhileFailingTimeout bounds a graceful stop while writes
	// fail (the server must not hang on its storage).
	shutdownWhileFailingTimeout = 30 * time.Second
)

// TestStorageErrors makes the file system under a running server fail
// (see above) and checks what the server tells, that it stays bounded,
// and that nothing a client received is lost once the storage works
// again.
func TestStorageErrors(t *testing.T) {
	binary := requireEnvironment(t)
	seed := baseSeed(t)*1000 + 300
	t.Run(fmt.Sprintf("read-only/seed=%d", seed), func(t *testing.T) {
		if _, err := exec.LookPath("e2fsck"); err != nil {
			t.Skipf("needs e2fsck to repair the file system after it turned read-only: %v", err)
		}
		counts := &tally{}
		readOnly(t, binary, seed, counts)
		t.Logf("read-only: %s", counts)
	})
	t.Run(fmt.Sprintf("thin-device-full/seed=%d", seed+1), func(t *testing.T) {
		if _, err := exec.LookPath("fstrim"); err != nil {
			t.Skipf("needs fstrim to discard the free blocks of the image: %v", err)
		}
		counts := &tally{}
		thinDeviceFull(t, binary, seed+1, counts)
		t.Logf("thin device full: %s", counts)
	})
}

// readOnly: ext4 turns read-only under the server (errors=remount-ro).
func readOnly(t *testing.T, binary string, seed int64, counts *tally) {
	d := newDisk(t, imageBytes)
	run(t, "mount", "-o", "remount,errors=remount-ro", d.mountPath)
	r := startFailingRun(t, binary, seed, counts, d, "ro")

	failedAt := time.Now()
	triggerFileSystemError(t, d)
	time.Sleep(errorLoadDuration)
	if !strings.Contains(mountOptions(t, d.mountPath), "emergency_ro") {
		t.Fatalf("seed %d: ext4 did not turn read-only after the error (mount options %s)", seed, mountOptions(t, d.mountPath))
	}
	r.checkTold(failedAt, "read-only")

	// ext4 refuses to become writable again while mounted.
	if _, err := runErr("mount", "-o", "remount,rw", d.mountPath); err == nil {
		t.Fatalf("seed %d: the read-only file system was remounted read-write: the test's premise (the server cannot recover in place) is wrong", seed)
	}
	t.Logf("seed %d: as expected, ext4 refuses to be remounted read-write: the server cannot recover without an unmount and a file system check", seed)
	r.stop()

	d.detach()
	output, err := runErr("e2fsck", "-fy", d.image)
	var exit *exec.ExitError
	if err != nil && (!errors.As(err, &exit) || exit.ExitCode() > 1) { // 1: errors corrected
		t.Fatalf("seed %d: e2fsck: %v\n%s", seed, err, output)
	}
	d.attach()
	r.restartAndCheck()
}

// thinDeviceFull: writes to blocks not written before fail with EIO.
func thinDeviceFull(t *testing.T, binary string, seed int64, counts *tally) {
	d := newThinDisk(t, thinImageBytes)
	r := startFailingRun(t, binary, seed, counts, d.disk, "thin")

	d.failUnwrittenBlocks()
	t.Logf("seed %d: writes to unwritten blocks fail now (%d bytes of the device's backing store free)", seed, d.backingFreeBytes())
	time.Sleep(errorLoadDuration)
	// Push the session files' writes to the device: the errors are the
	// kernel's to record and the server's to meet at its next sync.
	syscall.Sync()
	time.Sleep(errorLoadDuration)
	unhealthy := r.watch.stop()
	t.Logf("seed %d: while the device failed: /healthz %s; the server logged %d ERROR lines; clients were told %d times",
		seed, orText(unhealthy, "always 200"), len(r.srv.errorLines()), r.reconnecting.toldSince(time.Time{}))
	r.stop()
	// The kernel failed to write session files (syscall.Sync above): the
	// store's last sync at shutdown meets the error and must say so (and
	// keep its journal, which the restart replays).
	if lines := r.srv.errorLines(); len(lines) == 0 {
		t.Errorf("seed %d: the device failed writes of the session files, and the server stopped without an ERROR line\n%s", seed, r.srv.logTail())
	} else {
		t.Logf("seed %d: at shutdown the server said: %s", seed, lines[0])
	}

	d.restoreSpace()
	// What the kernel failed to write may still be in its page cache:
	// only a fresh mount reads what the device holds.
	d.detach()
	d.attach()
	r.restartAndCheck()
}

// failingRun is a server on a disk whose storage is made to fail, and
// the clients of 3 sessions × 3 that keep connected to it meanwhile.
type failingRun struct {
	t            *testing.T
	binary       string
	seed         int64
	logs, data   string
	srv          *server
	clients      *fleet
	reconnecting *reconnector
	watch        *healthWatch
}

// startFailingRun starts the server on the disk's data directory and the
// clients (their sessions' names start with prefix), lets them send for a
// second, then keeps them connected and watches /healthz: the storage may
// fail from now on.
func startFailingRun(t *testing.T, binary string, seed int64, counts *tally, d *disk, prefix string) *failingRun {
	t.Helper()
	r := &failingRun{t: t, binary: binary, seed: seed, logs: logDirectory(t), data: d.dataDirectory()}
	r.srv = startServer(t, binary, r.data, filepath.Join(r.logs, "server-0.log"))
	r.clients = newFleet(t, seed, counts, prefix, 3, 3)
	r.clients.rejoin(r.srv, r.data, always(mustKeep))
	time.Sleep(time.Second)

	r.reconnecting = r.clients.keepConnected(r.srv, r.data)
	r.watch = watchHealth(r.srv)
	return r
}

// checkTold checks what the server said while its storage failed (since
// then, as what): /healthz not 200, an ERROR line about the storage,
// clients closed with 4003 or refused with 503; and that it is still
// running.
func (r *failingRun) checkTold(since time.Time, what string) {
	t, seed, srv := r.t, r.seed, r.srv
	t.Helper()
	unhealthy := r.watch.stop()
	if unhealthy == "" {
		t.Errorf("seed %d: /healthz answered 200 all the time the file system was %s", seed, what)
	} else {
		t.Logf("seed %d: /healthz while %s: %s", seed, what, unhealthy)
	}
	if told := r.reconnecting.toldSince(since); told == 0 {
		t.Errorf("seed %d: storage failed (%s) and no client was closed with 4003 or refused with 503\n%s", seed, what, srv.logTail())
	}
	if lines := srv.errorLines("storage"); len(lines) == 0 {
		t.Errorf("seed %d: storage failed (%s) and the server logged no ERROR line about it\n%s", seed, what, srv.logTail())
	} else {
		t.Logf("seed %d: the server logged %d ERROR lines about its storage, the first: %s", seed, len(lines), lines[0])
	}
	select {
	case <-srv.exited:
		t.Fatalf("seed %d: the server exited while its storage failed (%v)\n%s", seed, srv.waitErr, srv.logTail())
	default:
	}
}

// stop stops keeping the clients connected, then the server with SIGTERM
// while its storage fails: it must exit within shutdownWhileFailingTimeout
// (with an error status if it could not persist everything, which it must
// then log). It waits for the clients' connections to end.
func (r *failingRun) stop() {
	t, seed, srv := r.t, r.seed, r.srv
	t.Helper()
	r.reconnecting.stop()
	srv.sigterm(shutdownWhileFailingTimeout, fmt.Sprintf("seed %d: SIGTERM while storage fails", seed))
	if srv.waitErr != nil {
		t.Logf("seed %d: SIGTERM while storage fails: the server exited with %v; its last ERROR line: %s", seed, srv.waitErr, last(srv.errorLines()))
		if len(srv.errorLines()) == 0 {
			t.Errorf("seed %d: the server exited with %v without an ERROR line saying why\n%s", seed, srv.waitErr, srv.logTail())
		}
	} else {
		t.Logf("seed %d: SIGTERM while storage fails: the server exited cleanly", seed)
	}
	r.clients.waitEnded()
}

// restartAndCheck starts the server again on the repaired storage: every
// client must find what it was sent, on its timeline (nothing was
// damaged: the failure only stopped writes), and the sessions must work.
func (r *failingRun) restartAndCheck() {
	r.t.Helper()
	srv := startServer(r.t, r.binary, r.data, filepath.Join(r.logs, "server-1.log"))
	r.clients.rejoin(srv, r.data, always(mustKeep))
	r.clients.waitLive(srv)
	r.clients.stop()
	srv.terminate()
	r.t.Logf("seed %d: after the restart every client found every message it was sent, and the sessions work", r.seed)
}

// triggerFileSystemError reports an error to ext4 as its own error
// handling would (errors=remount-ro turns it read-only).
func triggerFileSystemError(t *testing.T, d *disk) {
	t.Helper()
	path := filepath.Join("/sys/fs/ext4", filepath.Base(d.device), "trigger_fs_error")
	if err := os.WriteFile(path, []byte("metronome fault test: simulated I/O error\n"), 0o200); err != nil {
		t.Skipf("cannot trigger an ext4 error through %s: %v", path, err)
	}
}

// mountOptions returns the options of the file system mounted at path
// (/proc/self/mounts).
func mountOptions(t *testing.T, path string) string {
	t.Helper()
	content, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(content), "\n") {
		if fields := strings.Fields(line); len(fields) >= 4 && fields[1] == path {
			return fields[3]
		}
	}
	return ""
}

func last(lines []string) string {
	if len(lines) == 0 {
		return "(none)"
	}
	return lines[len(lines)-1]
}

func orText(text, otherwise string) string {
	if text == "" {
		return otherwise
	}
	return text
}

// thinImageBytes is the thin device's size: room for the journal's
// prepared files (36 MiB each), in memory.
const thinImageBytes = 160 << 20

// thinDisk is a disk whose image lives on a tmpfs of the image's size
// plus a little, so that a full tmpfs makes the loop device fail writes
// to blocks the image does not hold yet.
type thinDisk struct {
	*disk
	tmpfs string
	pad   string
}

// newThinDisk makes an ext4 image, copies it onto a tmpfs with every
// block allocated (so that what the file system writes before
// failUnwrittenBlocks always succeeds), and mounts it.
func newThinDisk(t *testing.T, sizeBytes int64) *thinDisk {
	t.Helper()
	d := &disk{t: t, directory: t.TempDir()}
	d.mountPath = filepath.Join(d.directory, "mnt")
	thin := &thinDisk{disk: d, tmpfs: filepath.Join(d.directory, "tmpfs")}
	for _, directory := range []string{d.mountPath, thin.tmpfs} {
		if err := os.Mkdir(directory, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	made := filepath.Join(d.directory, "made.img")
	if err := os.Truncate(createFile(t, made), sizeBytes); err != nil {
		t.Fatal(err)
	}
	run(t, "mkfs.ext4", "-q", "-F", "-m", "0", made)
	run(t, "mount", "-t", "tmpfs", "-o", "size="+strconv.FormatInt(sizeBytes+thinSlackBytes, 10), "tmpfs", thin.tmpfs)
	d.image = filepath.Join(thin.tmpfs, "disk.img")
	run(t, "cp", "--sparse=never", made, d.image)
	os.Remove(made)
	t.Cleanup(func() {
		d.detach()
		if _, err := runErr("umount", thin.tmpfs); err != nil {
			t.Errorf("umount %s: %v", thin.tmpfs, err)
		}
	})
	d.attach()
	return thin
}

// thinSlackBytes is the tmpfs's room beyond the image.
const thinSlackBytes = 4 << 20

// failUnwrittenBlocks discards the file system's free blocks from the
// image and fills the tmpfs: from now on a write to any of them fails.
func (d *thinDisk) failUnwrittenBlocks() {
	d.t.Helper()
	run(d.t, "fstrim", d.mountPath)
	d.pad = filepath.Join(d.tmpfs, "pad")
	run(d.t, "fallocate", "-l", strconv.FormatInt(d.backingFreeBytes(), 10), d.pad)
}

// restoreSpace empties the tmpfs: writes succeed again.
func (d *thinDisk) restoreSpace() {
	d.t.Helper()
	if err := os.Remove(d.pad); err != nil {
		d.t.Fatal(err)
	}
}

// backingFreeBytes returns the tmpfs's free space.
func (d *thinDisk) backingFreeBytes() int64 {
	d.t.Helper()
	return freeBytesAt(d.t, d.tmpfs)
}
