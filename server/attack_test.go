package server

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/auth"
)

// TestAttacksOfAStranger replays, against a server with --auth token, the
// attacks that broke a session of an open server: a stranger who JOINs a
// live session and sends one garbage SEND (every real client of the
// session failed to decrypt it, and so did every later joiner, because the
// message was stored), and a PUT of garbage over the snapshot the session
// uses (every late joiner failed). Here the stranger has no token, a
// token of another key, or a valid token for another app; none of it
// reaches the session or its files.
func TestAttacksOfAStranger(t *testing.T) {
	keys := newTokenKeys(t, 1)
	server := startTokenServer(t, keys)
	sessionID := newSessionID(t)
	member := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), sessionID, "member")
	member.join()
	member.sendMessage("encrypted-1")
	member.awaitPayload("encrypted-1")

	// The stranger reads live session ids from /sessions: not on the
	// public address.
	if status, _ := fileRequest(t, http.MethodGet, "http://"+server.Addr()+"/sessions", nil); status != http.StatusNotFound {
		t.Errorf("GET /sessions on the public address: %d, want 404", status)
	}

	// The stranger's garbage SEND, with every kind of credential it can
	// get: each connection is closed before its frames reach the session.
	otherKey := newTokenKeys(t, 2)
	for _, stranger := range []struct {
		name, token, reason string
	}{
		{"no token", "", "no token in the URL"},
		{"token of another key", otherKey.mint(t, []string{testAppID}, auth.AllRights, time.Hour), "bad signature"},
		{"token for another app", keys.mint(t, []string{"com.other.app"}, auth.AllRights, time.Hour), "not for app"},
	} {
		var c *client
		if stranger.token == "" {
			c = dialSession(t, server.Addr(), sessionID, "stranger")
		} else {
			c = dialWithToken(t, server.Addr(), stranger.token, sessionID, "stranger")
		}
		c.sendJSON(map[string]any{"id": sessionID, "action": "JOIN", "args": standardJoinArgs("stranger")})
		c.sendJSON(sendFrame(sessionID, "GARBAGE from "+stranger.name))
		c.expectClose(closeNotAuthorized, stranger.reason)
	}
	member.sendMessage("encrypted-2")
	member.awaitPayload("encrypted-2")
	for _, message := range member.messages {
		if strings.Contains(message.text(), "GARBAGE") {
			t.Errorf("the stranger's SEND reached the session: %s", message.text())
		}
	}
	late := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), sessionID, "late")
	for _, raw := range late.join().Messages {
		if strings.Contains(string(raw), "GARBAGE") {
			t.Errorf("the stranger's SEND is stored and reaches a late joiner: %s", raw)
		}
	}

	// The snapshot overwrite: the member uploads its snapshot; the
	// stranger's PUT of other bytes on that URL is refused without a
	// token, and refused by write-once with a valid upload token of its
	// own; the snapshot is intact.
	upload := keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour)
	base := "http://" + server.Addr()
	snapshot := []byte("CRQ1 the member's encrypted snapshot")
	if status, body := fileRequest(t, http.MethodPut, base+"/k/"+upload+"/files/"+jsAppSnapshotPath, snapshot); status != http.StatusCreated {
		t.Fatalf("the member's upload: %d %q", status, body)
	}
	for _, attempt := range []struct {
		name, url string
		status    int
	}{
		{"without token", base + "/files/" + jsAppSnapshotPath, http.StatusUnauthorized},
		{"with a token of another key", base + "/k/" + otherKey.mint(t, []string{testAppID}, auth.AllRights, time.Hour) + "/files/" + jsAppSnapshotPath, http.StatusUnauthorized},
		{"with a token for another app", base + "/k/" + keys.mint(t, []string{"com.other.app"}, auth.AllRights, time.Hour) + "/files/" + jsAppSnapshotPath, http.StatusForbidden},
		{"with a valid upload token", base + "/k/" + keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour) + "/files/" + jsAppSnapshotPath, http.StatusConflict},
	} {
		if status, body := fileRequest(t, http.MethodPut, attempt.url, []byte("GARBAGE")); status != attempt.status {
			t.Errorf("overwriting the snapshot %s: %d %q, want %d", attempt.name, status, body, attempt.status)
		}
	}
	if status, body := fileRequest(t, http.MethodGet, base+"/k/"+upload+"/files/"+jsAppSnapshotPath, nil); status != http.StatusOK || body != string(snapshot) {
		t.Errorf("the snapshot after the attempts: %d %q, want the member's bytes", status, body)
	}
}
