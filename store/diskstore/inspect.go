package diskstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/metronome-sync/metronome/store"
)

// # Inspecting a data directory
//
// Inspect reports what Open and then LoadSession of every session would
// find in a data directory and do to it, without changing it: it reads
// the files and applies, in memory, the decisions the store makes with
// the same functions (judgeLog for a log, scanJournal and
// journalFirstAppends for the journal, decodeJournalAppend,
// journalAppendRest and messagesThrough for the replay of an entry). It
// holds the data directory's lock meanwhile, so nothing changes the files
// under it; the lock file is the only file it writes (it names the
// holder, as Open does).
//
// Each session gets a verdict:
//
//   - intact: Open and LoadSession change nothing.
//   - torn: a torn write at the end of the log (a commit that never
//     returned) is cut off, or an empty log of a store that is not
//     durable is rewritten; nothing a commit acknowledged is lost.
//   - recoverable: the journal's replay restores what the files miss
//     after a crash (messages, a record, a log, a drop, a deletion).
//   - damaged: the store quarantines the session (damage.go) and it
//     starts on a new timeline; or the verify function of InspectVerify
//     refused what LoadSession would return (VerifyError).

// Verdict says what the store does with a session's files.
type Verdict string

// The verdicts; see "Inspecting a data directory".
const (
	VerdictIntact      Verdict = "intact"
	VerdictTorn        Verdict = "torn"
	VerdictRecoverable Verdict = "recoverable"
	VerdictDamaged     Verdict = "damaged"
)

// InspectReport is what Inspect found in a data directory.
type InspectReport struct {
	Directory string `json:"directory"`
	// Durable and Journaled are the rules the verdicts follow: those of a
	// Store opened with Options.Durable, which keeps a journal (Durable
	// on Linux) or not.
	Durable   bool `json:"durable"`
	Journaled bool `json:"journaled"`
	// OpenError is the error Open would fail with (the server would not
	// start); the verdicts then describe a replay that never completes.
	OpenError string `json:"open_error,omitempty"`
	// Journals are the journal files, oldest first: Open replays them.
	Journals []JournalReport `json:"journals"`
	// Sessions are the sessions on disk or in the journal, sorted by id.
	Sessions []SessionReport `json:"sessions"`
	// Ignored lists the entries of sessions/ that the store ignores, and
	// why.
	Ignored []string `json:"ignored,omitempty"`
	// Quarantine lists the entries of quarantine/ (damage.go).
	Quarantine []string `json:"quarantine,omitempty"`
	// Leftovers lists what interrupted writes left, relative to the data
	// directory: entries of tmp/ (Open removes them) and the prepared
	// journal file journal/next.spare (a durable Open removes it).
	Leftovers []string `json:"leftovers,omitempty"`
}

// JournalReport describes one journal file.
type JournalReport struct {
	Path  string `json:"path"`
	Bytes int64  `json:"bytes"`
	// Entries of Commits complete commits are replayed; TornTailBytes
	// after the last of them are a torn write (zeros that end a prepared
	// file not counted).
	Entries       int `json:"entries"`
	Commits       int `json:"commits"`
	TornTailBytes int `json:"torn_tail_bytes"`
	// Damage says where the file is damaged; Open then replays what it
	// can read around the damage and moves the file to quarantine/.
	Damage string `json:"damage,omitempty"`
	// Sessions are those the file holds changes for, sorted by id.
	Sessions []JournalSessionReport `json:"sessions"`
}

// JournalSessionReport is what a journal file holds of one session.
type JournalSessionReport struct {
	ID      string `json:"id"`
	Entries int    `json:"entries"`
	// FirstAppendedSeq is the seq of the first message the file appends
	// to the session, nil if it appends none.
	FirstAppendedSeq *uint32 `json:"first_appended_seq,omitempty"`
}

// SessionReport describes one session.
type SessionReport struct {
	ID      string  `json:"id"`
	Verdict Verdict `json:"verdict"`
	// Reason says why the verdict is not intact; for a damaged session,
	// the reason the store gives when it quarantines it.
	Reason string `json:"reason,omitempty"`
	// Messages and Seqs are what LoadSession returns after Open (none for
	// a quarantined session, which starts again).
	Messages int       `json:"messages"`
	Seqs     *SeqRange `json:"seqs,omitempty"`
	// Record and Log describe the files as they are (nil: no file).
	Record *RecordFileReport `json:"record,omitempty"`
	Log    *LogFileReport    `json:"log,omitempty"`
	// JournalEntries counts the journal's entries for the session;
	// JournalRecordBytes is the size of the newest record among them (the
	// record not yet written to record.json), 0 if there is none.
	JournalEntries     int `json:"journal_entries,omitempty"`
	JournalRecordBytes int `json:"journal_record_bytes,omitempty"`
	// VerifyError is the error of InspectVerify's verify function.
	VerifyError string `json:"verify_error,omitempty"`
}

// RecordFileReport describes a record.json.
type RecordFileReport struct {
	Bytes     int  `json:"bytes"`
	ValidJSON bool `json:"valid_json"`
}

// LogFileReport describes a messages.log as it is.
type LogFileReport struct {
	Bytes       int  `json:"bytes"`
	HeaderValid bool `json:"header_valid"`
	// ValidBytes are the header and the complete commits whose frames
	// all have valid checksums, holding Messages messages.
	ValidBytes int       `json:"valid_bytes"`
	Messages   int       `json:"messages"`
	Seqs       *SeqRange `json:"seqs,omitempty"`
}

// SeqRange is the seqs of the first and the last of some messages.
type SeqRange struct {
	First uint32 `json:"first"`
	Last  uint32 `json:"last"`
}

// Count returns the number of sessions with the verdict.
func (r *InspectReport) Count(verdict Verdict) int {
	count := 0
	for _, session := range r.Sessions {
		if session.Verdict == verdict {
			count++
		}
	}
	return count
}

// Damaged reports whether anything is damaged: a session, a journal
// file, or so much that Open fails.
func (r *InspectReport) Damaged() bool {
	for _, journal := range r.Journals {
		if journal.Damage != "" {
			return true
		}
	}
	return r.OpenError != "" || r.Count(VerdictDamaged) > 0
}

// Inspect reports what Open and LoadSession with options would find in
// the data directory and do to it, without changing it (see "Inspecting a
// data directory"). It takes the directory's lock like Open, and fails
// with a *LockedError while a Store has the directory open.
func Inspect(directory string, options Options) (*InspectReport, error) {
	return InspectVerify(directory, options, nil)
}

// InspectVerify is Inspect, and calls verify (unless nil) for every
// session that LoadSession would return after Open, with what it would
// return (valid only during the call). An error of verify makes the
// session damaged, with the error as its reason and VerifyError.
func InspectVerify(directory string, options Options, verify func(sessionID string, stored store.Session) error) (*InspectReport, error) {
	if err := options.Validate(); err != nil {
		return nil, err
	}
	if directory == "" {
		return nil, errors.New("diskstore: data directory is empty")
	}
	if info, err := os.Stat(directory); err != nil {
		return nil, fmt.Errorf("diskstore: data directory: %w", err)
	} else if !info.IsDir() {
		return nil, fmt.Errorf("diskstore: data directory %s is not a directory", directory)
	}
	lock, err := lockDirectory(directory)
	if err != nil {
		return nil, err
	}
	defer lock.release()
	inspection := &inspection{
		root:   directory,
		rules:  logRules{durable: options.Durable, journaled: options.Durable && fileSystemSyncAvailable},
		verify: verify,
	}
	return inspection.run()
}

// inspection is the state of one Inspect.
type inspection struct {
	root   string
	rules  logRules // durable and journaled; the rest is set per log
	verify func(string, store.Session) error
	report InspectReport
	// replay: there are journal files, which Open replays; first is
	// journalFirstAppends of them, entries each session's entries in the
	// order of the replay.
	replay  bool
	first   map[string]uint32
	entries map[string][]replayEntry
	// failure is the first entry whose replay fails Open.
	failure *replayFailure
}

// replayEntry is a journal entry with its place in the replay.
type replayEntry struct {
	journalEntry
	index int
	path  string
}

// replayFailure is the error of Open's replay at entry index.
type replayFailure struct {
	index   int
	message string
}

func (i *inspection) fail(failure *replayFailure) {
	if failure != nil && (i.failure == nil || failure.index < i.failure.index) {
		i.failure = failure
	}
}

func (i *inspection) run() (*InspectReport, error) {
	i.report = InspectReport{Directory: i.root, Durable: i.rules.durable, Journaled: i.rules.journaled}
	if err := i.readJournals(); err != nil {
		return nil, err
	}
	ids, err := i.sessionIDs()
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		session, err := i.session(id)
		if err != nil {
			return nil, err
		}
		if session != nil {
			i.report.Sessions = append(i.report.Sessions, *session)
		}
	}
	if i.failure != nil {
		i.report.OpenError = "diskstore: recovering from the journal: " + i.failure.message
	} else if i.replay && !fileSystemSyncAvailable {
		// Open's error; here syncFileSystem only returns it.
		i.report.OpenError = "diskstore: recovering from the journal: syncing the replayed sessions: " + syncFileSystem(i.root).Error()
	}
	if i.report.Quarantine, err = entryNames(filepath.Join(i.root, quarantineDirectoryName), ""); err != nil {
		return nil, err
	}
	if i.report.Leftovers, err = entryNames(filepath.Join(i.root, temporaryDirectoryName), temporaryDirectoryName+"/"); err != nil {
		return nil, err
	}
	if exists(filepath.Join(i.root, journalDirectoryName, spareJournalName)) {
		i.report.Leftovers = append(i.report.Leftovers, journalDirectoryName+"/"+spareJournalName)
	}
	return &i.report, nil
}

// readJournals decodes the journal files and reports on each.
func (i *inspection) readJournals() error {
	journalDirectory := filepath.Join(i.root, journalDirectoryName)
	generations, err := journalFiles(journalDirectory)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("diskstore: reading the journal: %w", err)
	}
	i.replay = len(generations) > 0
	i.rules.crashed = i.replay // as Open: a journal means the last run did not close
	i.entries = map[string][]replayEntry{}
	decoded := make([][]journalEntry, len(generations))
	index := 0
	for g, generation := range generations {
		path := journalPath(journalDirectory, generation)
		content, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("diskstore: %w", err)
		}
		scan := scanJournal(content)
		decoded[g] = scan.entries
		i.report.Journals = append(i.report.Journals, journalReport(path, len(content), scan))
		for _, entry := range scan.entries {
			if store.ValidateSessionID(entry.session) != nil {
				i.fail(&replayFailure{index, fmt.Sprintf("replaying %s: session %q: invalid session id in journal", path, entry.session)})
			} else {
				i.entries[entry.session] = append(i.entries[entry.session], replayEntry{entry, index, path})
			}
			index++
		}
	}
	i.first = journalFirstAppends(decoded)
	return nil
}

// journalReport describes a journal file from its scan.
func journalReport(path string, size int, scan journalScan) JournalReport {
	report := JournalReport{Path: path, Bytes: int64(size), Entries: len(scan.entries), Commits: scan.commits,
		TornTailBytes: scan.tornBytes, Damage: scan.damage, Sessions: []JournalSessionReport{}}
	first := journalFirstAppends([][]journalEntry{scan.entries})
	index := map[string]int{}
	for _, entry := range scan.entries {
		at, seen := index[entry.session]
		if !seen {
			at = len(report.Sessions)
			index[entry.session] = at
			report.Sessions = append(report.Sessions, JournalSessionReport{ID: entry.session})
			if seq, ok := first[entry.session]; ok {
				report.Sessions[at].FirstAppendedSeq = &seq
			}
		}
		report.Sessions[at].Entries++
	}
	slices.SortFunc(report.Sessions, func(a, b JournalSessionReport) int { return strings.Compare(a.ID, b.ID) })
	return report
}

// sessionIDs returns the ids of the session directories and of the
// sessions in the journal, sorted, and notes what the store ignores.
func (i *inspection) sessionIDs() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(i.root, sessionsDirectoryName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("diskstore: listing sessions: %w", err)
	}
	var ids []string
	for _, entry := range entries {
		name := sessionsDirectoryName + "/" + entry.Name()
		switch {
		case !entry.IsDir():
			i.report.Ignored = append(i.report.Ignored, name+": not a directory")
		case store.ValidateSessionID(entry.Name()) != nil:
			i.report.Ignored = append(i.report.Ignored, name+": not a valid session id")
		default:
			ids = append(ids, entry.Name())
		}
	}
	for id := range i.entries {
		if _, found := slices.BinarySearch(ids, id); !found {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// entryNames returns the names of the entries of directory, with prefix,
// and none if it does not exist.
func entryNames(directory, prefix string) ([]string, error) {
	entries, err := os.ReadDir(directory)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	names := make([]string, len(entries))
	for index, entry := range entries {
		names[index] = prefix + entry.Name()
	}
	return names, nil
}

// session inspects one session; nil if there is nothing to report (a
// session the journal creates and deletes again).
func (i *inspection) session(id string) (*SessionReport, error) {
	onDisk, err := readSessionFiles(filepath.Join(i.root, sessionsDirectoryName, id))
	if err != nil {
		return nil, err
	}
	if onDisk.directory && !onDisk.recordFound && !onDisk.logFound && len(i.entries[id]) == 0 {
		i.report.Ignored = append(i.report.Ignored, sessionsDirectoryName+"/"+id+": no record.json and no messages.log")
		return nil, nil
	}
	report := describeFiles(id, onDisk)
	replica := onDisk
	replica.logPath = filepath.Join(i.root, sessionsDirectoryName, id, logFileName)
	if i.replay {
		i.fail(i.replaySession(id, &replica, &report))
	}
	stored, loadable := i.load(&replica)
	if !onDisk.directory && !loadable && replica.damage == "" {
		return nil, nil
	}
	report.Verdict, report.Reason = replica.verdict(&onDisk, loadable)
	if !loadable {
		return &report, nil
	}
	report.Messages, report.Seqs = len(stored.Messages), seqRange(stored.Messages)
	if i.verify == nil {
		return &report, nil
	}
	if err := i.verify(id, stored); err != nil {
		report.VerifyError = err.Error()
		if report.Verdict == VerdictDamaged {
			report.Reason += "; and then: " + err.Error()
		} else {
			report.Verdict, report.Reason = VerdictDamaged, err.Error()
		}
	}
	return &report, nil
}

// sessionFiles is a session's files, as they are or as the replay leaves
// them (in memory).
type sessionFiles struct {
	directory   bool
	recordFound bool
	record      []byte
	logFound    bool
	logPath     string
	// content is the log's content until it is opened; then messages are
	// what the open log holds.
	content  []byte
	opened   bool
	messages []store.Message

	// What opening, replaying and loading did.
	cut, restored, dropped              int
	emptied, created, deleted, recorded bool
	emptiedAtLoad                       bool
	damage                              string
}

func readSessionFiles(directory string) (sessionFiles, error) {
	var files sessionFiles
	info, err := os.Stat(directory)
	if errors.Is(err, fs.ErrNotExist) {
		return files, nil
	} else if err != nil {
		return files, fmt.Errorf("diskstore: %w", err)
	}
	files.directory = info.IsDir()
	files.record, err = os.ReadFile(filepath.Join(directory, recordFileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return files, fmt.Errorf("diskstore: %w", err)
	}
	files.recordFound = err == nil
	files.content, err = os.ReadFile(filepath.Join(directory, logFileName))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return files, fmt.Errorf("diskstore: %w", err)
	}
	files.logFound = err == nil
	return files, nil
}

// describeFiles reports a session's files as they are.
func describeFiles(id string, files sessionFiles) SessionReport {
	report := SessionReport{ID: id}
	if files.recordFound {
		report.Record = &RecordFileReport{Bytes: len(files.record), ValidJSON: json.Valid(files.record)}
	}
	if files.logFound {
		log := &LogFileReport{Bytes: len(files.content)}
		messages, validBytes, err := decodeLog(files.content)
		if err == nil {
			log.HeaderValid, log.ValidBytes, log.Messages, log.Seqs = true, validBytes, len(messages), seqRange(messages)
		}
		report.Log = log
	}
	return report
}

func seqRange(messages []store.Message) *SeqRange {
	if len(messages) == 0 {
		return nil
	}
	return &SeqRange{First: messages[0].Seq, Last: messages[len(messages)-1].Seq}
}

// replaySession applies the session's journal entries to files as Open's
// replay applies them to the files on disk (Store.replay), and returns
// the failure of an entry that makes Open fail.
func (i *inspection) replaySession(id string, files *sessionFiles, report *SessionReport) *replayFailure {
	rules := i.rules
	rules.replaying = true
	rules.first, rules.covered = i.first[id]
	quarantined := false
	for _, entry := range i.entries[id] {
		report.JournalEntries++
		if entry.kind == journalRecord {
			report.JournalRecordBytes = len(entry.payload)
		}
		if quarantined && entry.kind != journalDelete {
			continue
		}
		quarantined = false
		if err := files.replay(entry.journalEntry, rules); errors.Is(err, errQuarantined) {
			quarantined = true
		} else if err != nil {
			return &replayFailure{entry.index, fmt.Sprintf("replaying %s: session %q: %v", entry.path, id, err)}
		}
	}
	return nil
}

// replay applies one entry, as Store.replay does; errQuarantined reports
// that it quarantined the session.
func (f *sessionFiles) replay(entry journalEntry, rules logRules) error {
	switch entry.kind {
	case journalAppend:
		messages, err := decodeJournalAppend(entry.payload)
		if err != nil {
			return err
		}
		if !f.open(rules, true) {
			return errQuarantined
		}
		if len(f.messages) > 0 {
			var damage string
			if messages, damage = journalAppendRest(f.logPath, f.messages[len(f.messages)-1].Seq, messages); damage != "" {
				f.quarantine(damage)
				return errQuarantined
			}
		}
		f.messages = append(slices.Clip(f.messages), messages...)
		f.restored += len(messages)
	case journalRecord:
		f.directory, f.recordFound, f.record, f.recorded = true, true, entry.payload, true
	case journalDrop:
		through, err := decodeJournalDrop(entry.payload)
		if err != nil {
			return err
		}
		if !f.logFound {
			return nil
		}
		if !f.open(rules, false) {
			return errQuarantined
		}
		count := messagesThrough(f.messages, through)
		f.messages = f.messages[count:]
		f.dropped += count
	case journalDelete:
		f.remove()
		f.deleted = true
	default:
		return fmt.Errorf("unknown journal entry kind %d", entry.kind)
	}
	return nil
}

// open opens the log as Store.openLog does (creating an empty one if it
// is missing and create is set), and reports false if that quarantines
// the session.
func (f *sessionFiles) open(rules logRules, create bool) bool {
	if f.opened || (!f.logFound && !create) {
		return true
	}
	if !f.logFound {
		f.directory, f.logFound, f.opened, f.messages, f.created = true, true, true, nil, true
		return true
	}
	verdict := judgeLog(f.logPath, f.content, rules)
	if verdict.damage != "" {
		f.quarantine(verdict.damage)
		return false
	}
	f.opened, f.messages = true, verdict.messages
	if verdict.emptied {
		f.emptied, f.emptiedAtLoad = true, !rules.replaying
	} else {
		f.cut += len(f.content) - verdict.validBytes
	}
	f.content = nil
	return true
}

// quarantine moves the session away, as Store.quarantine does.
func (f *sessionFiles) quarantine(reason string) {
	if f.damage == "" {
		f.damage = reason
	}
	f.remove()
}

// remove leaves the session without files.
func (f *sessionFiles) remove() {
	f.directory, f.recordFound, f.record, f.logFound, f.content, f.opened, f.messages = false, false, nil, false, nil, false, nil
}

// load returns what LoadSession returns after Open, and false if it
// returns store.ErrNotFound or quarantines the session.
func (i *inspection) load(files *sessionFiles) (store.Session, bool) {
	// Sessions lists a directory holding a record or a log.
	if !files.directory || (!files.recordFound && !files.logFound) {
		return store.Session{}, false
	}
	if !files.open(i.rules, false) {
		return store.Session{}, false
	}
	var record []byte
	if files.recordFound {
		record = files.record
	}
	return store.Session{Record: record, Messages: files.messages}, true
}

// verdict sums up what Open and LoadSession did to the session's files,
// which were onDisk before.
func (f *sessionFiles) verdict(onDisk *sessionFiles, loadable bool) (Verdict, string) {
	switch {
	case f.damage != "" && loadable:
		// Damage in files that the journal deletes later.
		return VerdictDamaged, f.damage + "; its files will be moved to quarantine/, and the journal then deletes the session and creates it again"
	case f.damage != "":
		return VerdictDamaged, f.damage + "; its files will be moved to quarantine/ and it starts on a new timeline"
	}
	var restored []string
	if f.created {
		restored = append(restored, "the missing log")
	}
	if f.emptied && !f.emptiedAtLoad {
		restored = append(restored, "the empty log")
	}
	if f.restored > 0 {
		restored = append(restored, plural(f.restored, "message"))
	}
	if f.recorded && (!onDisk.recordFound || !bytes.Equal(onDisk.record, f.record)) {
		restored = append(restored, "the record")
	}
	if f.dropped > 0 {
		restored = append(restored, "the drop of "+plural(f.dropped, "message"))
	}
	if f.deleted && !loadable {
		restored = append(restored, "the deletion of the session")
	}
	var cut string
	if f.cut > 0 {
		cut = fmt.Sprintf("%d bytes of a torn write after the last complete commit are cut off", f.cut)
	}
	switch {
	case len(restored) > 0:
		reason := "the journal restores " + strings.Join(restored, ", ")
		if cut != "" {
			reason += "; " + cut
		}
		return VerdictRecoverable, reason
	case cut != "":
		return VerdictTorn, cut + "; no acknowledged commit is lost"
	case f.emptiedAtLoad:
		return VerdictTorn, "the log is empty or holds part of its header (a new log cut by a crash): it is rewritten as an empty log"
	}
	return VerdictIntact, ""
}

// plural returns "1 message", "2 messages".
func plural(count int, noun string) string {
	if count == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", count, noun)
}
