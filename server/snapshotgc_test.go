package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// testSnapshotKeep is the SnapshotKeepMin of these tests.
const testSnapshotKeep = 300 * time.Millisecond

// snapshotPath is the Go SDK's path of a snapshot at a message's time
// and seq (docs/protocol.md §8.4).
func snapshotPath(session string, message stampedMessage, content string) string {
	sum := sha256.Sum256([]byte(content))
	return fmt.Sprintf("snapshots/%s/%010d_%d-%s.snap", session, message.Time, message.Seq, hex.EncodeToString(sum[:8]))
}

// filesRequest sends a request to /files/<path> of server; length -1
// sends the body chunked (size not declared).
func filesRequest(t *testing.T, server *Server, method, path string, body []byte, length int64) (int, string) {
	t.Helper()
	var reader io.Reader
	if body != nil {
		reader = bytes.NewReader(body)
		if length < 0 {
			reader = io.MultiReader(reader) // hides the length
		}
	}
	request, err := http.NewRequest(method, "http://"+server.Addr()+"/files/"+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if length >= 0 {
		request.ContentLength = length
	}
	response, err := (&http.Client{Timeout: frameTimeout}).Do(request)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer response.Body.Close()
	answer, _ := io.ReadAll(response.Body)
	return response.StatusCode, strings.TrimSpace(string(answer))
}

func putOK(t *testing.T, server *Server, path string, body []byte) {
	t.Helper()
	if status, answer := filesRequest(t, server, http.MethodPut, path, body, int64(len(body))); status != http.StatusCreated {
		t.Fatalf("PUT %s: %d %q, want 201", path, status, answer)
	}
}

// exists reports whether GET path answers 200 (404: false).
func exists(t *testing.T, server *Server, path string) bool {
	t.Helper()
	status, answer := filesRequest(t, server, http.MethodGet, path, nil, -1)
	if status != http.StatusOK && status != http.StatusNotFound {
		t.Fatalf("GET %s: %d %q", path, status, answer)
	}
	return status == http.StatusOK
}

// snapshotAt sends a message, uploads a snapshot at its time and seq and
// announces it with SNAP; it returns the snapshot's path.
func snapshotAt(t *testing.T, server *Server, c *client, payload string, announce bool) string {
	t.Helper()
	time.Sleep(5 * time.Millisecond) // a later session time than the last snapshot's
	c.sendMessage(payload)
	message := c.awaitPayload(payload)
	path := snapshotPath(c.sessionID, message, payload)
	putOK(t, server, path, []byte("snapshot "+payload))
	if announce {
		url := "http://" + server.Addr() + "/files/" + path
		c.sendJSON(map[string]any{"action": "SNAP", "args": map[string]any{"time": message.Time, "seq": message.Seq, "hash": "h", "url": url}})
	}
	return path
}

// awaitSnapshotURL waits until a joiner's SYNC names path: the SNAP is
// committed (and the collector has observed it).
func awaitSnapshotURL(t *testing.T, server *Server, session, path string) {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for n := 0; ; n++ {
		joiner := dialSession(t, server.Addr(), session, fmt.Sprintf("joiner%d", n))
		sync := joiner.join()
		joiner.conn.Close()
		if strings.HasSuffix(sync.URL, "/files/"+path) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("SYNC names %q, want the snapshot %s", sync.URL, path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestOldSnapshotsAreCollected: a snapshot replaced by a newer SNAP stays
// downloadable for SnapshotKeepMin, then goes: in the background after the
// next SNAP, or in the sweep. The referenced snapshot, newer uploads not
// announced yet, files of other names and persisted data stay.
func TestOldSnapshotsAreCollected(t *testing.T) {
	for _, mode := range []string{"memory", "disk"} {
		t.Run(mode, func(t *testing.T) {
			st := store.Store(memstore.New())
			if mode == "disk" {
				st = openDiskStore(t, t.TempDir())
			}
			server := startServer(t, Config{Store: st, SnapshotKeepMin: testSnapshotKeep})
			session := newSessionID(t)
			c := dialSession(t, server.Addr(), session, "uploader")
			c.join()
			never := snapshotAt(t, server, c, "never announced", false)
			first := snapshotAt(t, server, c, "first", true)
			awaitSnapshotURL(t, server, session, first)
			other := "snapshots/" + session + "/notes.txt"
			putOK(t, server, other, []byte("not a snapshot"))
			saved := "apps/" + testAppID + "/" + session + "/save/" + strings.Repeat("s", 43)
			putOK(t, server, saved, []byte("persisted"))
			time.Sleep(testSnapshotKeep)

			second := snapshotAt(t, server, c, "second", true)
			awaitSnapshotURL(t, server, session, second)
			newer := snapshotAt(t, server, c, "uploaded, not yet announced", false)
			// The SNAP of first is old enough: what is older than first
			// went in the background; first itself stays for a joiner whose
			// SYNC named it before the second SNAP.
			awaitGone(t, server, never)
			if !exists(t, server, first) {
				t.Fatalf("%s was deleted as soon as a newer snapshot replaced it", first)
			}

			time.Sleep(testSnapshotKeep)
			server.sweep(context.Background(), time.Now())
			if exists(t, server, first) {
				t.Errorf("%s is still there %s after it was replaced", first, testSnapshotKeep)
			}
			for _, path := range []string{second, newer, other, saved} {
				if !exists(t, server, path) {
					t.Errorf("%s was deleted", path)
				}
			}
			if got := server.metrics.snapshotsCollected.Load(); got != 2 {
				t.Errorf("metronome_snapshots_collected_total %d, want 2", got)
			}
			want := int64(len("snapshot second") + len("snapshot uploaded, not yet announced") + len("not a snapshot"))
			if got := server.fileUsage.byKind()[fileKindSnapshots]; got != want {
				t.Errorf("snapshots use %d bytes, want %d", got, want)
			}
			if got := server.fileUsage.byKind()[fileKindPersisted]; got != int64(len("persisted")) {
				t.Errorf("persisted data uses %d bytes, want %d", got, len("persisted"))
			}
		})
	}
}

// awaitGone waits until GET path answers 404.
func awaitGone(t *testing.T, server *Server, path string) {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for exists(t, server, path) {
		if time.Now().After(deadline) {
			t.Fatalf("%s was not deleted", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSessionQuota: uploads beyond a session's snapshot directory quota
// are refused with 507 naming the flag, declared or not; other sessions
// are not affected; once old snapshots may go, an upload over the quota
// first collects them and is stored.
func TestSessionQuota(t *testing.T) {
	const kib = 1 << 10
	server := startServer(t, Config{FileBytesMax: 1 << 20, FilesSessionBytesMax: 2<<20 + 500*kib, SnapshotKeepMin: testSnapshotKeep})
	session := newSessionID(t)
	c := dialSession(t, server.Addr(), session, "uploader")
	c.join()
	body := bytes.Repeat([]byte("x"), 900*kib)
	var paths []string
	var messages []stampedMessage
	for i := range 2 {
		time.Sleep(5 * time.Millisecond)
		c.sendMessage(fmt.Sprint("message ", i))
		messages = append(messages, c.awaitPayload(fmt.Sprint("message ", i)))
		paths = append(paths, snapshotPath(session, messages[i], fmt.Sprint(i)))
		putOK(t, server, paths[i], body)
	}
	third := "snapshots/" + session + "/0000099999_1-" + strings.Repeat("a", 16) + ".snap"
	for _, length := range []int64{int64(len(body)), -1} {
		status, answer := filesRequest(t, server, http.MethodPut, third, body, length)
		if status != http.StatusInsufficientStorage || !strings.Contains(answer, "--files-session-bytes-max") {
			t.Errorf("PUT beyond the session's quota (length %d): %d %q, want 507 naming --files-session-bytes-max", length, status, answer)
		}
	}
	if exists(t, server, third) {
		t.Error("a refused upload was stored")
	}
	if got := server.metrics.uploadsRefusedSession.Load(); got != 2 {
		t.Errorf("uploads refused by --files-session-bytes-max: %d, want 2", got)
	}
	putOK(t, server, "snapshots/"+newSessionID(t)+"/0000000001_1-"+strings.Repeat("b", 16)+".snap", body)

	// Announce the second snapshot and let the first age: the upload now
	// collects it first.
	c.sendJSON(map[string]any{"action": "SNAP", "args": map[string]any{"time": messages[1].Time, "seq": messages[1].Seq, "url": "http://" + server.Addr() + "/files/" + paths[1]}})
	awaitSnapshotURL(t, server, session, paths[1])
	time.Sleep(testSnapshotKeep)
	c.sendMessage("message 2")
	message := c.awaitPayload("message 2")
	third = snapshotPath(session, message, "2")
	// Collected only when the quota needs it: the sweep has not run.
	if !exists(t, server, paths[0]) {
		t.Fatalf("%s was deleted before an upload needed the room", paths[0])
	}
	putOK(t, server, third, body)
	if exists(t, server, paths[0]) {
		t.Errorf("%s survived the upload that needed its room", paths[0])
	}
	if got, want := server.fileUsage.directoryBytes("snapshots/"+session), int64(2*len(body)); got != want {
		t.Errorf("the session's directory counts %d bytes, want %d", got, want)
	}
}

// TestTotalQuota: all uploads together are bounded by FilesTotalBytesMax (507
// naming --files-total-bytes-max), replacing a file counts only the difference,
// and the metrics show the bytes per kind.
func TestTotalQuota(t *testing.T) {
	const mib = 1 << 20
	server := startServer(t, Config{FileBytesMax: mib, FilesTotalBytesMax: 2 * mib})
	data := "apps/" + testAppID + "/persistent/data/" + strings.Repeat("d", 43)
	putOK(t, server, data, bytes.Repeat([]byte("d"), mib))
	putOK(t, server, "notes/one", bytes.Repeat([]byte("o"), mib/4))
	// Replaced: while the new file is written both exist (on disk too),
	// then only the difference stays counted.
	putOK(t, server, "notes/one", bytes.Repeat([]byte("o"), mib/4+10))
	rest := int64(mib - mib/4 - 10)
	for _, length := range []int64{rest + 1, -1} {
		status, answer := filesRequest(t, server, http.MethodPut, "notes/two", bytes.Repeat([]byte("t"), int(rest+1)), length)
		if status != http.StatusInsufficientStorage || !strings.Contains(answer, "--files-total-bytes-max") {
			t.Errorf("PUT beyond all files' quota (length %d): %d %q, want 507 naming --files-total-bytes-max", length, status, answer)
		}
	}
	putOK(t, server, "notes/two", bytes.Repeat([]byte("t"), int(rest))) // exactly the rest
	if got := server.metrics.uploadsRefusedTotal.Load(); got != 2 {
		t.Errorf("uploads refused by --files-total-bytes-max: %d, want 2", got)
	}
	// sessions, journal and quarantine appear once the first measurement
	// (at start, in the background) is done.
	response, metrics := httpGetText(t, "http://"+server.Addr()+"/metrics")
	for deadline := time.Now().Add(frameTimeout); !strings.Contains(metrics, `kind="sessions"`) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		response, metrics = httpGetText(t, "http://"+server.Addr()+"/metrics")
	}
	for _, line := range []string{
		`metronome_storage_bytes{kind="data"} 1048576`,
		`metronome_storage_bytes{kind="other"} 1048576`, // a quarter + 10, and the rest
		`metronome_storage_bytes{kind="snapshots"} 0`,
		`metronome_uploads_refused_total{limit="files-total-bytes-max"} 2`,
		`metronome_snapshots_collected_total 0`,
		`metronome_storage_bytes{kind="sessions"} `,
	} {
		if response != http.StatusOK || !strings.Contains(metrics, line) {
			t.Errorf("/metrics (%d) lacks %q", response, line)
		}
	}
}

func httpGetText(t *testing.T, url string) (int, string) {
	t.Helper()
	response, err := (&http.Client{Timeout: frameTimeout}).Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	return response.StatusCode, string(body)
}

// TestQuotasCountFilesStoredBeforeStart: the usage is measured from the
// data directory when the server starts.
func TestQuotasCountFilesStoredBeforeStart(t *testing.T) {
	dir := t.TempDir()
	st := openDiskStore(t, dir)
	ctx := context.Background()
	full := bytes.Repeat([]byte("f"), 1<<20)
	for _, path := range []string{"snapshots/s/a", "snapshots/s/b"} {
		if err := st.PutFile(ctx, path, bytes.NewReader(full), 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	server := startServer(t, Config{Store: st, FileBytesMax: 1 << 20, FilesSessionBytesMax: 2 << 20})
	status, answer := filesRequest(t, server, http.MethodPut, "snapshots/s/c", []byte("one byte more"), -1)
	if status != http.StatusInsufficientStorage || !strings.Contains(answer, "--files-session-bytes-max") {
		t.Errorf("PUT into a directory filled before the start: %d %q, want 507", status, answer)
	}
	if got := server.fileUsage.directoryBytes("snapshots/s"); got != 2<<20 {
		t.Errorf("measured %d bytes in snapshots/s, want %d", got, 2<<20)
	}
}

// TestRetentionDeletesSnapshotFiles: deleting an idle session deletes its
// snapshot files in both layouts, but not the application's persisted
// data and Data-API files; the sweep deletes the snapshot directories of
// sessions that are not stored once their files are older than the
// retention.
func TestRetentionDeletesSnapshotFiles(t *testing.T) {
	st := memstore.New()
	server := startServer(t, Config{Store: st, SessionRetention: 24 * time.Hour})
	ctx := context.Background()
	if err := st.Commit(ctx, "idle", store.Batch{Record: []byte(`{"timeline":"t","snapshotTime":-1}`)}); err != nil {
		t.Fatal(err)
	}
	owned := []string{
		"snapshots/idle/0000000010_1-0123456789abcdef.snap",
		"snapshots/idle/other",
		"apps/" + testAppID + "/snap/code/persistent.idle/0000000010_1." + strings.Repeat("h", 43),
	}
	kept := []string{
		"apps/" + testAppID + "/persistent/save/" + strings.Repeat("s", 43),
		"apps/" + testAppID + "/persistent/data/" + strings.Repeat("d", 43),
		"snapshots/idle2/0000000010_1-0123456789abcdef.snap",                                         // another session (not stored, but young)
		"apps/" + testAppID + "/snap/code/persistent.x.idle/0000000010_1." + strings.Repeat("h", 43), // whose session is not certain
	}
	for _, path := range append(append([]string{}, owned...), kept...) {
		putOK(t, server, path, []byte(path))
	}
	if deleted, err := server.sweepRetention(ctx, time.Now().Add(25*time.Hour)); err != nil || deleted != 1 {
		t.Fatalf("retention sweep: deleted %d, %v; want the idle session", deleted, err)
	}
	for _, path := range owned {
		if exists(t, server, path) {
			t.Errorf("%s survived its session's deletion", path)
		}
	}
	for _, path := range kept {
		if !exists(t, server, path) {
			t.Errorf("%s was deleted with the session", path)
		}
	}
	if got := server.metrics.snapshotsCollected.Load(); got != 3 {
		t.Errorf("metronome_snapshots_collected_total %d, want 3", got)
	}
	// idle2 is not stored: its files go once older than the retention.
	server.snapshots.sweep(ctx, time.Now().Add(time.Hour))
	if !exists(t, server, kept[2]) {
		t.Errorf("%s was deleted before it was older than the retention", kept[2])
	}
	server.snapshots.sweep(ctx, time.Now().Add(25*time.Hour))
	if exists(t, server, kept[2]) {
		t.Errorf("%s of a session not stored survived the sweep", kept[2])
	}
	for _, path := range []string{kept[0], kept[1], kept[3]} {
		if !exists(t, server, path) {
			t.Errorf("%s was deleted by the sweep", path)
		}
	}
}

// TestFileLimitsDefaults: memory mode has a bound on all files (no disk
// reserve applies); disk mode relies on the reserve; the relations
// between the limits are checked.
func TestFileLimitsDefaults(t *testing.T) {
	memory := startServer(t, Config{})
	if memory.config.FilesTotalBytesMax != DefaultFilesMemoryBytesMax || memory.config.FilesSessionBytesMax != DefaultFilesSessionBytesMax {
		t.Errorf("memory mode: FilesTotalBytesMax %d, FilesSessionBytesMax %d; want %d, %d",
			memory.config.FilesTotalBytesMax, memory.config.FilesSessionBytesMax, DefaultFilesMemoryBytesMax, DefaultFilesSessionBytesMax)
	}
	disk := startServer(t, Config{Store: openDiskStore(t, t.TempDir())})
	if disk.config.FilesTotalBytesMax >= 0 {
		t.Errorf("disk mode: FilesTotalBytesMax %d, want none (the disk reserve applies)", disk.config.FilesTotalBytesMax)
	}
	for _, config := range []Config{
		{Store: memstore.New(), FileBytesMax: 1 << 20, FilesSessionBytesMax: 1 << 20},
		{Store: memstore.New(), FileBytesMax: 1 << 20, FilesTotalBytesMax: 1<<21 - 1},
	} {
		if _, err := New(config); err == nil || !strings.Contains(err.Error(), "twice FileBytesMax") {
			t.Errorf("New(%+v): %v, want an error about twice FileBytesMax", config, err)
		}
	}
}
