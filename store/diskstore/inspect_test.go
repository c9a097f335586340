package diskstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/store"
)

// treeForTest returns every directory and file under root with its
// content, except the lock file (Inspect takes the lock, which rewrites
// the holder's record in it).
func treeForTest(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		relative, _ := filepath.Rel(root, path)
		switch {
		case relative == lockFileName:
		case entry.IsDir():
			tree[relative] = "directory"
		default:
			content, err := os.ReadFile(path)
			tree[relative] = string(content)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// prediction is what Inspect says LoadSession returns after Open.
type prediction map[string]store.Session

// inspectUnchanged runs Inspect, checks that it changed no file, and
// returns its report and what it predicts LoadSession returns.
func inspectUnchanged(t *testing.T, directory string, options Options) (*InspectReport, prediction) {
	t.Helper()
	before := treeForTest(t, directory)
	predicted := prediction{}
	report, err := InspectVerify(directory, options, func(id string, stored store.Session) error {
		messages := make([]store.Message, len(stored.Messages))
		for index, message := range stored.Messages {
			messages[index] = store.Message{Seq: message.Seq, Data: bytes.Clone(message.Data)}
		}
		predicted[id] = store.Session{Record: bytes.Clone(stored.Record), Messages: messages}
		return nil
	})
	if err != nil {
		t.Fatalf("Inspect: %v", err)
	}
	after := treeForTest(t, directory)
	for _, path := range slices.Sorted(maps.Keys(before)) {
		if after[path] != before[path] {
			t.Errorf("Inspect changed %s (%d bytes before, %d after)", path, len(before[path]), len(after[path]))
		}
	}
	for _, path := range slices.Sorted(maps.Keys(after)) {
		if _, found := before[path]; !found {
			t.Errorf("Inspect created %s", path)
		}
	}
	return report, predicted
}

// repaired is what the store did when it was opened and every session
// loaded, as the server does on start.
type repaired struct {
	recovery    Recovery
	loaded      prediction
	quarantined map[string]string // session → the reason
}

// repairForTest opens the store, loads every session and closes it.
func repairForTest(t *testing.T, directory string, options Options) (repaired, error) {
	t.Helper()
	s, err := Open(directory, options)
	if err != nil {
		return repaired{}, err
	}
	defer mustClose(t, s)
	result := repaired{recovery: s.Recovery(), loaded: prediction{}, quarantined: map[string]string{}}
	for _, corrupt := range result.recovery.Quarantined {
		result.quarantined[corrupt.Session] = corrupt.Reason
	}
	ids, err := s.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		loaded, err := s.LoadSession(context.Background(), id)
		var corrupt *CorruptError
		switch {
		case errors.As(err, &corrupt):
			result.quarantined[id] = corrupt.Reason
		case err != nil:
			t.Fatalf("LoadSession(%q): %v", id, err)
		default:
			result.loaded[id] = loaded
		}
	}
	return result, nil
}

// checkPrediction checks that the store did what Inspect predicted:
// damaged sessions were quarantined for the reason given, the others load
// as predicted, and nothing else loads.
func checkPrediction(t *testing.T, report *InspectReport, predicted prediction, result repaired) {
	t.Helper()
	for _, session := range report.Sessions {
		reason, quarantined := result.quarantined[session.ID]
		if (session.Verdict == VerdictDamaged) != quarantined {
			t.Errorf("session %q: verdict %s (%s), but the store quarantined it: %v (%s)", session.ID, session.Verdict, session.Reason, quarantined, reason)
		} else if quarantined && !strings.HasPrefix(session.Reason, reason) {
			t.Errorf("session %q: reason %q, the store's is %q", session.ID, session.Reason, reason)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(result.loaded)) {
		want, found := predicted[id]
		got := result.loaded[id]
		if !found {
			t.Errorf("session %q loads, but Inspect predicted no load", id)
			continue
		}
		equal := slices.EqualFunc(got.Messages, want.Messages, func(a, b store.Message) bool {
			return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data)
		})
		if !bytes.Equal(got.Record, want.Record) || !equal {
			t.Errorf("session %q loads record %q, messages %s; Inspect predicted %q, %s",
				id, got.Record, describe(got.Messages), want.Record, describe(want.Messages))
		}
	}
	for _, id := range slices.Sorted(maps.Keys(predicted)) {
		if _, found := result.loaded[id]; !found {
			t.Errorf("Inspect predicted that session %q loads, but it does not", id)
		}
	}
}

// checkRepaired checks that after the repair a second Inspect finds
// everything intact, no journal and no leftovers.
func checkRepaired(t *testing.T, directory string, options Options) {
	t.Helper()
	report, _ := inspectUnchanged(t, directory, options)
	for _, session := range report.Sessions {
		if session.Verdict != VerdictIntact {
			t.Errorf("after the repair, session %q is %s: %s", session.ID, session.Verdict, session.Reason)
		}
	}
	if len(report.Journals) != 0 || len(report.Leftovers) != 0 || report.OpenError != "" {
		t.Errorf("after the repair: journals %+v, leftovers %q, open error %q; want none", report.Journals, report.Leftovers, report.OpenError)
	}
}

func verdictsOf(report *InspectReport) map[string]Verdict {
	verdicts := map[string]Verdict{}
	for _, session := range report.Sessions {
		verdicts[session.ID] = session.Verdict
	}
	return verdicts
}

func sessionReport(t *testing.T, report *InspectReport, id string) SessionReport {
	t.Helper()
	for _, session := range report.Sessions {
		if session.ID == id {
			return session
		}
	}
	t.Fatalf("no report of session %q in %+v", id, report.Sessions)
	return SessionReport{}
}

func logPathForTest(directory, id string) string {
	return filepath.Join(directory, sessionsDirectoryName, id, logFileName)
}

func flipByte(t *testing.T, path string, offset int) {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	content[offset] ^= 0x20
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
}

// inspectScenario is a data directory built with the store and damaged.
type inspectScenario struct {
	name string
	// journal: the scenario needs the journal (Durable on Linux).
	journal bool
	options Options
	build   func(t *testing.T, directory string)
	want    map[string]Verdict
	// check checks more of the report.
	check func(t *testing.T, report *InspectReport)
}

// threeSessions commits sessions s (seqs 1-3, a record), other (seq 1)
// and recordOnly (a record).
func threeSessions(t *testing.T, s *Store) {
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1, 2), Record: []byte(`{"r":1}`)})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(3)})
	mustCommit(t, s, "other", store.Batch{Append: testMessages(1)})
	mustCommit(t, s, "recordOnly", store.Batch{Record: []byte(`{"r":2}`)})
}

func inspectScenarios() []inspectScenario {
	durable, notDurable := Options{Durable: true}, Options{}
	var scenarios []inspectScenario
	for _, options := range []Options{durable, notDurable} {
		mode := fmt.Sprintf("durable=%v", options.Durable)
		scenarios = append(scenarios,
			inspectScenario{name: "clean close, " + mode, options: options,
				build: func(t *testing.T, directory string) {
					s := openForTest(t, directory, options)
					threeSessions(t, s)
					mustClose(t, s)
				},
				want: map[string]Verdict{"s": VerdictIntact, "other": VerdictIntact, "recordOnly": VerdictIntact},
				check: func(t *testing.T, report *InspectReport) {
					s := sessionReport(t, report, "s")
					if s.Messages != 3 || *s.Seqs != (SeqRange{1, 3}) || s.Record == nil || !s.Record.ValidJSON || s.Log == nil ||
						!s.Log.HeaderValid || s.Log.ValidBytes != s.Log.Bytes || s.Log.Messages != 3 {
						t.Errorf("session s: %+v, log %+v; want 3 messages 1-3, a valid record and log", s, s.Log)
					}
				}},
			inspectScenario{name: "byte flipped mid-log, " + mode, options: options,
				build: func(t *testing.T, directory string) {
					s := openForTest(t, directory, options)
					threeSessions(t, s)
					mustClose(t, s)
					flipByte(t, logPathForTest(directory, "s"), len(logHeader)+frameHeaderBytes)
				},
				want: map[string]Verdict{"s": VerdictDamaged, "other": VerdictIntact, "recordOnly": VerdictIntact},
				check: func(t *testing.T, report *InspectReport) {
					if s := sessionReport(t, report, "s"); !strings.Contains(s.Reason, "valid frames after it") ||
						s.Log.ValidBytes != len(logHeader) || s.Log.Messages != 0 {
						t.Errorf("session s: reason %q, log %+v", s.Reason, s.Log)
					}
				}},
			inspectScenario{name: "wrong header, " + mode, options: options,
				build: func(t *testing.T, directory string) {
					s := openForTest(t, directory, options)
					threeSessions(t, s)
					mustClose(t, s)
					flipByte(t, logPathForTest(directory, "other"), 0)
				},
				want: map[string]Verdict{"s": VerdictIntact, "other": VerdictDamaged, "recordOnly": VerdictIntact}},
		)
	}
	garbageTail := func(t *testing.T, directory string, options Options) {
		s := openForTest(t, directory, options)
		threeSessions(t, s)
		mustClose(t, s)
		appendToFile(t, logPathForTest(directory, "s"), []byte("garbage after the last commit"))
	}
	scenarios = append(scenarios,
		inspectScenario{name: "garbage tail after a clean close, journal", journal: true, options: durable,
			build: func(t *testing.T, directory string) { garbageTail(t, directory, durable) },
			want:  map[string]Verdict{"s": VerdictDamaged, "other": VerdictIntact, "recordOnly": VerdictIntact},
			check: func(t *testing.T, report *InspectReport) {
				if s := sessionReport(t, report, "s"); !strings.Contains(s.Reason, "synced log") {
					t.Errorf("session s: reason %q, want a synced log's invalid bytes", s.Reason)
				}
			}},
		inspectScenario{name: "garbage tail, not durable", options: notDurable,
			build: func(t *testing.T, directory string) { garbageTail(t, directory, notDurable) },
			want:  map[string]Verdict{"s": VerdictTorn, "other": VerdictIntact, "recordOnly": VerdictIntact},
			check: func(t *testing.T, report *InspectReport) {
				s := sessionReport(t, report, "s")
				if want := fmt.Sprintf("%d bytes of a torn write", len("garbage after the last commit")); !strings.Contains(s.Reason, want) || s.Messages != 3 {
					t.Errorf("session s: %d messages, reason %q; want 3 and %q", s.Messages, s.Reason, want)
				}
			}},
	)
	halfHeader := func(t *testing.T, directory string, options Options) {
		s := openForTest(t, directory, options)
		threeSessions(t, s)
		mustClose(t, s)
		if err := os.WriteFile(logPathForTest(directory, "s"), []byte(logHeader[:5]), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	scenarios = append(scenarios,
		inspectScenario{name: "half a header, not durable", options: notDurable,
			build: func(t *testing.T, directory string) { halfHeader(t, directory, notDurable) },
			want:  map[string]Verdict{"s": VerdictTorn, "other": VerdictIntact, "recordOnly": VerdictIntact},
			check: func(t *testing.T, report *InspectReport) {
				if s := sessionReport(t, report, "s"); s.Messages != 0 || !strings.Contains(s.Reason, "rewritten as an empty log") {
					t.Errorf("session s: %d messages, reason %q", s.Messages, s.Reason)
				}
			}},
		inspectScenario{name: "half a header, durable", options: durable,
			build: func(t *testing.T, directory string) { halfHeader(t, directory, durable) },
			want:  map[string]Verdict{"s": VerdictDamaged, "other": VerdictIntact, "recordOnly": VerdictIntact}},
	)
	return append(scenarios, crashScenarios()...)
}

// crashScenarios leave a journal after a crash (durable, Linux).
func crashScenarios() []inspectScenario {
	durable := Options{Durable: true}
	crashed := func(t *testing.T, directory string) {
		s := openForTest(t, directory, durable)
		threeSessions(t, s)
		s.crashForTest()
	}
	const garbage = "a torn journal write"
	return []inspectScenario{
		{name: "crash, torn journal tail", journal: true, options: durable,
			build: func(t *testing.T, directory string) {
				crashed(t, directory)
				path, _ := journalContent(t, directory)
				appendToFile(t, path, []byte(garbage))
			},
			// Records are written late: the journal holds them.
			want: map[string]Verdict{"s": VerdictRecoverable, "other": VerdictIntact, "recordOnly": VerdictRecoverable},
			check: func(t *testing.T, report *InspectReport) {
				journal := report.Journals[0]
				if journal.TornTailBytes != len(garbage) || journal.Damage != "" || journal.Commits != 4 || journal.Entries != 5 {
					t.Errorf("journal %+v, want 4 commits of 5 entries, %d torn bytes, no damage", journal, len(garbage))
				}
				if len(journal.Sessions) != 3 || journal.Sessions[1].ID != "recordOnly" || journal.Sessions[1].FirstAppendedSeq != nil ||
					journal.Sessions[2].ID != "s" || *journal.Sessions[2].FirstAppendedSeq != 1 || journal.Sessions[2].Entries != 3 {
					t.Errorf("journal sessions %+v", journal.Sessions)
				}
				if s := sessionReport(t, report, "s"); s.Record != nil || s.JournalRecordBytes == 0 || s.Reason != "the journal restores the record" {
					t.Errorf("session s: record %+v, journal record %d bytes, reason %q", s.Record, s.JournalRecordBytes, s.Reason)
				}
			}},
		{name: "crash, empty log", journal: true, options: durable,
			build: func(t *testing.T, directory string) {
				crashed(t, directory)
				if err := os.WriteFile(logPathForTest(directory, "s"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]Verdict{"s": VerdictRecoverable, "other": VerdictIntact, "recordOnly": VerdictRecoverable},
			check: func(t *testing.T, report *InspectReport) {
				s := sessionReport(t, report, "s")
				if s.Messages != 3 || !strings.Contains(s.Reason, "the empty log, 3 messages") || s.Log.HeaderValid {
					t.Errorf("session s: %d messages, reason %q, log %+v", s.Messages, s.Reason, s.Log)
				}
			}},
		{name: "crash, torn log tail the journal covers", journal: true, options: durable,
			build: func(t *testing.T, directory string) {
				crashed(t, directory)
				// The last commit reached the log only in part.
				path := logPathForTest(directory, "s")
				content, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, content[:len(content)-3], 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]Verdict{"s": VerdictRecoverable, "other": VerdictIntact, "recordOnly": VerdictRecoverable},
			check: func(t *testing.T, report *InspectReport) {
				if s := sessionReport(t, report, "s"); s.Messages != 3 || !strings.Contains(s.Reason, "1 message,") || !strings.Contains(s.Reason, "bytes of a torn write") {
					t.Errorf("session s: %d messages, reason %q", s.Messages, s.Reason)
				}
			}},
		{name: "crash, damaged journal entry, log lost its end", journal: true, options: durable,
			build: func(t *testing.T, directory string) {
				s := openForTest(t, directory, durable)
				mustCommit(t, s, "a", store.Batch{Append: testMessages(1), Record: []byte("r")})
				mustCommit(t, s, "b", store.Batch{Append: testMessages(1)})
				mustCommit(t, s, "a", store.Batch{Append: testMessages(2)}) // damaged below
				mustCommit(t, s, "b", store.Batch{Append: testMessages(2)})
				mustCommit(t, s, "a", store.Batch{Append: testMessages(3)})
				s.crashForTest()
				// Flip a byte of the fourth entry (a's append of seq 2),
				// which a's log lost in a power cut.
				path, content := journalContent(t, directory)
				offset := len(journalHeader)
				for range 3 {
					_, length, _ := decodeJournalEntry(content[offset:])
					offset += length
				}
				flipByte(t, path, offset+4+3+1+frameHeaderBytes)
				frames, _ := appendFrames(nil, testMessages(1))
				if err := os.WriteFile(logPathForTest(directory, "a"), append([]byte(logHeader), frames...), 0o600); err != nil {
					t.Fatal(err)
				}
			},
			want: map[string]Verdict{"a": VerdictDamaged, "b": VerdictIntact},
			check: func(t *testing.T, report *InspectReport) {
				if !strings.Contains(report.Journals[0].Damage, "invalid entry at offset") || report.Journals[0].Commits != 4 {
					t.Errorf("journal %+v, want damage reported and the 4 other commits", report.Journals[0])
				}
				if a := sessionReport(t, report, "a"); !strings.Contains(a.Reason, "ends at seq 1, and the journal continues it at seq 3") {
					t.Errorf("session a: reason %q, want the gap", a.Reason)
				}
			}},
	}
}

// TestInspectVerdicts builds data directories with the store, damages
// them, and checks Inspect's verdicts; that Inspect changes nothing; that
// the store then does what Inspect predicted; and that after this repair
// Inspect finds everything intact.
func TestInspectVerdicts(t *testing.T) {
	for _, scenario := range inspectScenarios() {
		t.Run(scenario.name, func(t *testing.T) {
			if scenario.journal && !fileSystemSyncAvailable {
				t.Skip("the journal is used where syncfs is available (Linux)")
			}
			directory := t.TempDir()
			scenario.build(t, directory)
			report, predicted := inspectUnchanged(t, directory, scenario.options)
			if got := verdictsOf(report); !maps.Equal(got, scenario.want) {
				for _, session := range report.Sessions {
					t.Logf("%s: %s (%s)", session.ID, session.Verdict, session.Reason)
				}
				t.Fatalf("verdicts %v, want %v", got, scenario.want)
			}
			if scenario.check != nil {
				scenario.check(t, report)
			}
			wantDamaged := slices.Contains(slices.Collect(maps.Values(scenario.want)), VerdictDamaged)
			if report.Damaged() != wantDamaged {
				t.Errorf("Damaged() = %v, want %v", report.Damaged(), wantDamaged)
			}
			result, err := repairForTest(t, directory, scenario.options)
			if err != nil {
				t.Fatalf("Open after Inspect: %v", err)
			}
			checkPrediction(t, report, predicted, result)
			checkRepaired(t, directory, scenario.options)
		})
	}
}

// TestInspectLeftovers: tmp/ leftovers, a prepared journal file and
// quarantined sessions are listed; entries of sessions/ that the store
// ignores are named.
func TestInspectLeftovers(t *testing.T) {
	directory := t.TempDir()
	s := openForTest(t, directory, Options{})
	mustCommit(t, s, "s", store.Batch{Append: testMessages(1)})
	mustClose(t, s)
	flipByte(t, logPathForTest(directory, "s"), 0)
	s = openForTest(t, directory, Options{})
	checkQuarantined(t, s, "s", fileSize(t, logPathForTest(directory, "s")))
	mustClose(t, s)
	for _, path := range []string{"tmp/new-123", "sessions/not-a-dir", "journal/next.spare"} {
		os.MkdirAll(filepath.Join(directory, filepath.Dir(path)), 0o755)
		if err := os.WriteFile(filepath.Join(directory, path), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(directory, "sessions", "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	report, _ := inspectUnchanged(t, directory, Options{})
	if len(report.Quarantine) != 1 || !strings.HasPrefix(report.Quarantine[0], "s-") {
		t.Errorf("quarantine %q, want session s", report.Quarantine)
	}
	if want := []string{"tmp/new-123", "journal/next.spare"}; !slices.Equal(report.Leftovers, want) {
		t.Errorf("leftovers %q, want %q", report.Leftovers, want)
	}
	if want := []string{"sessions/not-a-dir: not a directory", "sessions/empty: no record.json and no messages.log"}; !slices.Equal(report.Ignored, want) {
		t.Errorf("ignored %q, want %q", report.Ignored, want)
	}
	if len(report.Sessions) != 0 || report.Damaged() {
		t.Errorf("sessions %+v, damaged %v; want none", report.Sessions, report.Damaged())
	}
}

// TestInspectLocked: Inspect takes the lock like Open: it fails while a
// Store has the directory open, and a missing directory is not created.
func TestInspectLocked(t *testing.T) {
	skipWithoutLock(t)
	directory := t.TempDir()
	s := openForTest(t, directory, Options{})
	_, err := Inspect(directory, Options{})
	checkLocked(t, err, directory, os.Getpid())
	mustClose(t, s)
	if _, err := Inspect(directory, Options{}); err != nil {
		t.Errorf("Inspect after Close: %v", err)
	}
	missing := filepath.Join(directory, "missing")
	if _, err := Inspect(missing, Options{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Inspect of a missing directory: %v, want ErrNotExist", err)
	}
	if exists(missing) {
		t.Errorf("Inspect created the missing directory")
	}
}

// TestInspectVerifyFailure: a verify error makes a loadable session
// damaged with its reason.
func TestInspectVerifyFailure(t *testing.T) {
	directory := t.TempDir()
	s := openForTest(t, directory, Options{})
	threeSessions(t, s)
	mustClose(t, s)
	report, err := InspectVerify(directory, Options{}, func(id string, stored store.Session) error {
		if id == "other" && stored.Record == nil && len(stored.Messages) == 1 {
			return errors.New("no record")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if other := sessionReport(t, report, "other"); other.Verdict != VerdictDamaged || other.VerifyError != "no record" || !report.Damaged() {
		t.Errorf("session other: %+v, want damaged by the verify error", other)
	}
	if s := sessionReport(t, report, "s"); s.Verdict != VerdictIntact {
		t.Errorf("session s: %+v, want intact", s)
	}
}

// TestInspectPredictsRecovery is a differential test of Inspect against
// the store: seeded commits, a crash (with or without a journal), then
// session files from random steps (what a power cut leaves), and random
// damage to a log, a record or the journal. Inspect's prediction must be
// what Open and LoadSession do, and every verdict must occur.
func TestInspectPredictsRecovery(t *testing.T) {
	seen := map[Verdict]int{}
	for seed := range uint64(8) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			journaled := seed%4 != 3 && fileSystemSyncAvailable
			directory := t.TempDir()
			s := openForTest(t, directory, Options{Durable: journaled})
			sessionsDirectory := filepath.Join(directory, sessionsDirectoryName)
			snapshots := []string{t.TempDir()}
			journalOps(t, s, seed, 30, func(step int, model journalModel) {
				snapshot := t.TempDir()
				copyTree(t, sessionsDirectory, snapshot)
				snapshots = append(snapshots, snapshot)
			})
			s.crashForTest()
			random := rand.New(rand.NewPCG(seed, 3))
			for run := range 12 {
				what := fmt.Sprintf("seed %d, run %d", seed, run)
				recovered := t.TempDir()
				if journaled {
					copyTree(t, filepath.Join(directory, journalDirectoryName), filepath.Join(recovered, journalDirectoryName))
				}
				for _, id := range []string{"a", "b", "c"} {
					from := filepath.Join(snapshots[random.IntN(len(snapshots))], id)
					if _, err := os.Stat(from); err == nil {
						copyTree(t, from, filepath.Join(recovered, sessionsDirectoryName, id))
					}
				}
				damage := damageRandomFile(t, random, recovered)
				options := Options{Durable: random.IntN(3) != 0}
				report, predicted := inspectUnchanged(t, recovered, options)
				for _, session := range report.Sessions {
					seen[session.Verdict]++
				}
				result, err := repairForTest(t, recovered, options)
				if (err != nil) != (report.OpenError != "") {
					t.Fatalf("%s (%s): Open: %v; Inspect predicted %q", what, damage, err, report.OpenError)
				}
				if err != nil {
					continue
				}
				checkPrediction(t, report, predicted, result)
				checkRepaired(t, recovered, options)
				if t.Failed() {
					t.Fatalf("%s: damage: %s", what, damage)
				}
			}
		})
	}
	t.Logf("verdicts: %v", seen)
	for _, verdict := range []Verdict{VerdictIntact, VerdictTorn, VerdictRecoverable, VerdictDamaged} {
		if seen[verdict] == 0 && !t.Failed() {
			t.Errorf("no session was %s: the test does not exercise that verdict", verdict)
		}
	}
}

// damageRandomFile damages one file of the data directory (or none) in
// one of the ways storage fails, and says what it did.
func damageRandomFile(t *testing.T, random *rand.Rand, directory string) string {
	t.Helper()
	var files []string
	filepath.WalkDir(directory, func(path string, entry fs.DirEntry, err error) error {
		if err == nil && !entry.IsDir() && entry.Name() != lockFileName {
			files = append(files, path)
		}
		return nil
	})
	if len(files) == 0 || random.IntN(5) == 0 {
		return "none"
	}
	path := files[random.IntN(len(files))]
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var what string
	switch kind := random.IntN(4); {
	case kind == 0 && len(content) > 0:
		offset := random.IntN(len(content))
		content[offset] ^= byte(1 + random.IntN(255))
		what = fmt.Sprintf("flipped byte %d of %s", offset, path)
	case kind == 1:
		cut := random.IntN(len(content) + 1)
		content = content[:cut]
		what = fmt.Sprintf("cut %s at %d", path, cut)
	case kind == 2:
		content = append(content, "garbage"[:1+random.IntN(7)]...)
		what = fmt.Sprintf("garbage after %s", path)
	default:
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		return "removed " + path
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	return what
}
