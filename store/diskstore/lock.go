package diskstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// lockFileName is the lock file inside the data directory (see the package
// documentation, "The data-directory lock").
const lockFileName = "lock"

// ErrLocked is the error (wrapped in a *LockedError) of Open when another
// Store, in this process or another one, has the data directory open.
var ErrLocked = errors.New("data directory is in use")

// LockHolder is what the Store holding a data directory's lock recorded in
// the lock file about its process. The record is informational: the lock
// itself is the flock(2) of the file.
type LockHolder struct {
	PID  int    `json:"pid"`
	Host string `json:"host"`
	// Started is when the holder took the lock.
	Started time.Time `json:"started"`
	// Program is the holder's os.Args[0].
	Program string `json:"program"`
}

// LockedError is the error of Open when the data directory is in use. It
// matches ErrLocked with errors.Is.
type LockedError struct {
	// Directory is the data directory, as given to Open.
	Directory string
	// Holder is read from the lock file. It is the zero LockHolder when the
	// file could not be read or parsed (HolderErr says why), which happens
	// when the holder has locked the file but not yet written to it.
	Holder    LockHolder
	HolderErr error
}

func (e *LockedError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "diskstore: data dir %s is in use by ", e.Directory)
	if e.HolderErr != nil || e.Holder.PID == 0 {
		b.WriteString("another process (")
		if e.HolderErr != nil {
			fmt.Fprintf(&b, "which one is unknown: %v", e.HolderErr)
		} else {
			b.WriteString("which one is unknown: its lock file names no pid")
		}
		b.WriteString(")")
	} else {
		b.WriteString("pid " + strconv.Itoa(e.Holder.PID))
		if e.Holder.Host != "" {
			b.WriteString(" on host " + e.Holder.Host)
		}
		var details []string
		if !e.Holder.Started.IsZero() {
			details = append(details, "started "+e.Holder.Started.UTC().Format(time.RFC3339))
		}
		if e.Holder.Program != "" {
			details = append(details, e.Holder.Program)
		}
		if len(details) > 0 {
			b.WriteString(" (" + strings.Join(details, ", ") + ")")
		}
	}
	b.WriteString("; stop it first or use another --data-dir")
	return b.String()
}

// Unwrap makes errors.Is(err, ErrLocked) true.
func (e *LockedError) Unwrap() error { return ErrLocked }

// directoryLock is the lock a Store holds on its data directory. A nil
// *directoryLock (no locking on this system) is valid and holds nothing.
type directoryLock struct {
	file *os.File
}

// lockDirectory takes the data directory's lock without waiting, and
// records this process as its holder. It fails with a *LockedError if
// another Store holds the lock. Where flock is not available
// (directoryLockAvailable is false) it returns a nil lock: no locking.
func lockDirectory(directory string) (*directoryLock, error) {
	if !directoryLockAvailable {
		return nil, nil
	}
	path := filepath.Join(directory, lockFileName)
	// Not truncated on open: the content names the holder, if there is one.
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("diskstore: opening the lock file: %w", err)
	}
	locked, err := tryLockFile(file)
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("diskstore: locking %s: %w", path, err)
	}
	if !locked {
		file.Close()
		holder, holderErr := readLockHolder(path)
		return nil, &LockedError{Directory: directory, Holder: holder, HolderErr: holderErr}
	}
	if err := writeLockHolder(file); err != nil {
		file.Close() // releases the lock
		return nil, fmt.Errorf("diskstore: recording the holder in %s: %w", path, err)
	}
	return &directoryLock{file: file}, nil
}

// release releases the lock: closing the only descriptor of the lock file
// releases its flock. The file stays, naming the last holder.
func (l *directoryLock) release() error {
	if l == nil || l.file == nil {
		return nil
	}
	err := l.file.Close()
	l.file = nil
	return err
}

// writeLockHolder replaces the content of the locked file with a record of
// this process.
func writeLockHolder(file *os.File) error {
	holder := LockHolder{PID: os.Getpid(), Started: time.Now().UTC().Truncate(time.Second)}
	holder.Host, _ = os.Hostname()
	if len(os.Args) > 0 {
		holder.Program = os.Args[0]
	}
	content, err := json.Marshal(holder)
	if err != nil {
		return err
	}
	content = append(content, '\n')
	if err := file.Truncate(0); err != nil {
		return err
	}
	if _, err := file.WriteAt(content, 0); err != nil {
		return err
	}
	return file.Sync()
}

// readLockHolder reads the holder recorded in the lock file at path.
func readLockHolder(path string) (LockHolder, error) {
	var holder LockHolder
	content, err := os.ReadFile(path)
	if err != nil {
		return holder, err
	}
	if len(content) == 0 {
		return holder, errors.New("its lock file is empty")
	}
	if err := json.Unmarshal(content, &holder); err != nil {
		return LockHolder{}, fmt.Errorf("its lock file holds no holder record: %w", err)
	}
	return holder, nil
}
