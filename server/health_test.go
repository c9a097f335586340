package server

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/memstore"
)

// unhealthyStore is a store whose Health the test sets.
type unhealthyStore struct {
	store.Store
	failure atomic.Pointer[error]
}

func (s *unhealthyStore) Health() error {
	if err := s.failure.Load(); err != nil {
		return *err
	}
	return nil
}

// TestStorageFailureIsReported: while the store reports a storage failure,
// /healthz answers 503 with the reason and WebSocket upgrades are refused
// with 503 and Retry-After (clients back off instead of joining sessions
// that can only fail); once it recovers both work again.
func TestStorageFailureIsReported(t *testing.T) {
	st := &unhealthyStore{Store: memstore.New()}
	server := startServer(t, Config{Store: st})
	base := "http://" + server.Addr()
	get := func(path string, header http.Header) (*http.Response, string) {
		t.Helper()
		request, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		for key, values := range header {
			request.Header[key] = values
		}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		defer response.Body.Close()
		body, _ := io.ReadAll(response.Body)
		return response, string(body)
	}
	upgrade := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"},
		"Sec-Websocket-Version": {"13"}, "Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}

	if response, body := get("/healthz", nil); response.StatusCode != http.StatusOK || body != "ok\n" {
		t.Fatalf("/healthz of a working store: %d %q", response.StatusCode, body)
	}
	full := errors.New("writing the journal: no space left on device")
	st.failure.Store(&full)
	response, body := get("/healthz", nil)
	if response.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "no space left on device") {
		t.Errorf("/healthz while storage fails: %d %q, want 503 naming the error", response.StatusCode, body)
	}
	response, body = get("/reflector/s1", upgrade)
	if response.StatusCode != http.StatusServiceUnavailable || response.Header.Get("Retry-After") == "" || !strings.Contains(body, "storage unavailable") {
		t.Errorf("an upgrade while storage fails: %d, Retry-After %q, %q; want 503 with Retry-After", response.StatusCode, response.Header.Get("Retry-After"), body)
	}
	st.failure.Store(nil)
	if response, body := get("/healthz", nil); response.StatusCode != http.StatusOK {
		t.Errorf("/healthz after recovering: %d %q", response.StatusCode, body)
	}
	c := dialSession(t, server.Addr(), "s1", "v1")
	c.join() // the session works again
}

// TestUploadsKeepDiskReserve: an upload that would leave less than
// FilesDiskReserveBytes free on the data directory's disk is refused with
// 507; with the check off the same upload is stored.
func TestUploadsKeepDiskReserve(t *testing.T) {
	for _, reserve := range []int64{1 << 62, -1} {
		st := openDiskStore(t, t.TempDir())
		server := startServer(t, Config{Store: st, FilesDiskReserveBytes: reserve})
		request, err := http.NewRequest(http.MethodPut, "http://"+server.Addr()+"/files/apps/a/data/blob", strings.NewReader("content"))
		if err != nil {
			t.Fatal(err)
		}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(response.Body)
		response.Body.Close()
		want := http.StatusCreated
		if reserve > 0 {
			want = http.StatusInsufficientStorage
		}
		if response.StatusCode != want {
			t.Errorf("reserve %d: PUT answered %d %q, want %d", reserve, response.StatusCode, body, want)
		}
	}
}
