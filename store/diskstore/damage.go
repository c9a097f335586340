package diskstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// # Damage is not a torn write
//
// A crash can leave a torn write at the end of a file: the last write, or
// the writes that were not yet synced, reached the disk in part. That is
// expected, and cutting it off loses nothing anybody was told about. Any
// other invalid byte is damage (a bad sector, a bit flip, a file changed
// by hand), and cutting the file there would throw away messages that
// clients have seen and let the session stamp their sequence numbers
// again with other contents. So the store tells the two apart:
//
//   - Valid frames after an invalid one are never a torn write (a crash
//     cannot write data after data that never reached the disk within one
//     synced file), except during the journal's replay for the part of a
//     log the journal holds again (see below).
//   - With the journal, after a clean Close every message log was synced:
//     any invalid byte in a log is damage. After a crash, a log may end in
//     commits that were written but never made durable nor acknowledged (a
//     power cut can keep a log's new size without its data): an invalid
//     end with no valid frame after it is a torn write, cut off. What is
//     lost that clients had seen shows as a gap between the record and the
//     log, which the reflector refuses to restore (the session is then
//     quarantined too: host.Quarantiner). During the replay, a log's torn end is expected
//     only where the journal holds the same messages again: the log's
//     valid part must reach the journal's first message of the session.
//     An empty log, or one with a partial header, is what a power cut
//     leaves of a log created after the last checkpoint; the replay
//     rewrites it.
//   - Without the journal (Durable elsewhere, or not durable) a torn end
//     with no valid frame after it is cut off, as before.
//
// A damaged session is quarantined: its directory is moved, whole, to
// quarantine/<sessionId>-<UTC time>/ (synced), and LoadSession or Commit
// return a *CorruptError (store.ErrCorrupt) naming the path. Nothing is
// deleted or truncated. The session then has no stored state, so the
// reflector starts it on a new timeline: clients see the change and join
// from scratch, and no sequence number is reused on the old timeline.
// The journal records the quarantine as a deletion, so that replaying
// older entries after a later crash cannot mix the old session into the
// new one.
//
// A damaged journal (an entry that fails its checksum with valid entries
// after it, or a wrong header) is replayed as far as it can be: the
// entries before the damage, then, from the first complete commit after
// it, the rest. Each session's appends must continue its log without a
// gap; one that does not lost messages in the damage and is quarantined.
// The damaged journal file is moved to quarantine/ instead of removed.
// Open reports all of this in Recovery. One case stays invisible: if the
// damaged entries held a session's last changes and nothing of that session
// follows them, no gap shows; the session files still hold those changes
// unless a power cut took them too, and then the session keeps its timeline
// without its last messages. The journal damage is reported either way.

// quarantineDirectoryName is where damaged sessions and journals go.
const quarantineDirectoryName = "quarantine"

// CorruptError reports a damaged session whose files were quarantined.
type CorruptError struct {
	Session string
	// Reason says what is wrong, naming the file and offset.
	Reason string
	// Quarantine is the directory the session's files were moved to.
	Quarantine string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("session %q is damaged (%s): its files were moved to %s and it starts on a new timeline",
		e.Session, e.Reason, e.Quarantine)
}

// Is makes a *CorruptError match store.ErrCorrupt.
func (e *CorruptError) Is(target error) bool { return target == store.ErrCorrupt }

// Recovery describes what Open found and repaired in the data directory.
type Recovery struct {
	// Replayed is the number of journal entries replayed (non-zero after
	// a crash of a durable store).
	Replayed int
	// Quarantined lists the sessions found damaged and moved away.
	Quarantined []*CorruptError
	// JournalDamage describes each damaged journal file and where it went.
	JournalDamage []string
}

// Recovery returns what Open found and repaired.
func (s *Store) Recovery() Recovery { return s.recovery }

// Health returns the storage error that makes commits fail now (a full
// disk, an I/O error: the store retries by itself, see journal.go), or nil
// when the store works.
func (s *Store) Health() error {
	if s.journal != nil {
		if err := s.journal.failure(); err != nil {
			return err
		}
	}
	if err := s.writeFailure.Load(); err != nil {
		return *err
	}
	return nil
}

// Quarantine moves a session whose stored data its user found damaged (the
// reflector could not restore it: reason says why) to quarantine/, like
// the damage the store finds itself, and returns the *CorruptError that
// reports it (store.ErrCorrupt). Quarantining an unknown session succeeds
// with store.ErrNotFound.
func (s *Store) Quarantine(ctx context.Context, sessionID, reason string) error {
	if err := check(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return err
	}
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	state := s.acquire(sessionID)
	defer s.release(state)
	if !exists(state.directory) {
		return store.ErrNotFound
	}
	return s.quarantine(state, reason)
}

// quarantine moves a damaged session's directory to quarantine/ and
// returns the *CorruptError that reports it. The caller holds state.mu.
func (s *Store) quarantine(state *session, reason string) error {
	_ = s.closeLog(state)
	if state.pendingRecord != nil {
		_ = s.writeRecord(state, state.pendingRecord) // for whoever looks at it
	}
	s.forgetRecord(state)
	if err := s.makeDirectories(s.root, quarantineDirectoryName, true); err != nil {
		return fmt.Errorf("quarantining damaged session (%s): %w", reason, err)
	}
	target := s.quarantinePath(state.id)
	if err := os.Rename(state.directory, target); err != nil {
		return fmt.Errorf("quarantining damaged session (%s): %w", reason, err)
	}
	if err := syncDirectory(filepath.Dir(target)); err != nil {
		return err
	}
	if err := syncDirectory(s.sessionsDirectory); err != nil {
		return err
	}
	corrupt := &CorruptError{Session: state.id, Reason: reason, Quarantine: target}
	if s.journal != nil {
		// Replaying older entries after a later crash must not bring the
		// damaged session back under the new one.
		if err := s.journal.commit([]journalEntry{{kind: journalDelete, session: state.id}}); err != nil {
			return fmt.Errorf("%v; journaling it failed: %w", corrupt, err)
		}
	}
	return corrupt
}

// quarantinePath returns a new path under quarantine/ for name.
func (s *Store) quarantinePath(name string) string {
	base := filepath.Join(s.root, quarantineDirectoryName, name+"-"+time.Now().UTC().Format("20060102T150405.000000000Z"))
	path := base
	for i := 2; exists(path); i++ {
		path = fmt.Sprintf("%s-%d", base, i)
	}
	return path
}

// logRules are the circumstances in which a log is opened, which decide
// what its invalid bytes are (see above).
type logRules struct {
	// durable and journaled are the store's: Options.Durable, and whether
	// it keeps a journal.
	durable, journaled bool
	// replaying: Open is replaying the journal. covered: the journal holds
	// appends of the session, the first of them starting at seq first.
	replaying, covered bool
	first              uint32
	// crashed: Open found a journal, so the last run did not close the
	// store: any log may end in commits that were written, never made
	// durable and never acknowledged (a power cut keeps a log's new size
	// without its data, which reads as zeros). Their remains are a torn
	// write, not damage, also in a log the journal does not cover.
	crashed bool
}

// logRules returns the rules for opening the session's log now.
func (s *Store) logRules(sessionID string) logRules {
	first, covered := s.replaying[sessionID]
	return logRules{durable: s.durable, journaled: s.journaled, replaying: s.replaying != nil, covered: covered, first: first, crashed: s.crashed}
}

// logVerdict is what opening a log decides about its content.
type logVerdict struct {
	// messages are those of the complete commits, which occupy validBytes
	// of the content (with the header); the rest is a torn write to cut
	// off, unless damage says why it is damage.
	messages   []store.Message
	validBytes int
	// emptied: the content is empty or a part of the header, what a power
	// cut leaves of a new log; it is rewritten as an empty log (validBytes
	// then counts the header written, not the content).
	emptied bool
	damage  string
}

// judgeLog decides what opening the log at path with content does under
// rules: keep its complete commits and cut the rest, rewrite it as empty,
// or quarantine it (damage). Open's replay, LoadSession and Inspect all
// decide with it.
func judgeLog(path string, content []byte, rules logRules) logVerdict {
	messages, validBytes, err := decodeLog(content)
	if err != nil && (rules.replaying || rules.crashed || !rules.durable) && isHeaderPrefix(content) {
		// What a power cut leaves of a log created after the last
		// checkpoint (the journal holds its messages) or, without
		// durability, of any new log.
		return logVerdict{validBytes: len(logHeader), emptied: true}
	}
	if err != nil {
		return logVerdict{damage: fmt.Sprintf("%s: %v", path, err)}
	}
	verdict := logVerdict{messages: messages, validBytes: validBytes}
	if validBytes < len(content) {
		verdict.damage = logDamage(path, content, validBytes, messages, rules)
	}
	return verdict
}

// logDamage decides whether the invalid bytes after the valid part of a
// log (validBytes of content, holding messages) are damage, and if so
// says why (see above); "" means a torn write to cut off.
func logDamage(path string, content []byte, validBytes int, messages []store.Message, rules logRules) string {
	if rules.replaying {
		if rules.covered && len(messages) > 0 && !seqAfter(rules.first, messages[len(messages)-1].Seq+1) {
			return "" // the journal holds the rest again
		}
		if rules.covered && len(messages) == 0 && !validFrameAfter(content, validBytes) {
			return "" // a torn first append after the log was created
		}
	}
	if validFrameAfter(content, validBytes) {
		return fmt.Sprintf("%s: invalid frame at offset %d with valid frames after it", path, validBytes)
	}
	if rules.journaled && !rules.replaying && !rules.crashed {
		return fmt.Sprintf("%s: %d invalid bytes at offset %d after the last complete commit of a synced log",
			path, len(content)-validBytes, validBytes)
	}
	return ""
}

// validFrameAfter reports whether a valid message-log frame starts
// anywhere after offset from in content.
func validFrameAfter(content []byte, from int) bool {
	for offset := from + 1; offset+frameHeaderBytes+frameChecksumBytes <= len(content); offset++ {
		rest := content[offset:]
		length := binary.LittleEndian.Uint32(rest)
		if uint64(length) > uint64(len(rest)-frameHeaderBytes-frameChecksumBytes) || rest[8]&^frameFlagCommitEnd != 0 {
			continue
		}
		dataEnd := frameHeaderBytes + int(length)
		if crc32.Checksum(rest[:dataEnd], castagnoli) == binary.LittleEndian.Uint32(rest[dataEnd:]) {
			return true
		}
	}
	return false
}

// isHeaderPrefix reports whether content is empty or a part of the
// message log header: what a power cut leaves of a new log.
func isHeaderPrefix(content []byte) bool {
	return len(content) < len(logHeader) && bytes.HasPrefix([]byte(logHeader), content)
}

// errQuarantined marks a session quarantined during the replay; its
// entries are skipped until the journal deletes it.
var errQuarantined = errors.New("quarantined")
