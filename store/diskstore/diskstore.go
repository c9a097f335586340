// Package diskstore is the local-disk store.Store, the default store of the
// server. Everything lives in one data directory:
//
//	sessions/<sessionId>/record.json   the session record, replaced atomically
//	sessions/<sessionId>/messages.log  the messages since the last snapshot
//	pointers/<key>.json                persisted-data pointers
//	files/<path>                       uploaded files
//	tmp/                               files being written; emptied by Open
//	journal/<generation>.log           the journal (Durable on Linux; journal.go)
//	journal/next.spare                 the next journal file, being prepared
//	quarantine/                        damaged sessions and journals, moved
//	                                   here whole, never deleted (damage.go)
//	lock                               the data-directory lock; names its holder
//
// # The data-directory lock
//
// Only one Store may use a data directory at a time. Open enforces it
// before it reads, replays or removes anything in the directory: it opens
// (creating it if needed) the file lock and takes an exclusive flock(2) of
// it without waiting, and the Store holds that lock until Close. If another
// Store holds it, in another process or in this one (a flock belongs to an
// open file description, so a second Open in the same process conflicts
// too), Open fails with a *LockedError, which matches ErrLocked and names
// the holder. Once it has the lock, Open replaces the file's content with
// one JSON line naming this process, for that message and for operators:
//
//	{"pid":1234,"host":"h","started":"2026-12-02T09:00:00Z","program":"/usr/local/bin/metronome"}
//
// The content is informational only: the flock is the lock, and a lock file
// that exists, or names a process, does not mean the directory is in use.
// A lock held by a process that died, however it died (SIGKILL, a crash),
// is free again at once: the kernel releases the flock when the process's
// last descriptor of the file closes, and the next Open takes it and
// rewrites the file. Nothing has to be removed by hand. For the same
// reason, a copy of a data directory (a backup, or what a crash leaves)
// carries the lock file but not the lock, and opens normally. Descriptors
// are not inherited by programs the server starts (Go opens files
// close-on-exec), so such a child cannot keep the lock alive.
//
// The lock is advisory: it only keeps out other Stores, not other programs
// that change files in the directory. It works on local file systems; on
// a network file system it holds across hosts only if that file system
// implements flock across hosts (Linux NFS clients emulate it with NFS
// byte-range locks on the whole file; see flock(2)).
// Where flock(2) does not exist (Windows, and systems other than Linux,
// macOS and the BSDs), Open takes no lock and nothing stops two Stores from
// sharing a directory: the rule above is then the operator's to keep.
//
// # Message log format
//
// messages.log starts with the 16-byte header "metronome-log-1\n", followed
// by one frame per message (integers little-endian):
//
//	4 bytes  data length n
//	4 bytes  sequence number
//	1 byte   flags: bit 0 marks the last message of a commit
//	n bytes  data
//	4 bytes  CRC-32C (Castagnoli) of the 9 + n bytes before it
//
// A commit appends all its frames with one write. When a log is opened, it is
// read up to the last frame that ends a commit and whose frames all have a
// valid checksum; the rest is a torn write of a commit that never returned,
// and is cut off before anything new is appended. So a commit's messages
// appear all or not at all. DropFront writes a new log holding the remaining
// frames and renames it over the old one.
//
// # What is written when
//
// Every other file (record, rewritten log, pointer, uploaded file) is
// written to a new file under tmp/ and renamed over its target, so readers
// and crashes see the old or the new content, never a mix. Commit applies a
// batch in this order, and returns only when all steps are done:
//
//  1. Append: one write of the new frames to messages.log (which is created,
//     holding only its header, on a session's first append).
//  2. Record: record.json is replaced.
//  3. DropFront: messages.log is replaced by a copy without the dropped
//     frames.
//
// The result is the one store.Batch describes (DropFront counts the appended
// messages). Doing the drop last means that no crash loses messages while the
// record that no longer needs them is not yet durable. A crash inside Commit
// leaves the session as it was before step 1, after step 1 or after step 2,
// or as the whole batch leaves it: appended messages without the new
// record, or a new record with messages in front that it meant to drop
// (which the reflector recognises by their sequence numbers). A crash
// also leaves the lock file, naming the dead process; its lock is free
// again (see "The data-directory lock").
//
// With Options.Durable on Linux, session changes are made durable through
// one journal shared by all sessions (journal.go): the steps above are
// written without syncing, the same changes are handed to the journal,
// and Commit returns once the journal's syncer has written and synced
// them (Submit returns at once and reports durability later: the
// pipelined commits of host/pipeline.go); the session files are synced in
// the background (checkpoints), and Open replays the journal after a
// crash. Pointers and uploaded files are synced as described next.
//
// A torn write is cut off; damage is not: a damaged session is moved to
// quarantine/ and starts again on a new timeline (damage.go). A storage
// error (a full disk) fails the commits that meet it, and the journal
// retries until the disk works again (Health reports it meanwhile).
//
// With Options.Durable elsewhere, each step is synced before the next
// starts: after step 1 the log file is fsynced; for every
// replaced file the new file is fsynced before the rename and its
// directory after it; every directory
// that is created (a session's directory, the parents of a file) has its
// parent directory fsynced; the truncation of a torn tail is fsynced before
// the first append after it; DeleteSession fsyncs sessions/ after it moves
// the session's directory away. A call that returns nil has therefore
// reached the disk, as far as the operating system and the disk honour
// fsync. Without Durable nothing is fsynced: the order above still holds
// when the process crashes, but an operating-system crash or power loss may
// lose recent changes of any kind.
//
// # Limits and requirements
//
// Each session keeps its log open for appending, so that a commit costs one
// write (plus a share of one file-system sync when Durable). At most Options.OpenLogFilesMax logs
// are open at once; the least recently used is closed when another is
// needed, and reading it again validates it again.
//
// Only one Store may use a data directory at a time (Open enforces it; see
// "The data-directory lock" above), and it must be on a case-sensitive
// file system: session ids and file paths differing only in
// case are different. Pointer keys and file paths follow
// store.ValidatePath, and a path cannot name both a file and a directory
// holding files (PutFile of "a" fails while "a/b" exists, and vice versa).
package diskstore

import (
	"container/list"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/metronome-sync/metronome/store"
)

// DefaultOpenLogFilesMax is the number of message logs a Store keeps open
// for appending when Options.OpenLogFilesMax is zero.
const DefaultOpenLogFilesMax = 1024

// Names inside the data directory.
const (
	sessionsDirectoryName  = "sessions"
	pointersDirectoryName  = "pointers"
	filesDirectoryName     = "files"
	temporaryDirectoryName = "tmp"
	recordFileName         = "record.json"
	logFileName            = "messages.log"
	pointerFileSuffix      = ".json"
)

// directoryPermissions is the mode of the directories the store creates
// (before the umask). Files are created readable by their owner only.
const directoryPermissions = 0o755

// Options configure a Store. The zero value is valid: not durable, with
// DefaultOpenLogFilesMax open logs.
type Options struct {
	// Durable makes every call that changes data fsync what it wrote before
	// it returns (see the package documentation).
	Durable bool
	// OpenLogFilesMax bounds the message logs kept open for appending.
	// Zero means DefaultOpenLogFilesMax.
	OpenLogFilesMax int
}

// Validate reports whether the options are usable.
func (o Options) Validate() error {
	if o.OpenLogFilesMax < 0 {
		return fmt.Errorf("diskstore: Options.OpenLogFilesMax is %d, must be 0 (default %d) or positive", o.OpenLogFilesMax, DefaultOpenLogFilesMax)
	}
	return nil
}

// Store is a store.Store in a local directory. It is safe for concurrent
// use; calls for one session are serialized by a mutex of that session.
type Store struct {
	durable bool
	// lock is the data directory's lock, held from Open to Close (nil where
	// there is no locking).
	lock *directoryLock
	// journal, when not nil, makes session changes durable (Durable on
	// Linux; see journal.go); journaled is set from Open on, before the
	// replay of what an earlier run left.
	journal   *journal
	journaled bool
	// recovery is what Open found and repaired (damage.go); replaying,
	// during Open's replay, maps every session the journal holds appends
	// of to the seq of the first.
	recovery  Recovery
	replaying map[string]uint32
	// crashed: Open found a journal (the last run did not Close).
	crashed bool
	// writeFailure is the error of the last commit if it failed writing
	// the session files; nil once a commit succeeds (Health).
	writeFailure       atomic.Pointer[error]
	root               string
	openLogFilesMax    int
	sessionsDirectory  string
	pointersDirectory  string
	filesDirectory     string
	temporaryDirectory string

	// lifecycle is held for reading during every call and for writing by
	// Close, which therefore waits for the calls in progress.
	lifecycle sync.RWMutex
	closed    bool // guarded by lifecycle

	// mu guards sessions and openLogs, and the fields of each session it
	// names. It is taken after a session's mutex, never before it.
	mu sync.Mutex
	// sessions holds the sessions that a call is using or whose log is
	// open, so it has at most OpenLogFilesMax + (calls in progress) entries.
	sessions map[string]*session
	// openLogs lists the sessions whose log is open, most recently used
	// first.
	openLogs list.List
	// deferred holds the sessions whose record.json is older than their
	// record (records.go).
	deferred map[*session]struct{}
}

var _ store.Store = (*Store)(nil)

// Open opens the store kept in directory, creating the directory if it is
// missing, locks it (see "The data-directory lock" in the package
// documentation) and removes what a crash left in its tmp/ directory. If
// another Store has the directory open, Open fails with a *LockedError,
// which matches ErrLocked.
func Open(directory string, options Options) (*Store, error) {
	if err := options.Validate(); err != nil {
		return nil, err
	}
	if directory == "" {
		return nil, errors.New("diskstore: data directory is empty")
	}
	if options.OpenLogFilesMax == 0 {
		options.OpenLogFilesMax = DefaultOpenLogFilesMax
	}
	s := &Store{
		durable:            options.Durable,
		root:               directory,
		openLogFilesMax:    options.OpenLogFilesMax,
		sessionsDirectory:  filepath.Join(directory, sessionsDirectoryName),
		pointersDirectory:  filepath.Join(directory, pointersDirectoryName),
		filesDirectory:     filepath.Join(directory, filesDirectoryName),
		temporaryDirectory: filepath.Join(directory, temporaryDirectoryName),
		sessions:           make(map[string]*session),
		deferred:           make(map[*session]struct{}),
	}
	if err := os.MkdirAll(directory, directoryPermissions); err != nil {
		return nil, fmt.Errorf("diskstore: creating the data directory: %w", err)
	}
	// The lock comes before anything in the directory is read or changed.
	lock, err := lockDirectory(directory)
	if err != nil {
		return nil, err
	}
	s.lock = lock
	if err := s.open(directory); err != nil {
		s.closeLogs()
		lock.release()
		return nil, err
	}
	return s, nil
}

// open is Open once the directory is locked.
func (s *Store) open(directory string) error {
	for _, name := range []string{sessionsDirectoryName, pointersDirectoryName, filesDirectoryName, temporaryDirectoryName} {
		if err := s.makeDirectories(directory, name, s.durable); err != nil {
			return fmt.Errorf("diskstore: %w", err)
		}
	}
	if err := s.removeTemporaryFiles(); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	// A journal left by a crash is replayed whether this run is durable or
	// not; a durable run then keeps its own. A spare journal file a crash
	// left is not needed.
	journalDirectory := filepath.Join(directory, journalDirectoryName)
	os.Remove(filepath.Join(journalDirectory, spareJournalName))
	s.journaled = s.durable && fileSystemSyncAvailable
	if s.journaled {
		if err := s.makeDirectories(directory, journalDirectoryName, true); err != nil {
			return fmt.Errorf("diskstore: %w", err)
		}
	}
	next, err := s.replayJournals(journalDirectory)
	if err != nil {
		return fmt.Errorf("diskstore: recovering from the journal: %w", err)
	}
	if s.journaled {
		s.journal, err = openJournal(journalDirectory, next, s.writeDeferredRecords)
		if err != nil {
			return fmt.Errorf("diskstore: %w", err)
		}
	}
	return nil
}

// syncSessionFiles reports whether session files are synced as they are
// written (Durable without a journal).
func (s *Store) syncSessionFiles() bool { return s.durable && !s.journaled }

// Replayed is the number of journal entries Open replayed: non-zero after
// a crash of a durable store.
func (s *Store) Replayed() int { return s.recovery.Replayed }

// removeTemporaryFiles removes the leftovers of writes and deletions that a
// crash interrupted. No call is in progress while Open runs it.
func (s *Store) removeTemporaryFiles() error {
	entries, err := os.ReadDir(s.temporaryDirectory)
	if err != nil {
		return err
	}
	for _, entry := range entries {
		if err := os.RemoveAll(filepath.Join(s.temporaryDirectory, entry.Name())); err != nil {
			return err
		}
	}
	return nil
}

// Close closes the open message logs and the journal, after waiting for
// the calls in progress, and then releases the data directory's lock.
// Calls after Close fail with store.ErrClosed.
func (s *Store) Close() error {
	s.lifecycle.Lock()
	defer s.lifecycle.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	// No call is in progress, so no session mutex is held.
	var errs []error
	if err := s.writeDeferredRecords(); err != nil {
		errs = append(errs, err)
	}
	for element := s.openLogs.Front(); element != nil; element = element.Next() {
		opened := element.Value.(*session)
		if err := opened.log.file.Close(); err != nil {
			errs = append(errs, err)
		}
		opened.log = nil
	}
	s.openLogs.Init()
	s.sessions = nil
	var err error
	if logErr := errors.Join(errs...); logErr != nil {
		err = fmt.Errorf("diskstore: closing message logs: %w", logErr)
		// A log that failed to close may not hold what the journal says:
		// the journal stays for the next Open to replay, but its
		// background work stops before the lock is released.
		if s.journal != nil {
			s.journal.abandon()
		}
	} else if s.journal != nil {
		if journalErr := s.journal.close(); journalErr != nil {
			err = fmt.Errorf("diskstore: closing the journal: %w", journalErr)
		}
	}
	if lockErr := s.lock.release(); lockErr != nil && err == nil {
		err = fmt.Errorf("diskstore: releasing the data directory's lock: %w", lockErr)
	}
	return err
}

// begin starts a call: it fails if the store is closed, else the caller must
// call the returned function when it is done.
func (s *Store) begin() (end func(), err error) {
	s.lifecycle.RLock()
	if s.closed {
		s.lifecycle.RUnlock()
		return nil, store.ErrClosed
	}
	return s.lifecycle.RUnlock, nil
}
