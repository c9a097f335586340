package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/protocol"
)

// startAdmin serves the server's admin handler on a loopback test
// listener and returns its base URL.
func startAdmin(t *testing.T, server *Server) string {
	t.Helper()
	admin := httptest.NewServer(server.AdminHandler())
	t.Cleanup(admin.Close)
	return admin.URL
}

// startAdminSession starts a server and its admin handler (base is the
// admin URL), and a session (id) that clients viewA (a) and then viewB (b)
// joined; a has seen b join.
func startAdminSession(t *testing.T) (base, id string, a, b *client) {
	t.Helper()
	server := startServer(t, Config{})
	base = startAdmin(t, server)
	id = newSessionID(t)
	a = dialSession(t, server.Addr(), id, "viewA")
	a.join()
	b = dialSession(t, server.Addr(), id, "viewB")
	b.join()
	a.awaitJoined("viewB")
	return base, id, a, b
}

// getJSON fetches url and decodes its JSON into v.
func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	response, body := httpGet(t, url)
	if response.StatusCode != http.StatusOK || response.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET %s: %d %s %q", url, response.StatusCode, response.Header.Get("Content-Type"), body)
	}
	if err := json.Unmarshal(body, v); err != nil {
		t.Fatalf("GET %s: %v in %s", url, err, body)
	}
}

// awaitDetail polls a session's detail until done holds (the statistics
// are published after the flushes, within statsPublishInterval).
func awaitDetail(t *testing.T, base, id string, done func(*sessionDetail) bool) sessionDetail {
	t.Helper()
	deadline := time.Now().Add(frameTimeout)
	for {
		var detail sessionDetail
		getJSON(t, base+"/sessions/"+id, &detail)
		if done(&detail) {
			return detail
		}
		if time.Now().After(deadline) {
			t.Fatalf("the detail of session %s never reached the expected state: %+v", id, detail)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestAdminShowsASession: the detail and the list of a session with
// members and messages say what its clients saw.
func TestAdminShowsASession(t *testing.T) {
	base, id, a, b := startAdminSession(t)
	payloads := []string{"one", "two", "three", "four", "five"}
	for _, payload := range payloads {
		a.sendMessage(payload)
	}
	a.awaitAll(payloads)
	b.awaitAll(payloads)

	// A joined first: it saw every message since the session began.
	bufferedBytes := len(a.messages) - 1
	for _, message := range a.messages {
		bufferedBytes += len(message.Raw)
	}
	seq := a.messages[len(a.messages)-1].Seq
	detail := awaitDetail(t, base, id, func(d *sessionDetail) bool { return d.Seq == seq && d.Members == 2 })
	if detail.Connections != 2 || detail.Stamped != uint32(len(a.messages)) || detail.Stamped != seq-protocol.SeqInitial {
		t.Errorf("connections %d, stamped %d; want 2 and the %d messages A saw", detail.Connections, detail.Stamped, len(a.messages))
	}
	if detail.BufferedMessages != len(a.messages) || detail.BufferedBytes != bufferedBytes {
		t.Errorf("buffered %d messages, %d bytes; want %d, %d (no snapshot: everything since the start)",
			detail.BufferedMessages, detail.BufferedBytes, len(a.messages), bufferedBytes)
	}
	if !detail.Started || detail.AppID != testAppID || detail.Timeline != a.sync.Timeline || detail.SessionTimeMs < a.maxTime {
		t.Errorf("started %v, app %q, timeline %q, session time %d; want the session's (timeline %q, time ≥ %d)",
			detail.Started, detail.AppID, detail.Timeline, detail.SessionTimeMs, a.sync.Timeline, a.maxTime)
	}
	if detail.Snapshot != nil || detail.SnapshotAgeMs != nil {
		t.Errorf("snapshot %+v, age %v; the session has none", detail.Snapshot, detail.SnapshotAgeMs)
	}
	if len(detail.MemberList) != 2 || detail.MemberList[0].ViewID != "viewA" || detail.MemberList[1].ViewID != "viewB" ||
		!detail.MemberList[0].Synced || detail.MemberList[0].Remote == "" || detail.MemberList[1].User != `"viewB"` {
		t.Errorf("member list %+v, want viewA and viewB, synced, with their addresses", detail.MemberList)
	}
	persisted := detail.Persisted
	if persisted.PersistentID != "persistent-id-of-room1" || persisted.PointerStored == nil || *persisted.PointerStored || persisted.Saves != 0 {
		t.Errorf("persisted %+v, want the persistentId and no pointer stored", persisted)
	}

	var list sessionList
	getJSON(t, base+"/sessions?format=json", &list)
	if list.Total != 1 || len(list.Sessions) != 1 || list.Sessions[0].ID != id || list.Sessions[0].Members != 2 || list.Sessions[0].Seq != seq {
		t.Errorf("list %+v, want the one session with 2 members at seq %d", list, seq)
	}
	request, _ := http.NewRequest(http.MethodGet, base+"/sessions", nil)
	request.Header.Set("Accept", "application/json")
	if response, err := http.DefaultClient.Do(request); err != nil || response.Header.Get("Content-Type") != "application/json" {
		t.Errorf("GET /sessions with Accept: application/json: %v %v", response, err)
	} else {
		response.Body.Close()
	}
	if response, body := httpGet(t, base+"/sessions"); response.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != id {
		t.Errorf("plain /sessions: %d %q, want the id", response.StatusCode, body)
	}
	if response, _ := httpGet(t, base+"/sessions/no-such-session"); response.StatusCode != http.StatusNotFound {
		t.Errorf("/sessions/no-such-session: %d, want 404", response.StatusCode)
	}
}

// TestAdminShowsClosesAndDivergence: a connection the server closed is
// listed with its code, and a vote whose replicas report different state
// hashes is counted as a divergence.
func TestAdminShowsClosesAndDivergence(t *testing.T) {
	base, id, a, b := startAdminSession(t)

	vote := func(c *client, key, hash string) {
		vote := fmt.Sprintf(`{"cpuTime":1,"hash":%q,"viewId":%q}`, hash, c.viewID)
		c.sendJSON(map[string]any{"id": id, "action": "TUTTI", "args": []any{1, 0, vote, nil, true, []string{"handleSnapshotVote"}, key}})
	}
	vote(a, "snapshot@1", "same")
	vote(b, "snapshot@1", "same")
	vote(a, "snapshot@2", "hash-of-a")
	vote(b, "snapshot@2", "hash-of-b")
	detail := awaitDetail(t, base, id, func(d *sessionDetail) bool { return d.Divergence.Checked == 2 })
	last := detail.Divergence.Last
	if detail.Divergence.Diverged != 1 || detail.DivergedTallies != 1 || last == nil || last.Key != "snapshot@2" || len(last.Hashes) != 2 {
		t.Fatalf("divergence %+v (last %+v), want snapshot@2 diverged", detail.Divergence, last)
	}
	for _, hash := range last.Hashes { // in the order the votes arrived
		if view := strings.TrimPrefix(hash.Hash, "hash-of-"); hash.Votes != 1 || len(hash.Views) != 1 || hash.Views[0] != "view"+strings.ToUpper(view) {
			t.Errorf("hash %+v, want one vote of its view", hash)
		}
	}

	b.sendText(`{"id":"` + id + `","action":"SEND","args":"not an array"}`)
	closed := b.readClose()
	detail = awaitDetail(t, base, id, func(d *sessionDetail) bool { return len(d.Closes) == 1 && d.Connections == 1 })
	if got := detail.Closes[0]; got.Code != closed.Code || got.Code == 0 || got.Reason != closed.Reason || got.Remote == "" {
		t.Errorf("close %+v, want the %d %q that B got", got, closed.Code, closed.Reason)
	}
	var list sessionList
	getJSON(t, base+"/sessions?format=json", &list)
	if len(list.Sessions) != 1 || list.Sessions[0].RecentCloses != 1 || list.Sessions[0].DivergedTallies != 1 {
		t.Errorf("list %+v, want one close and one diverged tally", list.Sessions)
	}
}

// TestAdminListIsBounded: one answer holds at most adminSessionsPageMax
// sessions; the rest are reached with offset.
func TestAdminListIsBounded(t *testing.T) {
	server := startServer(t, Config{})
	base := startAdmin(t, server)
	var ids []string
	for i := range 3 {
		id := fmt.Sprintf("%s-%d", newSessionID(t), i)
		c := dialSession(t, server.Addr(), id, "view")
		c.join()
		ids = append(ids, id)
	}
	var list sessionList
	getJSON(t, base+"/sessions?format=json&limit=100000", &list)
	if list.Limit != adminSessionsPageMax || list.Total != 3 || len(list.Sessions) != 3 {
		t.Errorf("limit=100000: limit %d, total %d, %d sessions; want the limit capped at %d", list.Limit, list.Total, len(list.Sessions), adminSessionsPageMax)
	}
	getJSON(t, base+"/sessions?format=json&limit=2", &list)
	if list.Total != 3 || len(list.Sessions) != 2 || list.Sessions[0].ID != ids[0] || list.Sessions[1].ID != ids[1] {
		t.Errorf("limit=2: %+v, want the first two of %v", list, ids)
	}
	getJSON(t, base+"/sessions?format=json&limit=2&offset=2&sort=members", &list)
	if list.Total != 3 || len(list.Sessions) != 1 || list.Sort != "members" {
		t.Errorf("offset=2: %+v, want the last one", list)
	}
	for _, query := range []string{"sort=loudest", "offset=-1", "limit=many"} {
		if response, _ := httpGet(t, base+"/sessions?format=json&"+query); response.StatusCode != http.StatusBadRequest {
			t.Errorf("/sessions?%s: %d, want 400", query, response.StatusCode)
		}
	}
}

// TestAdminServesTheInspectorAndProfiler: the page, its assets, /metrics
// and pprof; a Host that DNS rebinding could produce is refused.
func TestAdminServesTheInspectorAndProfiler(t *testing.T) {
	server := startServer(t, Config{})
	base := startAdmin(t, server)
	for path, want := range map[string]string{
		"/":                      "Metronome inspector",
		"/inspector.js":          "POLL_INTERVAL_MS",
		"/inspector.css":         "font",
		"/metrics":               "metronome_sessions",
		"/debug/pprof/":          "goroutine",
		"/debug/pprof/cmdline":   "",
		"/debug/pprof/goroutine": "",
	} {
		response, body := httpGet(t, base+path)
		if response.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("GET %s: %d, want 200 with %q", path, response.StatusCode, want)
		}
	}
	if response, _ := httpGet(t, base+"/"); !strings.Contains(response.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("the inspector page has no Content-Security-Policy: %q", response.Header.Get("Content-Security-Policy"))
	}
	request, _ := http.NewRequest(http.MethodGet, base+"/sessions", nil)
	request.Host = "rebound.example.com"
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusForbidden {
		t.Errorf("Host rebound.example.com: %d, want 403", response.StatusCode)
	}
	for host, allowed := range map[string]bool{"127.0.0.1:8889": true, "[::1]:8889": true, "localhost:8889": true,
		"admin.localhost": true, "10.1.2.3": true, "example.com": false, "localhost.example.com:8889": false} {
		if adminHostAllowed(host) != allowed {
			t.Errorf("adminHostAllowed(%q) = %v", host, !allowed)
		}
	}
}

// TestPublicAddressServesNoAdminPaths: /sessions and the profiler are
// the admin listener's only, in every auth mode; /metrics stays public
// with AuthNone.
func TestPublicAddressServesNoAdminPaths(t *testing.T) {
	keys := newTokenKeys(t, 3)
	for _, server := range []*Server{startServer(t, Config{}), startTokenServer(t, keys)} {
		mode := server.config.Auth
		id := newSessionID(t)
		c := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), id, "view")
		c.join()
		base := "http://" + server.Addr()
		for _, path := range []string{"/sessions", "/sessions/" + id, "/debug/pprof/", "/debug/pprof/goroutine", "/k/" + testStaticToken + "/sessions"} {
			status, body := fileRequest(t, http.MethodGet, base+path, nil)
			listed := !strings.Contains(path, id) && strings.Contains(body, id)
			if status != http.StatusNotFound || listed || !strings.Contains(body, "--admin-addr") {
				t.Errorf("%v: GET %s: %d %q, want 404 pointing to --admin-addr", mode, path, status, body)
			}
		}
		wantMetrics := map[AuthMode]int{AuthNone: http.StatusOK, AuthToken: http.StatusNotFound}[mode]
		if status, _ := fileRequest(t, http.MethodGet, base+"/metrics", nil); status != wantMetrics {
			t.Errorf("%v: GET /metrics: %d, want %d", mode, status, wantMetrics)
		}
	}
}
