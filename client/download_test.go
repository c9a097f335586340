package client

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
)

// A snapshot download that meets a passing failure (503, as a server whose
// storage fails for a moment answers) is tried again; a missing file is
// not.
func TestSnapshotDownloadRetries(t *testing.T) {
	var calls atomic.Int32
	files := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		switch {
		case r.URL.Path == "/missing":
			http.NotFound(w, r)
		case n <= 2:
			http.Error(w, "reading the file failed, retry", http.StatusServiceUnavailable)
		default:
			w.Write([]byte("snapshot"))
		}
	}))
	defer files.Close()
	s := &Session[tally]{http: files.Client()}
	data, err := s.get(files.URL + "/snap")
	if err != nil || string(data) != "snapshot" || calls.Load() != 3 {
		t.Fatalf("get = %q, %v after %d requests; want the snapshot after 3", data, err, calls.Load())
	}
	calls.Store(0)
	if _, err := s.get(files.URL + "/missing"); err == nil || calls.Load() != 1 {
		t.Fatalf("get of a missing file: %v after %d requests; want an error after 1", err, calls.Load())
	}
}
