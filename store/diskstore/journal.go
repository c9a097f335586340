package diskstore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// # The journal (durable mode on Linux)
//
// Making each session's files durable on their own costs a file-system-wide
// sync per group of commits (syncfs flushes every dirty file: about 1.5 ms
// with 100 sessions appending on this kind of disk, 5 ms at p99). Instead,
// with Durable where syncfs exists, every change to session data is also
// written to one journal, a redo log, and a commit is durable when the
// journal is: one fdatasync of one file, shared by all sessions committing
// at the same time (0.2–0.3 ms). The session files themselves are written
// as without Durable, and made durable in the background: when a journal
// file exceeds journalCheckpointBytes a new one is started, syncfs makes
// everything written before durable, and the old journal file is removed.
//
// journal/<generation>.log starts with journalHeader, followed by entries:
//
//	4 bytes  body length n (little-endian)
//	n bytes  body: 1 byte kind (+ 0x80 on the last entry of a commit,
//	         + 0x40 on its first, + 0x20 on the last entry of a round),
//	         2 bytes session id length, the id, then
//	         append: the message frames as in messages.log
//	         record: the record
//	         drop:   4 bytes, the seq of the last message dropped
//	         delete: nothing
//	4 bytes  CRC-32C of the body
//
// A commit hands its entries (append, record, drop, in this order) to the
// journal after it has changed the session files; the syncer writes them
// in its next round (see journal below), and Commit returns (or Submit
// reports) once that round is synced. Entries after the last complete
// commit are a torn write and are ignored, as in message logs: a commit is
// replayed whole or not at all; damage.go says when invalid bytes are
// damage instead.
//
// # Recovery
//
// Open replays every journal file, oldest first, onto the session files,
// then syncs the file system and removes the journals. Replaying is
// idempotent, so it does not matter how much of the session files' changes
// had reached the disk: an append adds only the messages after the log's
// last seq; a record entry writes the record; a drop removes the messages
// up to its seq; a delete removes the session. Replaying all entries since
// the last checkpoint, in order, leaves every session as the last of them
// left it, whatever state each file was found in.
const (
	journalDirectoryName   = "journal"
	journalHeader          = "metronome-journal-1\n"
	journalCheckpointBytes = 32 << 20

	journalAppend byte = 1
	journalRecord byte = 2
	journalDrop   byte = 3
	journalDelete byte = 4
	// journalCommitEnd marks the last entry of a commit, journalCommitStart
	// its first, journalRoundEnd the last entry of a round of the syncer
	// (one write, then one sync: everything up to it was synced before
	// anything after it was written).
	journalCommitEnd   byte = 0x80
	journalCommitStart byte = 0x40
	journalRoundEnd    byte = 0x20
	journalFlags            = journalCommitEnd | journalCommitStart | journalRoundEnd
)

// journal is the redo log of session changes; see above.
//
// Commits hand their entries to the journal without writing them
// (submit): a single goroutine, the syncer, takes everything submitted
// since its last round, writes it with one write, syncs it with one
// fdatasync and then tells each commit, in submission order, that it is
// durable. While it syncs, new commits accumulate for its next round: a
// pipelined group commit, with one write and one sync per round however
// many sessions committed, and nothing a committing session has to wait
// for unless it wants to (Commit waits; Submit does not).
type journal struct {
	directory string

	mu sync.Mutex
	// pending wakes the syncer (something submitted, or stopping).
	pending    *sync.Cond
	stopping   bool
	stopped    chan struct{} // closed when stopping
	syncerDone chan struct{}
	// buffer holds the entries submitted since the syncer's last round,
	// waiters the commits they belong to, in order.
	buffer  []byte
	waiters []func(error)
	// lastEntry is the offset in buffer of its last entry.
	lastEntry int
	// err is the storage error of a failed round or checkpoint: every
	// commit fails until the syncer recovers (recover).
	err error

	// The syncer's own state (and close's, once the syncer has stopped).
	file        *os.File
	generation  uint64
	size        int64
	spareBuffer []byte
	spareWait   []func(error)
	// preallocated: the current file was prepared (zero-filled, synced).
	preallocated bool
	// spare is a prepared file ready for the next rotation, preparing is
	// set while one is written (both guarded by mu).
	spare     *os.File
	preparing bool
	// beforeSync runs before a file-system sync lets journal files go
	// (Store.writeDeferredRecords).
	beforeSync func() error
	// fault, set only by tests, injects errors into operations.
	fault atomic.Pointer[func(operation string) error]
	// checkpointing is set while a checkpoint runs (guarded by mu).
	checkpointing bool
	checkpoints   sync.WaitGroup
}

// journalBufferKeepBytes is the largest submission buffer the syncer keeps
// for reuse after a burst.
const journalBufferKeepBytes = 1 << 20

// journalEntry is one change of a session, in journal form.
type journalEntry struct {
	kind    byte
	session string
	payload []byte
}

func appendJournalEntry(buffer []byte, entry journalEntry) []byte {
	bodyLength := 1 + 2 + len(entry.session) + len(entry.payload)
	buffer = binary.LittleEndian.AppendUint32(buffer, uint32(bodyLength))
	start := len(buffer)
	buffer = append(buffer, entry.kind)
	buffer = binary.LittleEndian.AppendUint16(buffer, uint16(len(entry.session)))
	buffer = append(buffer, entry.session...)
	buffer = append(buffer, entry.payload...)
	return binary.LittleEndian.AppendUint32(buffer, crc32.Checksum(buffer[start:], castagnoli))
}

// decodeJournal returns the entries of the complete commits in a journal
// file's content (kinds without their flags). What follows the last of
// them is a torn write, unless an entry that ends a synced round follows
// an invalid entry: then the file is damaged (damage says where), and the
// entries returned are those before the damage and those of the complete
// commits that start after it (damage.go).
func decodeJournal(content []byte) (entries []journalEntry, damage string) {
	scan := scanJournal(content)
	return scan.entries, scan.damage
}

// journalScan is what decodeJournal finds in a journal file.
type journalScan struct {
	// entries are those of the complete commits (kinds without their
	// flags), commits the number of these commits.
	entries []journalEntry
	commits int
	// tornBytes follow the last complete commit: a torn write (not
	// counting the zeros at the end of a prepared file).
	tornBytes int
	// damage says where the file is damaged, "" if it is not.
	damage string
}

// scanJournal is decodeJournal, with the counts that Inspect reports.
func scanJournal(content []byte) (scan journalScan) {
	// A prepared file ends in zeros, and no entry starts in them (its
	// length would be 0). The zeros are not cut off the content: the last
	// entry's checksum may end in zero bytes.
	starts := len(bytes.TrimRight(content, "\x00"))
	offset := len(journalHeader)
	if !bytes.HasPrefix(content, []byte(journalHeader)) {
		if starts < len(journalHeader) && bytes.HasPrefix([]byte(journalHeader), content[:starts]) {
			scan.tornBytes = starts
			return scan // created, header not (fully) written
		}
		scan.damage, offset = "the header is missing or wrong", 0
		if !journalRoundAfter(content, 0, starts) {
			return scan
		}
		offset = nextJournalCommitStart(content, 0, starts)
	}
	for {
		decoded, commits, end, invalid := decodeJournalCommits(content, offset)
		scan.entries = append(scan.entries, decoded...)
		scan.commits += commits
		if invalid >= starts || !journalRoundAfter(content, invalid+1, starts) {
			// The end, or a torn write of the last round.
			scan.tornBytes = max(starts-end, 0)
			return scan
		}
		if scan.damage == "" {
			scan.damage = fmt.Sprintf("invalid entry at offset %d, synced entries after it", invalid)
		}
		offset = nextJournalCommitStart(content, invalid+1, starts)
	}
}

// decodeJournalCommits decodes entries from offset on and returns those of
// complete commits, the number of these commits and the offset after the
// last of them (offset if there is none), and the offset of the first
// entry that is not valid (len(content) if the content ran out).
func decodeJournalCommits(content []byte, offset int) (entries []journalEntry, commits, end, invalid int) {
	complete := 0 // entries of complete commits
	end = offset
	for offset < len(content) {
		entry, length, ok := decodeJournalEntry(content[offset:])
		if !ok {
			break
		}
		entries = append(entries, journalEntry{kind: entry.kind &^ journalFlags, session: entry.session, payload: entry.payload})
		offset += length
		if entry.kind&journalCommitEnd != 0 {
			complete = len(entries)
			commits++
			end = offset
		}
	}
	return entries[:complete], commits, end, offset
}

// decodeJournalEntry decodes the entry at the start of rest (kind with its
// flags) and returns its length in the file.
func decodeJournalEntry(rest []byte) (entry journalEntry, length int, ok bool) {
	if len(rest) < 4+3+4 {
		return journalEntry{}, 0, false
	}
	bodyLength := binary.LittleEndian.Uint32(rest)
	if uint64(bodyLength) < 3 || uint64(bodyLength) > uint64(len(rest)-8) {
		return journalEntry{}, 0, false
	}
	body := rest[4 : 4+bodyLength]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(rest[4+bodyLength:]) {
		return journalEntry{}, 0, false
	}
	idLength := int(binary.LittleEndian.Uint16(body[1:]))
	if 3+idLength > len(body) {
		return journalEntry{}, 0, false
	}
	return journalEntry{kind: body[0], session: string(body[3 : 3+idLength]), payload: body[3+idLength:]}, 8 + int(bodyLength), true
}

// journalRoundAfter reports whether a valid entry that ends a synced
// round starts at or after from (and before starts: see scanJournal).
func journalRoundAfter(content []byte, from, starts int) bool {
	return nextJournalEntry(content, from, starts, journalRoundEnd) < len(content)
}

// nextJournalCommitStart returns the offset of the first valid entry that
// starts a commit at or after from and before starts (len(content) if
// there is none).
func nextJournalCommitStart(content []byte, from, starts int) int {
	return nextJournalEntry(content, from, starts, journalCommitStart)
}

// nextJournalEntry returns the offset of the first valid entry at or
// after from and before starts whose kind has flag (len(content) if there
// is none).
func nextJournalEntry(content []byte, from, starts int, flag byte) int {
	for offset := from; offset < starts && offset+4+3+4 <= len(content); offset++ {
		if entry, _, ok := decodeJournalEntry(content[offset:]); ok && entry.kind&flag != 0 {
			return offset
		}
	}
	return len(content)
}

// journalFiles returns the generations of the journal files in directory,
// oldest first.
func journalFiles(directory string) ([]uint64, error) {
	entries, err := os.ReadDir(directory)
	if err != nil {
		return nil, err
	}
	var generations []uint64
	for _, entry := range entries {
		name, ok := strings.CutSuffix(entry.Name(), ".log")
		if !ok {
			continue
		}
		generation, err := strconv.ParseUint(name, 16, 64)
		if err != nil {
			continue
		}
		generations = append(generations, generation)
	}
	slices.Sort(generations)
	return generations, nil
}

func journalPath(directory string, generation uint64) string {
	return filepath.Join(directory, fmt.Sprintf("%016x.log", generation))
}

// openJournal starts a journal file after the generations found (which
// recovery has replayed).
func openJournal(directory string, next uint64, beforeSync func() error) (*journal, error) {
	j := &journal{directory: directory, generation: next, syncerDone: make(chan struct{}), stopped: make(chan struct{}), beforeSync: beforeSync}
	j.pending = sync.NewCond(&j.mu)
	file, err := j.create(next)
	if err != nil {
		return nil, err
	}
	j.file = file
	j.size = int64(len(journalHeader))
	os.Remove(filepath.Join(directory, spareJournalName)) // left by a crash
	go j.syncer()
	j.prepareSpare()
	return j, nil
}

// syncer writes and syncs what was submitted, round after round, until
// the journal stops and nothing is left (see journal).
func (j *journal) syncer() {
	defer close(j.syncerDone)
	retry := journalRetryMin
	for {
		j.mu.Lock()
		for len(j.waiters) == 0 && !j.stopping && j.err == nil && (j.preallocated || j.spare == nil || j.checkpointing) {
			j.pending.Wait()
		}
		if j.err != nil && !j.stopping && len(j.waiters) == 0 {
			j.mu.Unlock()
			// Failed: wait, then try to make everything durable again.
			if !j.sleep(retry) {
				continue
			}
			if err := j.recover(); err != nil {
				j.mu.Lock()
				j.err = fmt.Errorf("%w (retrying every %s)", err, min(2*retry, journalRetryMax))
				j.mu.Unlock()
				retry = min(2*retry, journalRetryMax)
			} else {
				retry = journalRetryMin
			}
			continue
		}
		if len(j.waiters) == 0 && j.stopping {
			j.mu.Unlock()
			return
		}
		if len(j.waiters) == 0 {
			// A prepared file is ready: switch to it now, between rounds.
			j.checkpointing = true
			j.mu.Unlock()
			j.rotate()
			continue
		}
		buffer, waiters, err := j.buffer, j.waiters, j.err
		markRoundEnd(buffer, j.lastEntry)
		j.buffer, j.waiters = j.spareBuffer[:0], j.spareWait[:0]
		j.mu.Unlock()

		if err == nil {
			err = j.writeAndSync(buffer)
		}
		if err != nil {
			// Failing before the waiters hear of it: whoever they tell
			// sees the failure (Health, the next commit).
			j.mu.Lock()
			if j.err == nil {
				j.err = err
			}
			j.mu.Unlock()
		}
		for _, waiter := range waiters {
			waiter(err)
		}
		clear(waiters)
		if cap(buffer) > journalBufferKeepBytes {
			buffer = nil
		}
		j.mu.Lock()
		j.spareBuffer, j.spareWait = buffer[:0], waiters[:0]
		rotate := j.err == nil && !j.checkpointing &&
			(j.size > journalCheckpointBytes || (!j.preallocated && j.spare != nil))
		if rotate {
			j.checkpointing = true
		}
		j.mu.Unlock()
		if rotate {
			j.rotate()
		}
	}
}

// Retrying after a storage error: the first retry waits journalRetryMin,
// each next one twice as long, up to journalRetryMax.
const (
	journalRetryMin = 100 * time.Millisecond
	journalRetryMax = 5 * time.Second
)

// injected returns the error a test injects into operation, or nil.
func (j *journal) injected(operation string) error {
	if fault := j.fault.Load(); fault != nil {
		return (*fault)(operation)
	}
	return nil
}

// failure returns the storage error that makes commits fail now, or nil.
func (j *journal) failure() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err == store.ErrClosed {
		return nil
	}
	return j.err
}

// sleep waits for d, or until the journal stops; it reports whether the
// whole time passed.
func (j *journal) sleep(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-j.stopped:
		return false
	}
}

// recover ends a storage failure (a full disk, an I/O error): it starts a
// new journal file and syncs the file system, which makes durable every
// change the failed rounds had made to the session files (they were made
// before they were journaled); the old journal files are then not needed.
// Until it succeeds every commit fails at once. On the syncer's goroutine.
func (j *journal) recover() error {
	if err := j.injected("recover"); err != nil {
		return err
	}
	file, err := j.create(j.generation + 1)
	if err != nil {
		return err
	}
	if err := j.beforeSync(); err != nil {
		file.Close()
		os.Remove(file.Name())
		return fmt.Errorf("writing records: %w", err)
	}
	if err := syncFileSystem(j.directory); err != nil {
		file.Close()
		os.Remove(file.Name())
		return fmt.Errorf("syncing the file system: %w", err)
	}
	j.checkpoints.Wait()
	j.file.Close()
	old := j.generation
	j.mu.Lock()
	j.file, j.generation, j.size = file, j.generation+1, int64(len(journalHeader))
	j.preallocated = false
	j.err = nil
	j.mu.Unlock()
	removeJournals(j.directory, old)
	return nil
}

// markRoundEnd flags the entry at offset in buffer as the end of a round
// and updates its checksum.
func markRoundEnd(buffer []byte, offset int) {
	length := int(binary.LittleEndian.Uint32(buffer[offset:]))
	body := buffer[offset+4 : offset+4+length]
	body[0] |= journalRoundEnd
	binary.LittleEndian.PutUint32(buffer[offset+4+length:], crc32.Checksum(body, castagnoli))
}

// writeAndSync appends one round of entries to the journal file and syncs
// it.
func (j *journal) writeAndSync(buffer []byte) error {
	if err := j.injected("write"); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	if _, err := j.file.WriteAt(buffer, j.size); err != nil {
		return fmt.Errorf("writing the journal: %w", err)
	}
	j.size += int64(len(buffer))
	if err := fdatasync(j.file); err != nil {
		return fmt.Errorf("syncing the journal: %w", err)
	}
	return nil
}

// create creates journal file generation with its header, durably (file
// and directory entry).
func (j *journal) create(generation uint64) (*os.File, error) {
	file, err := os.OpenFile(journalPath(j.directory, generation), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := file.WriteAt([]byte(journalHeader), 0); err == nil {
		err = file.Sync()
	}
	if err == nil {
		err = syncDirectory(j.directory)
	}
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("creating journal %s: %w", file.Name(), err)
	}
	return file, nil
}

// submit hands a commit's entries to the syncer; durable is called once
// they are durable or failed (from the syncer's goroutine; it must not
// block).
func (j *journal) submit(entries []journalEntry, durable func(error)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.err != nil {
		return j.err
	}
	if j.stopping {
		return store.ErrClosed
	}
	for i, entry := range entries {
		if i == 0 {
			entry.kind |= journalCommitStart
		}
		if i == len(entries)-1 {
			entry.kind |= journalCommitEnd
			j.lastEntry = len(j.buffer)
		}
		j.buffer = appendJournalEntry(j.buffer, entry)
	}
	j.waiters = append(j.waiters, durable)
	if len(j.waiters) == 1 {
		j.pending.Signal()
	}
	return nil
}

// commit writes entries and returns once they are durable. Concurrent
// commits share one write and one fdatasync (group commit).
func (j *journal) commit(entries []journalEntry) error {
	done := make(chan error, 1)
	if err := j.submit(entries, func(err error) { done <- err }); err != nil {
		return err
	}
	return <-done
}

// rotate starts a new journal file, on the syncer's goroutine between two
// rounds (everything written to the old file is durable), and starts a
// checkpoint of the old one.
func (j *journal) rotate() {
	file, preallocated, err := j.next()
	if err != nil {
		j.mu.Lock()
		j.err = err
		j.checkpointing = false
		j.mu.Unlock()
		return
	}
	j.file.Close()
	old := j.generation
	j.mu.Lock() // for readers outside the syncer (tests)
	j.file, j.generation, j.size = file, j.generation+1, int64(len(journalHeader))
	j.preallocated = preallocated
	j.mu.Unlock()
	j.checkpoints.Go(func() { j.checkpoint(old) })
	j.prepareSpare()
}

// # Preallocated journal files
//
// An fdatasync of a file that grew must also commit the file system's own
// journal (the new size and blocks), and with it every other metadata
// change waiting there: the message logs' new sizes, renamed records. An
// fdatasync of blocks that were written and synced before does not: it
// writes the data and flushes the disk's cache. So journal files are
// prepared in advance, in the background, as zero-filled, synced files of
// journalPreallocateBytes (the header, then zeros: a decoder sees the end
// of the entries at the first zero length), and the syncer overwrites
// them. The first file after Open is an ordinary growing file; the syncer
// switches to a prepared one as soon as it is ready, and prepares the
// next after each switch. A round that goes past the preallocated size
// simply grows the file.

// journalPreallocateBytes is the size of a prepared journal file, zero to
// prepare none (tests).
var journalPreallocateBytes int64 = journalCheckpointBytes + 4<<20

// spareJournalName is the file being prepared, in the journal directory.
const spareJournalName = "next.spare"

// next returns the next journal file: the prepared one if it is ready,
// else a new growing one. On the syncer's goroutine.
func (j *journal) next() (*os.File, bool, error) {
	j.mu.Lock()
	spare := j.spare
	j.spare = nil
	j.mu.Unlock()
	if spare == nil {
		file, err := j.create(j.generation + 1)
		return file, false, err
	}
	target := journalPath(j.directory, j.generation+1)
	err := os.Rename(spare.Name(), target)
	if err == nil {
		err = syncDirectory(j.directory)
	}
	if err != nil {
		spare.Close()
		os.Remove(spare.Name())
		file, err := j.create(j.generation + 1)
		return file, false, err
	}
	return spare, true, nil
}

// prepareSpare starts preparing the next journal file in the background,
// unless one is ready or being prepared.
func (j *journal) prepareSpare() {
	if journalPreallocateBytes <= 0 {
		return
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.spare != nil || j.preparing || j.stopping {
		return
	}
	j.preparing = true
	j.checkpoints.Go(j.writeSpare)
}

// writeSpare writes the spare journal file: header, zeros, synced. It
// gives up when the journal stops.
func (j *journal) writeSpare() {
	path := filepath.Join(j.directory, spareJournalName)
	file, err := j.fillSpare(path)
	j.mu.Lock()
	defer j.mu.Unlock()
	j.preparing = false
	if err != nil || j.stopping {
		if file != nil {
			file.Close()
		}
		os.Remove(path)
		return
	}
	j.spare = file
	j.pending.Signal() // the syncer may switch to it
}

func (j *journal) fillSpare(path string) (*os.File, error) {
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	zeros := make([]byte, 1<<20)
	copy(zeros, journalHeader)
	for offset := int64(0); offset < journalPreallocateBytes; offset += int64(len(zeros)) {
		select {
		case <-j.stopped:
			return file, store.ErrClosed
		default:
		}
		chunk := zeros[:min(int64(len(zeros)), journalPreallocateBytes-offset)]
		if _, err := file.WriteAt(chunk, offset); err != nil {
			return file, err
		}
		if offset == 0 {
			clear(zeros[:len(journalHeader)])
		}
	}
	if err := file.Sync(); err != nil {
		return file, err
	}
	return file, nil
}

// checkpoint makes the session files durable up to the rotation and
// removes the journal files that covered them.
func (j *journal) checkpoint(old uint64) {
	defer func() {
		j.mu.Lock()
		j.checkpointing = false
		j.mu.Unlock()
	}()
	// Every change journaled in the old files was made to the session
	// files before it was journaled (records are written now): syncfs
	// makes them durable.
	if err := j.beforeSync(); err != nil {
		j.mu.Lock()
		j.err = fmt.Errorf("checkpoint: writing records: %w", err)
		j.mu.Unlock()
		return
	}
	if err := syncFileSystem(j.directory); err != nil {
		j.mu.Lock()
		j.err = fmt.Errorf("checkpoint: syncing the file system: %w", err)
		j.mu.Unlock()
		return
	}
	removeJournals(j.directory, old)
}

// removeJournals removes the journal files up to generation last. Removing
// them needs no sync: replaying them again would change nothing.
func removeJournals(directory string, last uint64) {
	generations, _ := journalFiles(directory)
	for _, generation := range generations {
		if generation <= last {
			os.Remove(journalPath(directory, generation))
		}
	}
}

// close makes the session files durable and removes every journal file:
// a cleanly closed store needs no replay.
func (j *journal) close() error {
	j.stop()
	j.mu.Lock()
	file, generation, failed := j.file, j.generation, j.err
	j.file = nil
	j.err = store.ErrClosed
	j.mu.Unlock()
	if file == nil {
		return nil
	}
	err := file.Close()
	if failed == nil {
		if syncErr := syncFileSystem(j.directory); syncErr != nil {
			return fmt.Errorf("syncing the file system: %w", syncErr)
		}
		removeJournals(j.directory, generation)
	}
	return err
}

// abandon stops the journal as a crash would: it waits for the syncer and
// a running checkpoint, and closes the journal file, which stays for the
// next Open to replay.
func (j *journal) abandon() {
	j.stop()
	j.mu.Lock()
	file := j.file
	j.file = nil
	j.err = store.ErrClosed
	j.mu.Unlock()
	if file != nil {
		file.Close()
	}
}

// stop lets the syncer finish what was submitted, stops it and waits for
// a running checkpoint.
func (j *journal) stop() {
	j.mu.Lock()
	if !j.stopping {
		j.stopping = true
		close(j.stopped)
	}
	j.pending.Signal()
	j.mu.Unlock()
	<-j.syncerDone
	j.checkpoints.Wait()
	j.mu.Lock()
	spare := j.spare
	j.spare = nil
	j.mu.Unlock()
	if spare != nil {
		spare.Close()
		os.Remove(spare.Name())
	}
}

// seqAfter reports whether seq a comes after b (uint32 wrap-around).
func seqAfter(a, b uint32) bool { return int32(a-b) > 0 }

// replayJournals applies every journal file in directory to the session
// files, oldest first, syncs the file system and removes them (a damaged
// one is moved to quarantine/ instead). A session found damaged is
// quarantined and its entries are skipped until the journal deletes it.
// It returns the next generation to use. No call is in progress while
// Open runs it.
func (s *Store) replayJournals(directory string) (uint64, error) {
	generations, err := journalFiles(directory)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 1, nil
		}
		return 0, err
	}
	if len(generations) == 0 {
		return 1, nil
	}
	s.crashed = true
	decoded := make([][]journalEntry, len(generations))
	damaged := make([]bool, len(generations))
	defer func() { s.replaying = nil }()
	for i, generation := range generations {
		path := journalPath(directory, generation)
		content, err := os.ReadFile(path)
		if err != nil {
			return 0, err
		}
		var damage string
		decoded[i], damage = decodeJournal(content)
		if damage != "" {
			damaged[i] = true
			s.recovery.JournalDamage = append(s.recovery.JournalDamage, fmt.Sprintf("%s: %s", path, damage))
		}
	}
	s.replaying = journalFirstAppends(decoded)
	quarantined := map[string]bool{}
	for i, generation := range generations {
		for _, entry := range decoded[i] {
			if quarantined[entry.session] && entry.kind != journalDelete {
				continue
			}
			delete(quarantined, entry.session)
			err := s.replay(entry)
			var corrupt *CorruptError
			if errors.As(err, &corrupt) {
				s.recovery.Quarantined = append(s.recovery.Quarantined, corrupt)
				quarantined[entry.session] = true
				continue
			}
			if err != nil {
				return 0, fmt.Errorf("replaying %s: session %q: %w", journalPath(directory, generation), entry.session, err)
			}
			s.recovery.Replayed++
		}
	}
	if err := s.writeDeferredRecords(); err != nil {
		return 0, fmt.Errorf("writing the replayed records: %w", err)
	}
	if err := s.closeLogs(); err != nil {
		return 0, err
	}
	if err := syncFileSystem(directory); err != nil {
		return 0, fmt.Errorf("syncing the replayed sessions: %w", err)
	}
	for i, generation := range generations {
		if damaged[i] {
			if err := s.quarantineJournal(journalPath(directory, generation)); err != nil {
				return 0, err
			}
		}
	}
	last := generations[len(generations)-1]
	removeJournals(directory, last)
	return last + 1, nil
}

// quarantineJournal moves a damaged journal file to quarantine/.
func (s *Store) quarantineJournal(path string) error {
	if err := s.makeDirectories(s.root, quarantineDirectoryName, true); err != nil {
		return err
	}
	target := s.quarantinePath("journal-" + filepath.Base(path))
	if err := os.Rename(path, target); err != nil {
		return fmt.Errorf("quarantining the damaged journal %s: %w", path, err)
	}
	for index, damage := range s.recovery.JournalDamage {
		if strings.HasPrefix(damage, path+":") {
			s.recovery.JournalDamage[index] += "; moved to " + target
		}
	}
	if err := syncDirectory(filepath.Dir(target)); err != nil {
		return err
	}
	return syncDirectory(filepath.Dir(path))
}

// replay applies one journal entry to the session files (not synced).
func (s *Store) replay(entry journalEntry) error {
	if store.ValidateSessionID(entry.session) != nil {
		return fmt.Errorf("invalid session id in journal")
	}
	state := s.acquire(entry.session)
	defer s.release(state)
	switch entry.kind {
	case journalAppend:
		messages, err := decodeJournalAppend(entry.payload)
		if err != nil {
			return err
		}
		if err := s.useLog(state, true); err != nil {
			return err
		}
		if state.log.count > 0 {
			// Only what the log does not hold yet.
			var damage string
			messages, damage = journalAppendRest(state.logPath(), state.log.last, messages)
			if damage != "" {
				return s.quarantine(state, damage)
			}
		}
		if len(messages) == 0 {
			return nil
		}
		frames, err := appendFrames(nil, messages)
		if err != nil {
			return err
		}
		return s.appendToLog(state, frames, len(messages), messages[len(messages)-1].Seq)
	case journalRecord:
		// Only a session's last record matters: written once, after the
		// replay (replayJournals).
		if err := s.makeSessionDirectory(state); err != nil {
			return err
		}
		s.deferRecord(state, entry.payload)
		return nil
	case journalDrop:
		through, err := decodeJournalDrop(entry.payload)
		if err != nil {
			return err
		}
		if err := s.useLog(state, false); errors.Is(err, errNoLog) {
			return nil
		} else if err != nil {
			return err
		}
		content, err := s.readLog(state)
		if err != nil {
			return err
		}
		messages, _, err := decodeLog(content)
		if err != nil {
			return err
		}
		count := messagesThrough(messages, through)
		if count == 0 {
			return nil
		}
		_, err = s.dropFromLog(state, count)
		return err
	case journalDelete:
		return s.deleteSession(state)
	default:
		return fmt.Errorf("unknown journal entry kind %d", entry.kind)
	}
}

// journalFirstAppends maps every session that the decoded journal files
// (oldest first) hold appends of to the seq of the first message appended:
// where the replay expects a log's torn end (damage.go).
func journalFirstAppends(decoded [][]journalEntry) map[string]uint32 {
	first := map[string]uint32{}
	for _, entries := range decoded {
		for _, entry := range entries {
			if _, seen := first[entry.session]; !seen && entry.kind == journalAppend && len(entry.payload) >= frameHeaderBytes {
				first[entry.session] = frameSeq(entry.payload, 0)
			}
		}
	}
	return first
}

// decodeJournalAppend returns the messages of an append entry's payload.
func decodeJournalAppend(payload []byte) ([]store.Message, error) {
	messages, validBytes, err := decodeLog(append([]byte(logHeader), payload...))
	if err != nil || validBytes != len(logHeader)+len(payload) {
		return nil, errors.New("journal append entry holds invalid frames")
	}
	return messages, nil
}

// decodeJournalDrop returns the seq of the last message a drop entry drops.
func decodeJournalDrop(payload []byte) (uint32, error) {
	if len(payload) != 4 {
		return 0, errors.New("journal drop entry of the wrong size")
	}
	return binary.LittleEndian.Uint32(payload), nil
}

// journalAppendRest returns the messages of a replayed append that the
// log at path, whose last message has seq last, does not hold yet; or,
// if they do not continue it, why the session is damaged (messages
// between them were lost).
func journalAppendRest(path string, last uint32, messages []store.Message) (rest []store.Message, damage string) {
	first := 0
	for first < len(messages) && !seqAfter(messages[first].Seq, last) {
		first++
	}
	rest = messages[first:]
	if len(rest) > 0 && rest[0].Seq != last+1 {
		return nil, fmt.Sprintf("%s ends at seq %d, and the journal continues it at seq %d: messages between are lost",
			path, last, rest[0].Seq)
	}
	return rest, ""
}

// messagesThrough returns how many messages at the start of messages a
// replayed drop of the messages up to seq through removes.
func messagesThrough(messages []store.Message, through uint32) int {
	count := 0
	for count < len(messages) && !seqAfter(messages[count].Seq, through) {
		count++
	}
	return count
}

// closeLogs closes every open message log. No call is in progress.
func (s *Store) closeLogs() error {
	var errs []error
	for element := s.openLogs.Front(); element != nil; {
		next := element.Next()
		opened := element.Value.(*session)
		opened.mu.Lock()
		errs = append(errs, s.closeLog(opened))
		opened.mu.Unlock()
		s.mu.Lock()
		if opened.users == 0 {
			delete(s.sessions, opened.id)
		}
		s.mu.Unlock()
		element = next
	}
	return errors.Join(errs...)
}
