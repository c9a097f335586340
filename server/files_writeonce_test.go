package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/iotest"
	"time"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// Paths as the real clients build them (files_writeonce.go lists the
// functions): base64url SHA-256 hashes of 43 characters, times padded to
// 10 digits.
var (
	testSessionHash    = hash43("session")
	testPersistentHash = hash43("persistent")
	testCodeHash       = hash43("code")

	jsSnapshotPath    = "snapshots/" + testSessionHash + "/0000006218_4294967283-" + hash43("snapshot") + ".snap"
	jsAppSnapshotPath = "apps/" + testAppID + "/snap/" + testCodeHash + "/" + testPersistentHash + "." + testSessionHash + "/0000006218_4294967283." + hash43("snapshot")
	goSnapshotPath    = "snapshots/" + testSessionHash + "/0000000100_5-0123456789abcdef.snap"
	dataPath          = "apps/" + testAppID + "/" + testPersistentHash + "/data/" + hash43("data")
	savePath          = "apps/" + testAppID + "/" + testPersistentHash + "/save/" + hash43("save")
)

func hash43(text string) string {
	sum := sha256.Sum256([]byte(text))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestFileRuleFor(t *testing.T) {
	tests := []struct {
		path string
		want fileRule
	}{
		{jsSnapshotPath, fileWriteOnce},
		{jsAppSnapshotPath, fileWriteOnce},
		{goSnapshotPath, fileWriteOnce},
		{"snapshots/" + testSessionHash + "/12345678901_0-" + hash43("x") + ".snap", fileWriteOnce}, // session time past 10 digits
		{dataPath, fileWriteOnce},
		{savePath, fileFirstKept},

		// Not named by a hash: replaced as before.
		{"snapshots/s/limit.snap", fileReplaceable},
		{"snapshots/" + testSessionHash + "/0000006218_4294967283-short.snap", fileReplaceable},
		{"snapshots/" + testSessionHash + "/6218_4294967283-" + hash43("x") + ".snap", fileReplaceable},
		{"snapshots/" + testSessionHash + "/0000006218_4294967283-" + hash43("x"), fileReplaceable},
		{"apps/" + testAppID + "/persistent-id/data/Ab-_09.x", fileReplaceable},
		{savePath + "/more", fileReplaceable},
		{"apps/" + testAppID + "/save/" + hash43("x"), fileReplaceable},
		{"evil.html", fileReplaceable},
		{"other/" + hash43("x"), fileReplaceable},
	}
	for _, test := range tests {
		if got := fileRuleFor(test.path); got != test.want {
			t.Errorf("fileRuleFor(%q) = %s, want %s", test.path, got, test.want)
		}
	}
}

func TestWriteOnceFiles(t *testing.T) {
	server, _ := filesServer(t)
	base := "http://" + server.Addr() + "/files/"
	for _, path := range []string{jsSnapshotPath, jsAppSnapshotPath, goSnapshotPath, dataPath} {
		url := base + path
		content := strings.Repeat("stored bytes ", 5000) // more than one comparison chunk
		other := content[:len(content)-1] + "!"          // same length, last byte differs
		expectPut(t, url, strings.NewReader(content), http.StatusCreated, "")
		expectPut(t, url, strings.NewReader(content), http.StatusOK, "already stored with the same content")
		expectPut(t, url, chunked(content), http.StatusOK, "already stored with the same content")
		expectPut(t, url, strings.NewReader(other), http.StatusConflict, "already holds other content")
		expectPut(t, url, chunked(other), http.StatusConflict, "already holds other content")
		expectPut(t, url, strings.NewReader("short"), http.StatusConflict, "already holds other content")
		expectPut(t, url, chunked(content[:len(content)-1]), http.StatusConflict, "already holds other content")
		expectPut(t, url, chunked(content+"x"), http.StatusConflict, "already holds other content")
		if response, body := doRequest(t, http.MethodGet, url, nil, -1); response.StatusCode != http.StatusOK || string(body) != content {
			t.Errorf("GET %s after the refused PUTs: %d, %q, want 200 and the first upload", path, response.StatusCode, shorten(body))
		}
	}
}

func TestPersistedDataKeepsTheFirstUpload(t *testing.T) {
	server, _ := filesServer(t)
	url := "http://" + server.Addr() + "/files/" + savePath
	expectPut(t, url, strings.NewReader("first encryption"), http.StatusCreated, "")
	// A client whose data returned to an earlier value uploads it again,
	// encrypted with another IV: accepted, and the first file stays.
	expectPut(t, url, strings.NewReader("other encryption"), http.StatusOK, "the first upload is kept")
	expectPut(t, url, chunked("a longer other encryption"), http.StatusOK, "the first upload is kept")
	expectPut(t, url, strings.NewReader("first encryption"), http.StatusOK, "already stored with the same content")
	if response, body := doRequest(t, http.MethodGet, url, nil, -1); string(body) != "first encryption" {
		t.Errorf("GET: %d %q, want the first upload", response.StatusCode, shorten(body))
	}
}

func TestOtherPathsAreReplaced(t *testing.T) {
	server, _ := filesServer(t)
	url := "http://" + server.Addr() + "/files/notes/today.txt"
	expectPut(t, url, strings.NewReader("old"), http.StatusCreated, "")
	expectPut(t, url, strings.NewReader("new"), http.StatusCreated, "")
	if _, body := doRequest(t, http.MethodGet, url, nil, -1); string(body) != "new" {
		t.Errorf("GET after the second PUT: %q, want \"new\"", body)
	}
}

// Two uploads of one path at once: the second waits while the first is
// still sending, then compares with what the first stored. Without the
// turns both would find the path empty and both would be stored.
func TestConcurrentUploadsOfOnePathTakeTurns(t *testing.T) {
	for _, test := range []struct {
		name       string
		path       string
		sameBytes  bool
		wantStatus int // of the upload that does not store
	}{
		{"snapshot, other bytes", jsSnapshotPath, false, http.StatusConflict},
		{"snapshot, same bytes", jsSnapshotPath, true, http.StatusOK},
		{"persisted data, other bytes", savePath, false, http.StatusOK},
	} {
		t.Run(test.name, func(t *testing.T) {
			server, _ := filesServer(t)
			url := "http://" + server.Addr() + "/files/" + test.path
			first, second := strings.Repeat("a", 1000), strings.Repeat("b", 1000)
			if test.sameBytes {
				second = first
			}
			slowBody, slowWriter := io.Pipe()
			firstDone := putInBackground(url, slowBody, int64(len(first)))
			if _, err := io.WriteString(slowWriter, first[:500]); err != nil {
				t.Fatal(err)
			}
			awaitLockUsers(t, server, test.path, 1, nil)
			secondDone := putInBackground(url, strings.NewReader(second), int64(len(second)))
			awaitLockUsers(t, server, test.path, 2, secondDone)
			io.WriteString(slowWriter, first[500:])
			slowWriter.Close()

			results := []putResult{firstDone.wait(), secondDone.wait()}
			for _, result := range results {
				if result.err != nil {
					t.Fatal(result.err)
				}
			}
			// Normally the slow upload holds the path first; should the
			// second have won the race for it, the roles swap.
			winner, loser, stored := results[0], results[1], first
			if winner.status != http.StatusCreated {
				winner, loser, stored = results[1], results[0], second
			}
			if winner.status != http.StatusCreated || loser.status != test.wantStatus {
				t.Errorf("statuses %d (%s) and %d (%s), want one 201 and one %d",
					results[0].status, results[0].body, results[1].status, results[1].body, test.wantStatus)
			}
			if response, body := doRequest(t, http.MethodGet, url, nil, -1); string(body) != stored {
				t.Errorf("GET: %d %q, want the bytes of the upload that got 201", response.StatusCode, shorten(body))
			}
			if users, paths := server.fileLocks.users(test.path); users != 0 || paths != 0 {
				t.Errorf("after the uploads %d requests hold the path's lock and %d paths have locks, want none", users, paths)
			}
		})
	}
}

func TestManyConcurrentUploadsStoreOne(t *testing.T) {
	server, _ := filesServer(t)
	url := "http://" + server.Addr() + "/files/" + dataPath
	const uploads = 8
	var wg sync.WaitGroup
	results := make([]putResult, uploads)
	for i := range uploads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = putInBackground(url, strings.NewReader(fmt.Sprintf("upload %d", i)), -1).wait()
		}()
	}
	wg.Wait()
	created := -1
	for i, result := range results {
		switch {
		case result.err != nil:
			t.Fatal(result.err)
		case result.status == http.StatusCreated && created < 0:
			created = i
		case result.status != http.StatusConflict:
			t.Errorf("upload %d: %d %q, want 409 (one upload only gets 201)", i, result.status, result.body)
		}
	}
	if created < 0 {
		t.Fatal("no upload got 201")
	}
	if _, body := doRequest(t, http.MethodGet, url, nil, -1); string(body) != fmt.Sprintf("upload %d", created) {
		t.Errorf("GET: %q, want the bytes of upload %d, which got 201", body, created)
	}
}

// A client that trickles an upload of a write-once path holds it only until
// FileTransferTimeout cuts it off; an upload waiting behind it then stores.
func TestTricklingUploadCannotClaimAPath(t *testing.T) {
	server := startServer(t, Config{FileTransferTimeout: time.Second})
	url := "http://" + server.Addr() + "/files/" + jsSnapshotPath
	slowBody, slowWriter := io.Pipe()
	defer slowWriter.Close()
	trickled := putInBackground(url, slowBody, 1000)
	io.WriteString(slowWriter, "garbage")
	awaitLockUsers(t, server, jsSnapshotPath, 1, nil)
	time.Sleep(300 * time.Millisecond) // so the honest upload's deadline comes later
	honest := putInBackground(url, strings.NewReader("snapshot"), -1)
	if result := trickled.wait(); result.err == nil && result.status != http.StatusRequestTimeout {
		t.Errorf("trickling upload: %d %q, want 408 or a broken connection", result.status, result.body)
	}
	if result := honest.wait(); result.err != nil || result.status != http.StatusCreated {
		t.Errorf("upload waiting behind the trickling one: %d %q %v, want 201", result.status, result.body, result.err)
	}
	if _, body := doRequest(t, http.MethodGet, url, nil, -1); string(body) != "snapshot" {
		t.Errorf("GET: %q, want the honest upload", body)
	}
}

// When the store cannot tell whether a write-once file exists (out of
// descriptors, say), the upload is refused: storing could replace it.
func TestWriteOnceUploadIsRefusedWhenTheFileCannotBeRead(t *testing.T) {
	unreadable := &unreadableFiles{Store: memstore.New()}
	server := startServer(t, Config{Store: unreadable})
	url := "http://" + server.Addr() + "/files/" + jsSnapshotPath
	expectPut(t, url, strings.NewReader("garbage"), http.StatusInternalServerError, "reading the stored file failed")
	if puts := unreadable.puts.Load(); puts != 0 {
		t.Errorf("the store got %d PutFile calls, want none", puts)
	}
}

// unreadableFiles is a store whose files cannot be opened.
type unreadableFiles struct {
	store.Store
	puts atomic.Int32
}

func (u *unreadableFiles) OpenFile(context.Context, string) (io.ReadCloser, int64, error) {
	return nil, 0, errors.New("open: too many open files")
}

func (u *unreadableFiles) PutFile(ctx context.Context, path string, r io.Reader, maxBytes int64) error {
	u.puts.Add(1)
	return u.Store.PutFile(ctx, path, r, maxBytes)
}

func TestSameContent(t *testing.T) {
	stored := bytes.Repeat([]byte("0123456789"), compareChunkBytes/5) // two chunks
	changedLast := bytes.Clone(stored)
	changedLast[len(changedLast)-1] = 'x'
	tests := []struct {
		name       string
		stored     []byte
		body       []byte
		bodyLength int64
		want       bool
	}{
		{"equal", stored, stored, -1, true},
		{"equal, length declared", stored, stored, int64(len(stored)), true},
		{"last byte differs", stored, changedLast, -1, false},
		{"shorter", stored, stored[:len(stored)-1], -1, false},
		{"longer", stored, append(bytes.Clone(stored), 'x'), -1, false},
		{"declared length differs", stored, stored, int64(len(stored)) + 1, false},
		{"both empty", nil, nil, -1, true},
		{"empty body", stored, nil, -1, false},
		{"empty file", nil, []byte("x"), -1, false},
	}
	for _, test := range tests {
		// One byte per read, so that chunks are assembled from short reads.
		body := iotest.OneByteReader(bytes.NewReader(test.body))
		got, err := sameContent(body, test.bodyLength, bytes.NewReader(test.stored), int64(len(test.stored)))
		if err != nil || got != test.want {
			t.Errorf("%s: sameContent = %v, %v; want %v, nil", test.name, got, err, test.want)
		}
	}

	broken := errors.New("disk on fire")
	_, err := sameContent(bytes.NewReader(stored), -1, iotest.ErrReader(broken), int64(len(stored)))
	var storeErr *storedFileError
	if !errors.As(err, &storeErr) || !errors.Is(err, broken) {
		t.Errorf("a failing stored file gives %v, want a *storedFileError wrapping the cause", err)
	}
	_, err = sameContent(iotest.ErrReader(broken), -1, bytes.NewReader(stored), int64(len(stored)))
	if !errors.Is(err, broken) || errors.As(err, &storeErr) {
		t.Errorf("a failing upload gives %v, want its own error", err)
	}
}

// --- helpers ---

// chunked hides the length of text, so the request is sent chunked.
func chunked(text string) io.Reader { return io.MultiReader(strings.NewReader(text)) }

// expectPut PUTs body to url and checks the status and that the answer
// contains want.
func expectPut(t *testing.T, url string, body io.Reader, wantStatus int, want string) {
	t.Helper()
	response, answer := doRequest(t, http.MethodPut, url, body, -1)
	if response.StatusCode != wantStatus || !strings.Contains(string(answer), want) {
		t.Errorf("PUT %s: %d %q, want %d and %q", url, response.StatusCode, strings.TrimSpace(string(answer)), wantStatus, want)
	}
}

type putResult struct {
	status int
	body   string
	err    error
}

// pendingPut is an upload running in the background.
type pendingPut struct {
	done   chan struct{} // closed when result is set
	result putResult
}

func (p *pendingPut) wait() putResult {
	<-p.done
	return p.result
}

func (p *pendingPut) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// putInBackground PUTs body (of length bytes; -1: unknown).
func putInBackground(url string, body io.Reader, length int64) *pendingPut {
	pending := &pendingPut{done: make(chan struct{})}
	go func() {
		defer close(pending.done)
		request, err := http.NewRequest(http.MethodPut, url, body)
		if err != nil {
			pending.result.err = err
			return
		}
		request.ContentLength = length
		client := &http.Client{Timeout: 2 * frameTimeout}
		response, err := client.Do(request)
		if err != nil {
			pending.result.err = fmt.Errorf("PUT %s: %w", url, err)
			return
		}
		defer response.Body.Close()
		answer, err := io.ReadAll(response.Body)
		pending.result = putResult{status: response.StatusCode, body: strings.TrimSpace(string(answer)), err: err}
	}()
	return pending
}

// awaitLockUsers waits until want requests hold or wait for path's lock,
// or until the upload other (if not nil) has finished: one that won the
// lock is soon done and leaves.
func awaitLockUsers(t *testing.T, server *Server, path string, want int, other *pendingPut) {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for {
		users, _ := server.fileLocks.users(path)
		if users == want || (other != nil && other.finished()) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests use the lock of %s after %s, want %d", users, path, frameTimeout, want)
		}
		time.Sleep(time.Millisecond)
	}
}
