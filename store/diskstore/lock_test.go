package diskstore

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
)

func skipWithoutLock(t *testing.T) {
	t.Helper()
	if !directoryLockAvailable {
		t.Skip("no data-directory lock on this system (no flock)")
	}
}

// checkLocked checks that err is Open's error for directory held by pid.
func checkLocked(t *testing.T, err error, directory string, pid int) {
	t.Helper()
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("Open of a locked directory: error = %v, want ErrLocked", err)
	}
	var locked *LockedError
	if !errors.As(err, &locked) {
		t.Fatalf("Open of a locked directory: error %v (%T) is not a *LockedError", err, err)
	}
	if locked.Directory != directory || locked.Holder.PID != pid || locked.HolderErr != nil {
		t.Errorf("LockedError = %+v, want directory %s held by pid %d", locked, directory, pid)
	}
	host, _ := os.Hostname()
	for _, want := range []string{
		"data dir " + directory + " is in use by pid " + fmt.Sprint(pid) + " on host " + host + " (started ",
		", " + os.Args[0] + ")",
		"; stop it first or use another --data-dir",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}

// TestLockSecondOpenFails checks that a second Store cannot open a data
// directory that one in the same process has open (a flock belongs to an
// open file description, so two opens of the lock file conflict even in
// one process), that the failed Open changes nothing, and that the
// directory opens again after Close.
func TestLockSecondOpenFails(t *testing.T) {
	skipWithoutLock(t)
	directory := t.TempDir()
	s := openForTest(t, directory, Options{Durable: true})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1), Record: []byte("r")})
	// A temporary file of the running store: a second Open must not touch
	// it, nor anything else (such as the running store's journal).
	temporary := filepath.Join(directory, temporaryDirectoryName, "new-in-progress")
	if err := os.WriteFile(temporary, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	journalBefore, _ := journalFiles(filepath.Join(directory, journalDirectoryName))
	lockBefore, err := os.ReadFile(filepath.Join(directory, lockFileName))
	if err != nil {
		t.Fatal(err)
	}

	for _, options := range []Options{{}, {Durable: true}} {
		second, err := Open(directory, options)
		if err == nil {
			second.Close()
			t.Fatalf("a second Open (%+v) of an open data directory succeeded", options)
		}
		checkLocked(t, err, directory, os.Getpid())
	}

	if _, err := os.Stat(temporary); err != nil {
		t.Errorf("the failed Open removed the running store's temporary file: %v", err)
	}
	if journalAfter, _ := journalFiles(filepath.Join(directory, journalDirectoryName)); fmt.Sprint(journalAfter) != fmt.Sprint(journalBefore) {
		t.Errorf("journal files %v after the failed Open, want %v", journalAfter, journalBefore)
	}
	if lockAfter, _ := os.ReadFile(filepath.Join(directory, lockFileName)); !bytes.Equal(lockAfter, lockBefore) {
		t.Errorf("lock file %q after the failed Open, want %q", lockAfter, lockBefore)
	}
	mustCommit(t, s, "s", store.Batch{Append: testMessages(2)})
	checkLoad(t, s, "s", []byte("r"), testMessages(1, 2))
	mustClose(t, s)
	if err := s.Close(); !errors.Is(err, store.ErrClosed) {
		t.Errorf("second Close: error = %v, want store.ErrClosed", err)
	}

	s = openForTest(t, directory, Options{Durable: true})
	checkLoad(t, s, "s", []byte("r"), testMessages(1, 2))
	mustClose(t, s)
	s = openForTest(t, directory, Options{})
	mustClose(t, s)
}

// TestLockFileNamesHolder checks the record in the lock file, and that it
// replaces what the file held before.
func TestLockFileNamesHolder(t *testing.T) {
	skipWithoutLock(t)
	directory := t.TempDir()
	path := filepath.Join(directory, lockFileName)
	if err := os.WriteFile(path, bytes.Repeat([]byte("left by an earlier holder "), 20), 0o600); err != nil {
		t.Fatal(err)
	}
	before := time.Now().Add(-time.Second)
	s := openForTest(t, directory, Options{})
	defer mustClose(t, s)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Count(content, []byte("\n")) != 1 || !bytes.HasSuffix(content, []byte("\n")) {
		t.Errorf("lock file = %q, want one line", content)
	}
	var holder LockHolder
	if err := json.Unmarshal(content, &holder); err != nil {
		t.Fatalf("lock file %q: %v", content, err)
	}
	host, _ := os.Hostname()
	if holder.PID != os.Getpid() || holder.Host != host || holder.Program != os.Args[0] ||
		holder.Started.Before(before) || holder.Started.After(time.Now()) {
		t.Errorf("lock file names %+v, want pid %d on %q, program %q, started now", holder, os.Getpid(), host, os.Args[0])
	}
}

func TestLockedErrorMessage(t *testing.T) {
	err := error(&LockedError{
		Directory: "/x",
		Holder:    LockHolder{PID: 1234, Host: "h", Started: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC), Program: "metronome"},
	})
	want := "diskstore: data dir /x is in use by pid 1234 on host h (started 2026-12-02T09:00:00Z, metronome); stop it first or use another --data-dir"
	if err.Error() != want {
		t.Errorf("error =\n%s\nwant\n%s", err, want)
	}
	if !errors.Is(err, ErrLocked) {
		t.Errorf("errors.Is(%v, ErrLocked) is false", err)
	}
}

// TestLockHolderUnknown: a holder that has locked the file but not yet
// written its record still keeps Open out, with an error that says the
// holder is unknown.
func TestLockHolderUnknown(t *testing.T) {
	skipWithoutLock(t)
	for name, content := range map[string]string{"empty": "", "garbage": "not a record"} {
		t.Run(name, func(t *testing.T) {
			directory := t.TempDir()
			path := filepath.Join(directory, lockFileName)
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			file, err := os.OpenFile(path, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer file.Close()
			if locked, err := tryLockFile(file); !locked || err != nil {
				t.Fatalf("tryLockFile = %v, %v", locked, err)
			}
			_, err = Open(directory, Options{})
			var lockedErr *LockedError
			if !errors.Is(err, ErrLocked) || !errors.As(err, &lockedErr) || lockedErr.HolderErr == nil {
				t.Fatalf("Open: error = %v, want a LockedError with an unknown holder", err)
			}
			if want := "is in use by another process (which one is unknown: "; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
			file.Close()
			s := openForTest(t, directory, Options{})
			mustClose(t, s)
		})
	}
}

// TestLockReleasedWhenOpenFails: an Open that fails after taking the lock
// releases it.
func TestLockReleasedWhenOpenFails(t *testing.T) {
	skipWithoutLock(t)
	directory := t.TempDir()
	// tmp/ is a file: Open cannot empty it.
	temporary := filepath.Join(directory, temporaryDirectoryName)
	if err := os.WriteFile(temporary, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(directory, Options{}); err == nil || errors.Is(err, ErrLocked) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open with a file as tmp/: error = %v, want one that is not ErrLocked", err)
	}
	if err := os.Remove(temporary); err != nil {
		t.Fatal(err)
	}
	s := openForTest(t, directory, Options{})
	mustClose(t, s)
}

// TestLockNotCopied: a copy of a directory that a store has open (as a
// backup or a crash test takes it) carries the lock file but not the lock,
// and opens.
func TestLockNotCopied(t *testing.T) {
	skipWithoutLock(t)
	directory := t.TempDir()
	s := openForTest(t, directory, Options{Durable: true})
	defer mustClose(t, s)
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1)})
	copied := t.TempDir()
	copyTree(t, directory, copied)
	if _, err := os.Stat(filepath.Join(copied, lockFileName)); err != nil {
		t.Fatalf("the copy has no lock file: %v", err)
	}
	c := openForTest(t, copied, Options{Durable: true})
	checkLoad(t, c, "s", nil, testMessages(1))
	mustClose(t, c)
}

const lockHelperEnvironment = "METRONOME_DISKSTORE_LOCK_HELPER_DIR"

// TestLockHelperProcess is not a test: run by startLockHolder, in a child
// process, it opens the data directory, writes "locked" on stdout, and
// closes the store and exits when its stdin is closed.
func TestLockHelperProcess(t *testing.T) {
	directory := os.Getenv(lockHelperEnvironment)
	if directory == "" {
		return
	}
	s, err := Open(directory, Options{Durable: true})
	if err != nil {
		fmt.Println("Open:", err)
		os.Exit(1)
	}
	fmt.Println("locked")
	io.Copy(io.Discard, os.Stdin)
	if err := s.Close(); err != nil {
		fmt.Fprintln(os.Stderr, "Close:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// startLockHolder starts a child process that holds directory's lock until
// its stdin is closed or it is killed.
func startLockHolder(t *testing.T, directory string) (child *exec.Cmd, stdin io.WriteCloser) {
	t.Helper()
	child = exec.Command(os.Args[0], "-test.run=^TestLockHelperProcess$", "-test.count=1")
	child.Env = append(os.Environ(), lockHelperEnvironment+"="+directory)
	var stderr bytes.Buffer
	child.Stderr = &stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		child.Process.Kill()
		child.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if line != "locked\n" {
		child.Process.Kill()
		child.Wait()
		t.Fatalf("helper process said %q (%v), want \"locked\"; stderr: %s", line, err, stderr.Bytes())
	}
	return child, stdin
}

// TestLockHeldByAnotherProcess checks that a lock held by another process
// keeps Open out, and is free again when that process is killed (the
// kernel releases the flock of a process that dies) or closes its store.
func TestLockHeldByAnotherProcess(t *testing.T) {
	skipWithoutLock(t)
	t.Run("killed", func(t *testing.T) {
		directory := t.TempDir()
		child, _ := startLockHolder(t, directory)
		_, err := Open(directory, Options{Durable: true})
		checkLocked(t, err, directory, child.Process.Pid)
		if err := child.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		child.Wait()
		s := openForTest(t, directory, Options{Durable: true})
		mustClose(t, s)
	})
	t.Run("closed", func(t *testing.T) {
		directory := t.TempDir()
		child, stdin := startLockHolder(t, directory)
		_, err := Open(directory, Options{})
		checkLocked(t, err, directory, child.Process.Pid)
		stdin.Close()
		if err := child.Wait(); err != nil {
			t.Fatalf("helper process: %v", err)
		}
		s := openForTest(t, directory, Options{})
		mustClose(t, s)
	})
}
