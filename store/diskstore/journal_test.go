package diskstore

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// crashForTest abandons a store as a crash would: files are closed, nothing
// is synced, the journal stays, the data directory's lock is released (as
// the kernel releases the flock of a process that dies).
func (s *Store) crashForTest() {
	defer s.lock.release()
	for element := s.openLogs.Front(); element != nil; element = element.Next() {
		element.Value.(*session).log.file.Close()
	}
	if s.journal != nil {
		s.journal.stop()
		s.journal.file.Close()
	}
}

// journalModel is what a sequence of commits should leave in the store.
type journalModel map[string]store.Session

func (m journalModel) clone() journalModel {
	c := journalModel{}
	for id, stored := range m {
		c[id] = store.Session{Record: stored.Record, Messages: slices.Clone(stored.Messages)}
	}
	return c
}

// journalOps runs a seeded sequence of commits and deletions against s,
// keeping model in step, and calls after with the model after each one.
func journalOps(t *testing.T, s *Store, seed uint64, steps int, after func(step int, model journalModel)) {
	t.Helper()
	random := rand.New(rand.NewPCG(seed, 1))
	model := journalModel{}
	nextSeq := map[string]uint32{}
	ids := []string{"a", "b", "c"}
	for step := range steps {
		id := ids[random.IntN(len(ids))]
		stored := model[id]
		if _, ok := nextSeq[id]; !ok {
			nextSeq[id] = 0xFFFFFFF0 + uint32(random.IntN(8)) // wraps during the run
		}
		if id == "c" && random.IntN(6) == 0 { // a and b are never deleted: their files matter
			if err := s.DeleteSession(context.Background(), id); err != nil {
				t.Fatal(err)
			}
			delete(model, id)
			delete(nextSeq, id)
			after(step, model.clone())
			continue
		}
		var batch store.Batch
		for range random.IntN(4) {
			seq := nextSeq[id]
			nextSeq[id]++
			batch.Append = append(batch.Append, store.Message{Seq: seq, Data: fmt.Appendf(nil, `[%d,%d,"step %d"]`, step, seq, step)})
		}
		if random.IntN(3) == 0 {
			batch.Record = fmt.Appendf(nil, `{"step":%d}`, step)
		}
		if total := len(stored.Messages) + len(batch.Append); total > 0 && random.IntN(4) == 0 {
			batch.DropFront = 1 + random.IntN(total)
		}
		if batch.Empty() {
			batch.Record = fmt.Appendf(nil, `{"step":%d}`, step)
		}
		mustCommit(t, s, id, batch)
		stored.Messages = append(stored.Messages, batch.Append...)[batch.DropFront:]
		if batch.Record != nil {
			stored.Record = batch.Record
		}
		model[id] = stored
		after(step, model.clone())
	}
}

// checkModel checks that s holds exactly model.
func checkModel(t *testing.T, s *Store, model journalModel, what string) {
	t.Helper()
	ids, err := s.Sessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for id := range model {
		want = append(want, id)
	}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("%s: sessions %v, want %v", what, ids, want)
	}
	for id, stored := range model {
		got, err := s.LoadSession(context.Background(), id)
		if err != nil {
			t.Fatalf("%s: LoadSession(%q): %v", what, id, err)
		}
		equal := slices.EqualFunc(got.Messages, stored.Messages, func(a, b store.Message) bool {
			return a.Seq == b.Seq && bytes.Equal(a.Data, b.Data)
		})
		if !bytes.Equal(got.Record, stored.Record) || !equal {
			t.Fatalf("%s: session %q holds record %q, messages %s; want %q, %s",
				what, id, got.Record, describe(got.Messages), stored.Record, describe(stored.Messages))
		}
	}
}

// copyTree copies the directory tree from to to.
func copyTree(t testing.TB, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(path string, entry fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		relative, _ := filepath.Rel(from, path)
		target := filepath.Join(to, relative)
		if entry.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, content, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestJournalRecovery commits a seeded mix of appends (across the seq
// wrap-around), records, drops and deletions in durable mode, crashes, and
// then recovers from the journal onto session files in every state they
// could have reached the disk in: none of the changes, all of them, the
// state after any step, and sessions mixed from different steps. Every
// recovery must hold exactly what the commits left.
func TestJournalRecovery(t *testing.T) {
	if !fileSystemSyncAvailable {
		t.Skip("the journal is used where syncfs is available (Linux)")
	}
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			directory := t.TempDir()
			s := openForTest(t, directory, Options{Durable: true})
			sessionsDirectory := filepath.Join(directory, sessionsDirectoryName)
			snapshots := []string{t.TempDir()} // the sessions directory before any step
			copyTree(t, sessionsDirectory, snapshots[0])
			var final journalModel
			journalOps(t, s, seed, 60, func(step int, model journalModel) {
				checkModel(t, s, model, fmt.Sprintf("step %d", step))
				snapshot := t.TempDir()
				copyTree(t, sessionsDirectory, snapshot)
				snapshots = append(snapshots, snapshot)
				final = model
			})
			s.crashForTest()
			journalCopy := t.TempDir()
			copyTree(t, filepath.Join(directory, journalDirectoryName), journalCopy)

			recoverFrom := func(what string, build func(sessions string)) {
				t.Helper()
				recovered := t.TempDir()
				build(filepath.Join(recovered, sessionsDirectoryName))
				copyTree(t, journalCopy, filepath.Join(recovered, journalDirectoryName))
				r := openForTest(t, recovered, Options{Durable: seed%2 == 0})
				if r.Replayed() == 0 {
					t.Fatalf("%s: nothing replayed", what)
				}
				checkModel(t, r, final, what)
				mustClose(t, r)
				if generations, _ := journalFiles(filepath.Join(recovered, journalDirectoryName)); len(generations) != 0 {
					t.Fatalf("%s: journal files %v left after a clean close", what, generations)
				}
				again := openForTest(t, recovered, Options{Durable: true})
				if again.Replayed() != 0 {
					t.Fatalf("%s: %d entries replayed after a clean close", what, again.Replayed())
				}
				checkModel(t, again, final, what+", reopened")
				mustClose(t, again)
			}
			for index, snapshot := range snapshots {
				recoverFrom(fmt.Sprintf("session files after step %d", index-1), func(sessions string) {
					copyTree(t, snapshot, sessions)
				})
			}
			random := rand.New(rand.NewPCG(seed, 2))
			for mix := range 10 {
				recoverFrom(fmt.Sprintf("mix %d", mix), func(sessions string) {
					os.MkdirAll(sessions, 0o755)
					for _, id := range []string{"a", "b", "c"} {
						from := filepath.Join(snapshots[random.IntN(len(snapshots))], id)
						if _, err := os.Stat(from); err == nil {
							copyTree(t, from, filepath.Join(sessions, id))
						}
					}
				})
			}
		})
	}
}

// TestJournalTornTail cuts the journal inside its last commit: recovery
// onto session files that received none of the changes holds the state
// before that commit.
func TestJournalTornTail(t *testing.T) {
	if !fileSystemSyncAvailable {
		t.Skip("the journal is used where syncfs is available (Linux)")
	}
	directory := t.TempDir()
	s := openForTest(t, directory, Options{Durable: true})
	var models []journalModel
	var sizes []int64
	journalDirectory := filepath.Join(directory, journalDirectoryName)
	journalOps(t, s, 7, 20, func(step int, model journalModel) {
		models = append(models, model)
		sizes = append(sizes, s.journal.size)
	})
	s.crashForTest()
	generations, err := journalFiles(journalDirectory)
	if err != nil || len(generations) != 1 {
		t.Fatalf("journal files %v, %v; want one", generations, err)
	}
	content, err := os.ReadFile(journalPath(journalDirectory, generations[0]))
	if err != nil {
		t.Fatal(err)
	}
	last := len(models) - 1
	for cut := sizes[last-1]; cut < sizes[last]; cut += max(1, (sizes[last]-sizes[last-1])/7) {
		recovered := t.TempDir()
		os.MkdirAll(filepath.Join(recovered, journalDirectoryName), 0o755)
		if err := os.WriteFile(journalPath(filepath.Join(recovered, journalDirectoryName), generations[0]), content[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		r := openForTest(t, recovered, Options{Durable: true})
		checkModel(t, r, models[last-1], fmt.Sprintf("journal cut at %d of %d", cut, sizes[last]))
		mustClose(t, r)
	}
}

// TestPreallocatedJournal: the syncer switches to a prepared, zero-filled
// journal file as soon as one is ready, overwrites it in place, and a
// crash after that recovers every commit (the zeros after the entries are
// their end, not damage).
func TestPreallocatedJournal(t *testing.T) {
	if !fileSystemSyncAvailable {
		t.Skip("the journal is used where syncfs is available (Linux)")
	}
	journalPreallocateBytes = 1 << 20
	defer func() { journalPreallocateBytes = 0 }()
	directory := t.TempDir()
	s := openForTest(t, directory, Options{Durable: true})
	mustCommit(t, s, "a", store.Batch{Append: testMessages(1), Record: []byte("r")})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		s.journal.mu.Lock()
		switched := s.journal.generation > 1 && !s.journal.checkpointing
		s.journal.mu.Unlock()
		if switched {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for seq := uint32(2); seq <= 50; seq++ {
		mustCommit(t, s, "a", store.Batch{Append: testMessages(seq)})
	}
	s.journal.mu.Lock()
	preallocated, generation := s.journal.preallocated, s.journal.generation
	s.journal.mu.Unlock()
	if !preallocated {
		t.Fatalf("the journal is at generation %d and not on a prepared file", generation)
	}
	s.crashForTest()
	path := journalPath(filepath.Join(directory, journalDirectoryName), generation)
	if size := fileSize(t, path); size != journalPreallocateBytes {
		t.Errorf("the prepared journal file is %d bytes, want %d", size, journalPreallocateBytes)
	}
	s = openForTest(t, directory, Options{Durable: true})
	defer mustClose(t, s)
	var want []uint32
	for seq := uint32(1); seq <= 50; seq++ {
		want = append(want, seq)
	}
	checkLoad(t, s, "a", []byte("r"), testMessages(want...))
	if recovery := s.Recovery(); len(recovery.JournalDamage) != 0 || recovery.Replayed == 0 {
		t.Errorf("recovery %+v, want a clean replay", recovery)
	}
}
