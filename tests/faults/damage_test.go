package faults

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Damage: the sessions run, the server stops (cleanly or by SIGKILL),
// files are damaged, and the server starts again.
const (
	damageSessions          = 6
	damageClientsPerSession = 2
	// damageVictims is the number of sessions whose files are damaged.
	damageVictims = 2
	// damageLoadMin and damageLoadMax bound the load before the stop.
	damageLoadMin = 800 * time.Millisecond
	damageLoadMax = 1500 * time.Millisecond
)

// damageKind damages one file of each victim session (or, journal, the
// shared journal) and says what it did.
type damageKind struct {
	name string
	// journal: the damage is in the journal all sessions share, so any
	// session may be affected.
	journal bool
	damage  func(t *testing.T, random *rand.Rand, dataDirectory string, victims []string, counts *tally) []string
}

var damageKinds = []damageKind{
	{name: "log-flip", damage: eachVictim(logPath, flipMiddleByte)},
	{name: "record-flip", damage: eachVictim(recordPath, flipMiddleByte)},
	{name: "log-truncate-empty", damage: eachVictim(logPath, truncateEmpty)},
	{name: "log-truncate-mid-frame", damage: eachVictim(logPath, truncateMidFrame)},
	{name: "journal-flip", journal: true, damage: flipJournal},
}

// TestDamage flips bytes in and truncates each kind of file, with the
// server stopped cleanly (SIGTERM: no journal is left) and killed
// (SIGKILL: the journal is replayed at start). After the restart every
// session that was not damaged must have kept its timeline and messages;
// a damaged one must have kept them too, or be on a new timeline with an
// ERROR line naming its quarantine/ directory (store/diskstore/damage.go).
func TestDamage(t *testing.T) {
	binary := requireEnvironment(t)
	base := baseSeed(t)
	counts := &tally{}
	started := time.Now()
	index := 0
	for _, kind := range damageKinds {
		for _, killed := range []bool{false, true} {
			if kind.journal && !killed {
				continue // a clean stop leaves no journal
			}
			index++
			seed := base*1000 + 100 + int64(index)
			stop := map[bool]string{false: "sigterm", true: "sigkill"}[killed]
			t.Run(fmt.Sprintf("%s/%s/seed=%d", kind.name, stop, seed), func(t *testing.T) {
				damageCase(t, binary, seed, kind, killed, counts)
			})
		}
	}
	t.Logf("damage, base seed %d: %s; in %s", base, counts, time.Since(started).Round(time.Second))
}

// damageCase runs one kind of damage after one kind of stop.
func damageCase(t *testing.T, binary string, seed int64, kind damageKind, killed bool, counts *tally) {
	random := rand.New(rand.NewPCG(uint64(seed), 0xda4a6e))
	d := newDisk(t, imageBytes)
	logs := logDirectory(t)
	data := d.dataDirectory()
	srv := startServer(t, binary, data, filepath.Join(logs, "server-0.log"))
	clients := newFleet(t, seed, counts, "d", damageSessions, damageClientsPerSession)
	clients.rejoin(srv, data, always(mustKeep))
	// A first run and a clean restart: the journal of the second run holds
	// only the end of each log, as on a server that has run for a while.
	time.Sleep(randomDuration(random, damageLoadMin, damageLoadMax))
	srv.terminate()
	clients.waitEnded()
	srv = startServer(t, binary, data, filepath.Join(logs, "server-1.log"))
	clients.rejoin(srv, data, always(mustKeep))
	time.Sleep(randomDuration(random, damageLoadMin, damageLoadMax))
	if killed {
		srv.kill()
	} else {
		srv.terminate()
	}
	clients.waitEnded()

	sessions := clients.sessions()
	victims := pick(random, sessions, damageVictims)
	for _, note := range kind.damage(t, random, data, victims, counts) {
		t.Logf("seed %d: %s", seed, note)
	}
	srv = startServer(t, binary, data, filepath.Join(logs, "server-2.log"))
	rule := func(session string) policy {
		if kind.journal || slices.Contains(victims, session) {
			return mayRestartQuarantined
		}
		return mustKeep
	}
	clients.rejoin(srv, data, rule)
	checkJournalDamageReported(t, seed, srv, data)
	if moved, _ := filepath.Glob(filepath.Join(data, "quarantine", "*")); len(moved) > 0 {
		t.Logf("seed %d: quarantine/ holds %s", seed, strings.Join(baseNames(moved), ", "))
	}
	clients.waitLive(srv)
	clients.stop()
	srv.terminate()
}

// checkJournalDamageReported: a journal file moved to quarantine/ must be
// named in the server's log, or no operator learns of it.
func checkJournalDamageReported(t *testing.T, seed int64, srv *server, dataDirectory string) {
	t.Helper()
	moved, _ := filepath.Glob(filepath.Join(dataDirectory, "quarantine", "journal-*"))
	for _, path := range moved {
		if len(linesWith(srv.readLog(), filepath.Base(path))) == 0 {
			t.Errorf("seed %d: the damaged journal was moved to %s, and the server log does not say so", seed, path)
		}
	}
}

func baseNames(paths []string) []string {
	names := make([]string, len(paths))
	for i, path := range paths {
		names[i] = filepath.Base(path)
	}
	return names
}

// pick returns count of items, chosen by random, in their original order.
func pick(random *rand.Rand, items []string, count int) []string {
	order := random.Perm(len(items))[:count]
	slices.Sort(order)
	picked := make([]string, count)
	for i, index := range order {
		picked[i] = items[index]
	}
	return picked
}

func logPath(data, session string) string {
	return filepath.Join(data, "sessions", session, "messages.log")
}

func recordPath(data, session string) string {
	return filepath.Join(data, "sessions", session, "record.json")
}

// eachVictim damages the file path names of every victim with damage.
func eachVictim(path func(data, session string) string, damage func(*testing.T, *rand.Rand, string, *tally) string) func(*testing.T, *rand.Rand, string, []string, *tally) []string {
	return func(t *testing.T, random *rand.Rand, data string, victims []string, counts *tally) []string {
		var notes []string
		for _, session := range victims {
			notes = append(notes, damage(t, random, path(data, session), counts))
		}
		return notes
	}
}

// flipMiddleByte changes one byte in the middle half of a file.
func flipMiddleByte(t *testing.T, random *rand.Rand, path string, counts *tally) string {
	t.Helper()
	content := readFile(t, path)
	if len(content) < 4 {
		t.Fatalf("%s has %d bytes, too few to damage", path, len(content))
	}
	return flipByte(t, random, path, content, len(content)/4, 3*len(content)/4, counts)
}

// flipByte XORs one byte at a random offset in [from, to) with a random
// non-zero value.
func flipByte(t *testing.T, random *rand.Rand, path string, content []byte, from, to int, counts *tally) string {
	t.Helper()
	offset := from + random.IntN(to-from)
	before := content[offset]
	content[offset] ^= byte(1 + random.IntN(255))
	writeFile(t, path, content)
	counts.add(&counts.flips, 1)
	return fmt.Sprintf("flipped byte %d of %d of %s: %#02x became %#02x", offset, len(content), path, before, content[offset])
}

// truncateEmpty truncates a file to 0 bytes.
func truncateEmpty(t *testing.T, _ *rand.Rand, path string, counts *tally) string {
	t.Helper()
	size := len(readFile(t, path))
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	counts.add(&counts.truncations, 1)
	return fmt.Sprintf("truncated %s from %d bytes to 0", path, size)
}

// truncateMidFrame cuts a message log inside a frame of its middle half.
func truncateMidFrame(t *testing.T, random *rand.Rand, path string, counts *tally) string {
	t.Helper()
	content := readFile(t, path)
	starts := frameStarts(content)
	if len(starts) < 2 {
		t.Fatalf("%s holds %d frames, too few to cut one in the middle", path, len(starts))
	}
	frame := len(starts)/4 + random.IntN(len(starts)/2)
	end := len(content)
	if frame+1 < len(starts) {
		end = starts[frame+1]
	}
	cut := starts[frame] + 1 + random.IntN(end-starts[frame]-1)
	if err := os.Truncate(path, int64(cut)); err != nil {
		t.Fatal(err)
	}
	counts.add(&counts.truncations, 1)
	return fmt.Sprintf("truncated %s from %d bytes to %d, inside frame %d of %d (bytes %d to %d)",
		path, len(content), cut, frame, len(starts), starts[frame], end)
}

// flipJournal changes one byte in the middle half of the entries of the
// journal file that holds the most (a prepared file ends in zeros, which
// no entry uses).
func flipJournal(t *testing.T, random *rand.Rand, data string, _ []string, counts *tally) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(data, "journal", "*.log"))
	best, bestUsed := "", 0
	for _, path := range files {
		if used := len(bytes.TrimRight(readFile(t, path), "\x00")); used > bestUsed {
			best, bestUsed = path, used
		}
	}
	entries := bestUsed - len(journalHeader)
	if entries < 4 {
		t.Fatalf("no journal file with entries after SIGKILL (journal files: %s)", strings.Join(files, ", "))
	}
	content := readFile(t, best)
	from := len(journalHeader) + entries/4
	return []string{flipByte(t, random, best, content, from, from+entries/2, counts)}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return content
}

// writeFile overwrites a file in place, as damage on the disk would.
func writeFile(t *testing.T, path string, content []byte) {
	t.Helper()
	file, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	if _, err := file.WriteAt(content, 0); err != nil {
		t.Fatal(err)
	}
}
