package server

// Access control over real loopback sockets (auth.go, docs/operations.md
// "Access control"): the allowed paths, and every refusal.

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/store/memstore"
)

// testTokenKeyID is the key id of the test's signing key.
const testTokenKeyID = "test-2026"

// testStaticToken is the static token of the test's keys file.
const testStaticToken = "dGVzdC1zdGF0aWMtdG9rZW4tb2Ytc2VydmVy"

// tokenKeys are a signing key and the verifier of a test server.
type tokenKeys struct {
	private  ed25519.PrivateKey
	verifier *auth.Verifier
}

func newTokenKeys(t testing.TB, seed byte) tokenKeys {
	t.Helper()
	private := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize))
	file := auth.KeyLine(testTokenKeyID, private.Public().(ed25519.PublicKey)) + "\n" +
		"static " + testStaticToken + " apps=" + testAppID + " rights=join sub=static-test\n"
	verifier, err := auth.ParseKeys([]byte(file))
	if err != nil {
		t.Fatal(err)
	}
	return tokenKeys{private: private, verifier: verifier}
}

// mint returns a token for apps with rights, valid for ttl (negative:
// expired that long ago).
func (k tokenKeys) mint(t testing.TB, apps []string, rights []auth.Right, ttl time.Duration) string {
	t.Helper()
	token, err := auth.Mint(k.private, auth.Claims{KeyID: testTokenKeyID, Apps: apps, Rights: rights,
		Expires: time.Now().Add(ttl).Unix(), Subject: "tester"})
	if err != nil {
		t.Fatal(err)
	}
	return token
}

// startTokenServer starts a server with AuthToken and the keys' verifier.
func startTokenServer(t testing.TB, keys tokenKeys) *Server {
	t.Helper()
	return startServer(t, Config{Auth: AuthToken, AuthVerifier: keys.verifier})
}

// dialWithToken connects as a box-mode client with box ".../k/<token>/".
func dialWithToken(t testing.TB, addr, token, sessionID, viewID string) *client {
	t.Helper()
	c := dialPath(t, addr, "/k/"+token+"/reflector/"+sessionID)
	c.sessionID, c.viewID = sessionID, viewID
	return c
}

func (s *Server) hasSession(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id] != nil
}

func TestTokenLetsClientsJoin(t *testing.T) {
	keys := newTokenKeys(t, 1)
	server := startTokenServer(t, keys)
	sessionID := newSessionID(t)
	a := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), sessionID, "viewA")
	a.join()
	// An app prefix, and a static token, do as well.
	b := dialWithToken(t, server.Addr(), keys.mint(t, []string{"io.metronome.*"}, []auth.Right{auth.RightJoin}, time.Hour), sessionID, "viewB")
	b.join()
	c := dialWithToken(t, server.Addr(), testStaticToken, sessionID, "viewC")
	c.join()
	a.sendMessage("hello")
	for _, member := range []*client{a, b, c} {
		member.awaitPayload("hello")
	}
	if refused := server.metrics.authRefusedUpgrades.Load() + server.metrics.authRefusedJoins.Load(); refused != 0 {
		t.Errorf("%d refusals counted, want none", refused)
	}
}

// TestTokenRefusesUpgrades: every upgrade without a valid token with the
// join right is accepted and closed with 4103 and a reason saying why, so
// that the client stops instead of reconnecting; no session is created.
func TestTokenRefusesUpgrades(t *testing.T) {
	keys := newTokenKeys(t, 1)
	other := newTokenKeys(t, 2)
	server := startTokenServer(t, keys)
	for _, tc := range []struct {
		name, prefix, reason string
	}{
		{"no token", "", "not authorized: no token in the URL"},
		{"empty token", "/k/", "not authorized: no token"},
		{"unknown static", "/k/just-some-words-of-text", "not one of the server's static tokens"},
		{"malformed", "/k/mt1.abc", "malformed token"},
		{"expired", "/k/" + keys.mint(t, []string{testAppID}, auth.AllRights, -time.Minute), "not authorized: token expired at 20"},
		{"other key", "/k/" + other.mint(t, []string{testAppID}, auth.AllRights, time.Hour), "bad signature"},
		{"no join right", "/k/" + keys.mint(t, []string{testAppID}, []auth.Right{auth.RightUpload, auth.RightRead}, time.Hour), "does not grant the join right (it grants upload, read)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sessionID := newSessionID(t)
			c := dialPath(t, server.Addr(), tc.prefix+"/reflector/"+sessionID)
			c.sessionID = sessionID
			c.expectClose(closeNotAuthorized, tc.reason)
			if server.hasSession(sessionID) {
				t.Errorf("a refused connection created session %s", sessionID)
			}
		})
	}
	if refused := server.metrics.authRefusedUpgrades.Load(); refused != 7 {
		t.Errorf("metronome_auth_refused_total{what=\"upgrade\"} = %d, want 7", refused)
	}
}

// TestTokenRefusesJoinOfAnotherApp: a valid token for other apps opens the
// socket, but its JOIN is closed with 4103 naming the app, and never
// reaches the session: a later member sees only itself.
func TestTokenRefusesJoinOfAnotherApp(t *testing.T) {
	keys := newTokenKeys(t, 1)
	server := startTokenServer(t, keys)
	sessionID := newSessionID(t)
	stranger := dialWithToken(t, server.Addr(), keys.mint(t, []string{"com.other.*"}, auth.AllRights, time.Hour), sessionID, "stranger")
	stranger.sendJSON(map[string]any{"id": sessionID, "action": "JOIN", "args": standardJoinArgs("stranger")})
	stranger.expectClose(closeNotAuthorized, "not authorized: token is not for app "+testAppID, "com.other.*")
	anonymous := dialWithToken(t, server.Addr(), keys.mint(t, []string{"*"}, auth.AllRights, time.Hour), sessionID, "anonymous")
	withoutApp := standardJoinArgs("anonymous")
	delete(withoutApp, "appId")
	anonymous.sendJSON(map[string]any{"id": sessionID, "action": "JOIN", "args": withoutApp})
	anonymous.expectClose(closeNotAuthorized, "not authorized: the JOIN names no appId")

	member := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), sessionID, "member")
	member.join()
	joined := member.awaitJoined("member")
	if users, _ := joined.users(); users.Total != 1 {
		t.Errorf("users message %+v: the refused JOIN reached the session", users)
	}
	if refused := server.metrics.authRefusedJoins.Load(); refused != 2 {
		t.Errorf("refused joins %d, want 2", refused)
	}
}

// TestTokenIsCheckedAgainAtJoin: the JOIN of an open connection is refused
// when the token has expired since the upgrade, or when its key was
// withdrawn (SetAuthVerifier, as a SIGHUP reload does).
func TestTokenIsCheckedAgainAtJoin(t *testing.T) {
	keys := newTokenKeys(t, 1)
	server := startTokenServer(t, keys)

	expires := time.Now().Add(2 * time.Second).Truncate(time.Second)
	shortLived, err := auth.Mint(keys.private, auth.Claims{KeyID: testTokenKeyID, Apps: []string{testAppID}, Rights: auth.AllRights, Expires: expires.Unix()})
	if err != nil {
		t.Fatal(err)
	}
	late := dialWithToken(t, server.Addr(), shortLived, newSessionID(t), "late")
	time.Sleep(time.Until(expires) + 50*time.Millisecond)
	late.sendJSON(map[string]any{"id": late.sessionID, "action": "JOIN", "args": standardJoinArgs("late")})
	late.expectClose(closeNotAuthorized, "token expired at")

	withdrawn := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), newSessionID(t), "withdrawn")
	if err := server.SetAuthVerifier(newTokenKeys(t, 2).verifier); err != nil {
		t.Fatal(err)
	}
	withdrawn.sendJSON(map[string]any{"id": withdrawn.sessionID, "action": "JOIN", "args": standardJoinArgs("withdrawn")})
	withdrawn.expectClose(closeNotAuthorized, "bad signature")
}

// fileRequest sends a request with an optional body and returns the
// status and body.
func fileRequest(t *testing.T, method, url string, body []byte) (int, string) {
	t.Helper()
	request, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: frameTimeout}
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer response.Body.Close()
	data, _ := io.ReadAll(response.Body)
	return response.StatusCode, string(data)
}

// TestTokenFiles: uploads need the upload right, downloads the read right
// and a genuine token whose expiry does not matter (the URL is the
// uploader's, used long after); a path apps/<appId>/ must be for an app of
// the token. Refused uploads store nothing.
func TestTokenFiles(t *testing.T) {
	keys := newTokenKeys(t, 1)
	other := newTokenKeys(t, 2)
	server := startTokenServer(t, keys)
	base := "http://" + server.Addr()
	full := keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour)
	expired := keys.mint(t, []string{testAppID}, auth.AllRights, -24*time.Hour)
	readOnly := keys.mint(t, []string{testAppID}, []auth.Right{auth.RightRead}, time.Hour)
	joinOnly := keys.mint(t, []string{testAppID}, []auth.Right{auth.RightJoin}, time.Hour)
	otherApp := keys.mint(t, []string{"com.other.app"}, auth.AllRights, time.Hour)
	forged := other.mint(t, []string{testAppID}, auth.AllRights, time.Hour)
	url := func(token, path string) string { return base + "/k/" + token + "/files/" + path }
	content := []byte("CRQ1 encrypted snapshot")

	for _, tc := range []struct {
		name, method, url string
		status            int
		body              string
	}{
		{"upload without token", http.MethodPut, base + "/files/" + jsSnapshotPath, 401, "not authorized: no token in the URL"},
		{"upload with a read-only token", http.MethodPut, url(readOnly, jsSnapshotPath), 403, "does not grant the upload right (it grants read)"},
		{"upload with an expired token", http.MethodPut, url(expired, jsSnapshotPath), 401, "not authorized: token expired at"},
		{"upload with a forged token", http.MethodPut, url(forged, jsSnapshotPath), 401, "bad signature"},
		{"upload for another app", http.MethodPut, url(otherApp, dataPath), 403, "token is not for app " + testAppID},
		{"upload", http.MethodPut, url(full, jsSnapshotPath), 201, ""},
		{"upload of app data", http.MethodPut, url(full, dataPath), 201, ""},
		{"download without token", http.MethodGet, base + "/files/" + jsSnapshotPath, 401, "no token"},
		{"download with a join-only token", http.MethodGet, url(joinOnly, jsSnapshotPath), 403, "does not grant the read right"},
		{"download with a forged token", http.MethodGet, url(forged, jsSnapshotPath), 401, "bad signature"},
		{"download of another app's data", http.MethodGet, url(otherApp, dataPath), 403, "not for app"},
		{"download", http.MethodGet, url(full, jsSnapshotPath), 200, string(content)},
		{"download with the uploader's expired token", http.MethodGet, url(expired, jsSnapshotPath), 200, string(content)},
		{"HEAD with a read-only token", http.MethodHead, url(readOnly, jsSnapshotPath), 200, ""},
		{"preflight without token", http.MethodOptions, base + "/files/" + jsSnapshotPath, 204, ""},
	} {
		status, body := fileRequest(t, tc.method, tc.url, content)
		if status != tc.status || !strings.Contains(body, tc.body) {
			t.Errorf("%s: %d %q, want %d with %q", tc.name, status, body, tc.status, tc.body)
		}
	}
	if refused := server.metrics.authRefusedFiles.Load(); refused != 9 {
		t.Errorf("refused file requests %d, want 9", refused)
	}
	// A refused upload stored nothing.
	refusedPath := "apps/" + testAppID + "/p/save/" + hash43("refused")
	if status, _ := fileRequest(t, http.MethodPut, url(readOnly, refusedPath), content); status != 403 {
		t.Fatalf("upload with a read-only token: %d", status)
	}
	if status, _ := fileRequest(t, http.MethodGet, url(full, refusedPath), nil); status != 404 {
		t.Errorf("a refused upload was stored: GET answers %d", status)
	}
}

// TestTokenModeEndpoints: /healthz and the web root stay open; /sessions
// and /metrics are not served on the public address, but by
// AdminHandler.
func TestTokenModeEndpoints(t *testing.T) {
	keys := newTokenKeys(t, 1)
	server := startTokenServer(t, keys)
	base := "http://" + server.Addr()
	sessionID := newSessionID(t)
	member := dialWithToken(t, server.Addr(), keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour), sessionID, "member")
	member.join()

	for path, want := range map[string]int{"/healthz": 200, "/": 200, "/sessions": 404, "/metrics": 404} {
		if status, body := fileRequest(t, http.MethodGet, base+path, nil); status != want {
			t.Errorf("GET %s without token: %d %q, want %d", path, status, body, want)
		}
	}
	full := keys.mint(t, []string{"*"}, auth.AllRights, time.Hour)
	if status, body := fileRequest(t, http.MethodGet, base+"/k/"+full+"/sessions", nil); status != 404 || strings.Contains(body, sessionID) {
		t.Errorf("GET /sessions with a token: %d %q; the public address must not list sessions", status, body)
	}
	operator := httptest.NewServer(server.AdminHandler())
	defer operator.Close()
	if status, body := fileRequest(t, http.MethodGet, operator.URL+"/sessions", nil); status != 200 || !strings.Contains(body, sessionID) {
		t.Errorf("operator /sessions: %d %q, want the session listed", status, body)
	}
	if status, body := fileRequest(t, http.MethodGet, operator.URL+"/metrics", nil); status != 200 || !strings.Contains(body, `metronome_auth_refused_total{what="upgrade"} 0`) {
		t.Errorf("operator /metrics: %d, want the auth counters:\n%s", status, body)
	}
}

// TestNoAuthStripsTheTokenPrefix: without access control a client
// configured with a token still works; the prefix is ignored.
func TestNoAuthStripsTheTokenPrefix(t *testing.T) {
	server := startServer(t, Config{})
	c := dialWithToken(t, server.Addr(), "whatever", newSessionID(t), "viewA")
	c.join()
	base := "http://" + server.Addr()
	if status, body := fileRequest(t, http.MethodPut, base+"/k/whatever/files/notes/a", []byte("data")); status != 201 {
		t.Fatalf("PUT under /k/whatever/files/: %d %q", status, body)
	}
	if status, body := fileRequest(t, http.MethodGet, base+"/files/notes/a", nil); status != 200 || body != "data" {
		t.Errorf("GET /files/notes/a: %d %q, want the file stored through the prefix", status, body)
	}
	if status, _ := fileRequest(t, http.MethodGet, base+"/sessions", nil); status != 404 {
		t.Errorf("/sessions with AuthNone: %d, want 404 (served by the admin listener only)", status)
	}
}

func TestSplitToken(t *testing.T) {
	for _, tc := range []struct {
		path, token, rest string
		found             bool
	}{
		{"/reflector/s", "", "/reflector/s", false},
		{"/k/abc/reflector/s", "abc", "/reflector/s", true},
		{"/k/abc/files/a/b", "abc", "/files/a/b", true},
		{"/k/abc", "abc", "/", true},
		{"/k//files/x", "", "/files/x", true},
		{"/kk/abc/files/x", "", "/kk/abc/files/x", false},
	} {
		token, rest, found := splitToken(tc.path)
		if token != tc.token || rest != tc.rest || found != tc.found {
			t.Errorf("splitToken(%q) = %q, %q, %v; want %q, %q, %v", tc.path, token, rest, found, tc.token, tc.rest, tc.found)
		}
	}
}

func TestAuthConfig(t *testing.T) {
	verifier := newTokenKeys(t, 1).verifier
	for _, tc := range []struct {
		name   string
		config Config
		error  string
	}{
		{"none on loopback", Config{Addr: "127.0.0.1:0"}, ""},
		{"none on localhost", Config{Addr: "localhost:8888"}, ""},
		{"none on ::1", Config{Addr: "[::1]:8888"}, ""},
		{"none on all interfaces", Config{Addr: ":8888"}, "Addr :8888 is not a loopback address and Auth is AuthNone"},
		{"none on 0.0.0.0", Config{Addr: "0.0.0.0:8888"}, "not a loopback address"},
		{"none on a host name", Config{Addr: "example.com:8888"}, "not a loopback address"},
		{"none, insecure", Config{Addr: "0.0.0.0:8888", InsecureNoAuth: true}, ""},
		{"none with a verifier", Config{Addr: "127.0.0.1:0", AuthVerifier: verifier}, "AuthVerifier is set but Auth is AuthNone"},
		{"token", Config{Addr: "0.0.0.0:8888", Auth: AuthToken, AuthVerifier: verifier}, ""},
		{"token without verifier", Config{Addr: "0.0.0.0:8888", Auth: AuthToken}, "AuthVerifier is nil"},
		{"token and insecure", Config{Addr: "0.0.0.0:8888", Auth: AuthToken, AuthVerifier: verifier, InsecureNoAuth: true}, "InsecureNoAuth goes with AuthNone only"},
		{"unknown mode", Config{Addr: "127.0.0.1:0", Auth: 7}, "Auth must be AuthNone or AuthToken, got AuthMode(7)"},
	} {
		tc.config.Store = memstore.New()
		tc.config.fillDefaults()
		err := tc.config.Validate()
		if (tc.error == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.error)) {
			t.Errorf("%s: Validate() = %v, want %q", tc.name, err, tc.error)
		}
	}
	plain := startServer(t, Config{})
	if err := plain.SetAuthVerifier(verifier); err == nil {
		t.Errorf("SetAuthVerifier on an AuthNone server succeeded")
	}
	for name, want := range map[string]AuthMode{"none": AuthNone, "token": AuthToken} {
		if mode, err := ParseAuthMode(name); err != nil || mode != want || mode.String() != name {
			t.Errorf("ParseAuthMode(%q) = %v, %v", name, mode, err)
		}
	}
	if _, err := ParseAuthMode("password"); err == nil {
		t.Errorf("ParseAuthMode accepted password")
	}
}

func TestRedactTokens(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "",
		"no token here":                "no token here",
		"http://h/k/mt1.a.b/files/x":   "http://h/k/<token>/files/x",
		"/k/abc":                       "/k/<token>",
		"/k//files/x":                  "/k//files/x",
		"a /k/s1/x and /k/s2/y, twice": "a /k/<token>/x and /k/<token>/y, twice",
		`url "http://h/k/secret"`:      `url "http://h/k/<token>"`,
	} {
		if got := redactTokens(in); got != want {
			t.Errorf("redactTokens(%q) = %q, want %q", in, got, want)
		}
	}
}

// lockedBuffer is a log destination that tests read while servers write.
type lockedBuffer struct {
	mu     sync.Mutex
	buffer bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buffer.String()
}

// TestLogsNeverHoldTokens: a snapshot URL carries its uploader's token,
// and the session logs it; the log shows "<token>" instead, also in
// attributes and errors.
func TestLogsNeverHoldTokens(t *testing.T) {
	keys := newTokenKeys(t, 1)
	var logs lockedBuffer
	server := startServer(t, Config{Auth: AuthToken, AuthVerifier: keys.verifier,
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	token := keys.mint(t, []string{testAppID}, auth.AllRights, time.Hour)
	c := dialWithToken(t, server.Addr(), token, newSessionID(t), "viewA")
	c.join()
	c.sendMessage("before the snapshot")
	message := c.awaitPayload("before the snapshot")
	url := "http://" + server.Addr() + "/k/" + token + "/files/snapshots/" + c.sessionID + "/snap"
	c.sendJSON(map[string]any{"action": "SNAP", "args": map[string]any{"time": message.Time, "seq": message.Seq, "hash": "h", "url": url}})
	fileRequest(t, http.MethodPut, "http://"+server.Addr()+"/k/"+token+"-forged/files/x", []byte("x"))
	server.logger.Info("attributes", "url", url, "err", errors.New(url), slog.Group("g", "url", url))
	deadline := time.Now().Add(frameTimeout)
	for !strings.Contains(logs.String(), "snapshot at time") {
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot was never logged:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	text := logs.String()
	if strings.Contains(text, token) || strings.Contains(text, token[:40]) {
		t.Errorf("the log holds the token:\n%s", text)
	}
	if !strings.Contains(text, "/k/<token>/files/snapshots/") {
		t.Errorf("the log does not show the redacted snapshot URL:\n%s", text)
	}
}
