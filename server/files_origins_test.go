package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/store/memstore"
)

const (
	appOrigin  = "https://app.example.com"
	evilOrigin = "https://evil.example"
)

func TestNormalizeOrigin(t *testing.T) {
	valid := map[string]string{
		"https://app.example.com":       "https://app.example.com",
		"HTTPS://App.Example.COM/":      "https://app.example.com",
		"https://app.example.com:443":   "https://app.example.com",
		"http://localhost:80":           "http://localhost",
		"http://localhost:5173":         "http://localhost:5173",
		"https://app.example.com:8443":  "https://app.example.com:8443",
		"http://127.0.0.1:8888":         "http://127.0.0.1:8888",
		"http://[::1]:8888":             "http://[::1]:8888",
		"app://bundle.local":            "app://bundle.local",
		"chrome-extension://abcdefghij": "chrome-extension://abcdefghij",
	}
	for origin, want := range valid {
		if got, err := normalizeOrigin(origin); err != nil || got != want {
			t.Errorf("normalizeOrigin(%q) = %q, %v; want %q", origin, got, err, want)
		}
	}
	for _, origin := range []string{"", "null", "*", "app.example.com", "https://", "https://app.example.com/path",
		"https://app.example.com?x=1", "https://app.example.com#f", "https://user@app.example.com", "https://app.example.com:port",
		"https://app.example.com/?"} {
		if got, err := normalizeOrigin(origin); err == nil {
			t.Errorf("normalizeOrigin(%q) = %q, want an error", origin, got)
		} else if origin != "" && !strings.Contains(err.Error(), origin) {
			t.Errorf("normalizeOrigin(%q): error %q does not name the value", origin, err)
		}
	}
}

func TestParseAllowedOrigins(t *testing.T) {
	got, err := ParseAllowedOrigins(" https://app.example.com ,http://localhost:5173,")
	if err != nil || !slices.Equal(got, []string{appOrigin, "http://localhost:5173"}) {
		t.Errorf("a list: %q, %v", got, err)
	}
	if got, err := ParseAllowedOrigins("*"); err != nil || !slices.Equal(got, []string{AnyOrigin}) {
		t.Errorf("*: %q, %v; want [*]", got, err)
	}
	for list, want := range map[string]string{
		"":                            "empty",
		" , ":                         "empty",
		"*,https://app.example.com":   "cannot be combined",
		"https://app.example.com,x/y": `entry 2: "x/y"`,
	} {
		if _, err := ParseAllowedOrigins(list); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseAllowedOrigins(%q): error %v, want one containing %q", list, err, want)
		}
	}
	_, err = New(Config{Store: memstore.New(), AllowedOrigins: []string{appOrigin, "https://app.example.com/x"}})
	if err == nil || !strings.Contains(err.Error(), "AllowedOrigins") || !strings.Contains(err.Error(), "https://app.example.com/x") {
		t.Errorf("New with a bad AllowedOrigins entry: %v, want an error naming the field and the value", err)
	}
}

// With every origin allowed (the default) any page may use /files/.
func TestFilesCORSWithAnyOrigin(t *testing.T) {
	server, _ := filesServer(t)
	url := "http://" + server.Addr() + "/files/notes/any.txt"
	for _, method := range []string{http.MethodOptions, http.MethodPut, http.MethodGet} {
		response, body := originRequest(t, method, url, evilOrigin, "content")
		if response.StatusCode/100 != 2 {
			t.Errorf("%s from %s: %d %q, want 2xx", method, evilOrigin, response.StatusCode, body)
		}
		if got := response.Header.Get("Access-Control-Allow-Origin"); got != "*" {
			t.Errorf("%s: Access-Control-Allow-Origin %q, want *", method, got)
		}
		if vary := response.Header.Values("Vary"); slices.Contains(vary, "Origin") {
			t.Errorf("%s: Vary %q, want no Origin (the answer is the same for all)", method, vary)
		}
	}
}

func TestFilesCORSWithAllowedOrigins(t *testing.T) {
	server := startServer(t, Config{AllowedOrigins: []string{appOrigin, "http://localhost:5173"}})
	base := "http://" + server.Addr() + "/files/"

	// An allowed page: its origin is echoed, on every answer.
	for _, method := range []string{http.MethodOptions, http.MethodPut, http.MethodGet} {
		response, body := originRequest(t, method, base+"notes/app.txt", appOrigin, "from the app")
		if response.StatusCode/100 != 2 {
			t.Errorf("%s from %s: %d %q, want 2xx", method, appOrigin, response.StatusCode, body)
		}
		expectCORS(t, method+" from the app", response.Header, appOrigin)
	}

	// Another page may neither upload nor preflight, and reads nothing.
	for _, method := range []string{http.MethodOptions, http.MethodPut} {
		response, body := originRequest(t, method, base+"notes/evil.txt", evilOrigin, "from elsewhere")
		if response.StatusCode != http.StatusForbidden || !strings.Contains(body, evilOrigin) || !strings.Contains(body, "--allowed-origins") {
			t.Errorf("%s from %s: %d %q, want 403 naming the origin and --allowed-origins", method, evilOrigin, response.StatusCode, body)
		}
		expectCORS(t, method+" from elsewhere", response.Header, "")
	}
	if response, _ := originRequest(t, http.MethodGet, base+"notes/evil.txt", "", ""); response.StatusCode != http.StatusNotFound {
		t.Errorf("GET of the refused upload: %d, want 404", response.StatusCode)
	}
	response, body := originRequest(t, http.MethodGet, base+"notes/app.txt", evilOrigin, "")
	if response.StatusCode != http.StatusOK || body != "from the app" {
		t.Errorf("GET from %s: %d %q, want 200 (a browser hides it without CORS headers)", evilOrigin, response.StatusCode, body)
	}
	expectCORS(t, "GET from elsewhere", response.Header, "")

	// Without Origin (native and Node.js clients): served as always.
	response, body = originRequest(t, http.MethodPut, base+"notes/node.txt", "", "from node")
	if response.StatusCode != http.StatusCreated {
		t.Errorf("PUT without Origin: %d %q, want 201", response.StatusCode, body)
	}
	expectCORS(t, "PUT without Origin", response.Header, "")
}

// expectCORS checks that a /files/ answer to a configured origin list
// allows exactly origin ("": none) and varies by Origin.
func expectCORS(t *testing.T, what string, header http.Header, origin string) {
	t.Helper()
	if got := header.Get("Access-Control-Allow-Origin"); got != origin {
		t.Errorf("%s: Access-Control-Allow-Origin %q, want %q", what, got, origin)
	}
	if !slices.Contains(header.Values("Vary"), "Origin") {
		t.Errorf("%s: Vary %q, want Origin", what, header.Values("Vary"))
	}
	methods := header.Get("Access-Control-Allow-Methods")
	if (origin != "") != containsToken(methods, "PUT") {
		t.Errorf("%s: Access-Control-Allow-Methods %q", what, methods)
	}
}

func originRequest(t *testing.T, method, url, origin, body string) (*http.Response, string) {
	t.Helper()
	var reader io.Reader
	if method == http.MethodPut {
		reader = strings.NewReader(body)
	}
	request, err := http.NewRequest(method, url, reader)
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		request.Header.Set("Origin", origin)
	}
	if method == http.MethodOptions {
		request.Header.Set("Access-Control-Request-Method", "PUT")
	}
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer response.Body.Close()
	answer, err := io.ReadAll(response.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response, strings.TrimSpace(string(answer))
}

func TestWebSocketOrigin(t *testing.T) {
	listed := startServer(t, Config{AllowedOrigins: []string{appOrigin}})
	open := startServer(t, Config{})
	for _, test := range []struct {
		name   string
		server *Server
		origin string
		allow  bool
	}{
		{"listed origin", listed, appOrigin, true},
		{"listed origin, other case", listed, "HTTPS://APP.EXAMPLE.COM", true},
		{"no Origin (Node.js, native)", listed, "", true},
		{"other origin", listed, evilOrigin, false},
		{"same host, other port", listed, "https://app.example.com:8443", false},
		{"null origin", listed, "null", false},
		{"any origin allowed", open, evilOrigin, true},
	} {
		t.Run(test.name, func(t *testing.T) {
			c, status, body, err := dialWithOrigin(t, test.server.Addr(), "/reflector/"+newSessionID(t), test.origin)
			if !test.allow {
				if err == nil || status != http.StatusForbidden || !strings.Contains(body, "--allowed-origins") {
					t.Fatalf("upgrade from %q: status %d %q (%v), want 403 naming --allowed-origins", test.origin, status, body, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("upgrade from %q: %v (%d %q)", test.origin, err, status, body)
			}
			c.join() // a SYNC arrives
		})
	}
}

// dialWithOrigin opens a WebSocket as a browser page of origin would ("":
// as Node.js does, without the header). A refused upgrade gives its HTTP
// status and body.
func dialWithOrigin(t *testing.T, addr, path, origin string) (c *client, status int, body string, err error) {
	t.Helper()
	header := http.Header{}
	if origin != "" {
		header.Set("Origin", origin)
	}
	dialer := ws.Dialer{
		Header: ws.HandshakeHeaderHTTP(header),
		OnStatusError: func(code int, _ []byte, answer io.Reader) {
			status = code
			if response, err := http.ReadResponse(bufio.NewReader(answer), nil); err == nil {
				data, _ := io.ReadAll(io.LimitReader(response.Body, 4096))
				body = strings.TrimSpace(string(data))
			}
		},
	}
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	conn, reader, _, err := dialer.Dial(ctx, "ws://"+addr+path)
	if err != nil {
		var statusErr ws.StatusError
		if !errors.As(err, &statusErr) {
			t.Fatalf("dialing ws://%s%s: %v", addr, path, err)
		}
		return nil, status, body, err
	}
	if reader == nil {
		reader = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	sessionID := path[strings.LastIndexByte(path, '/')+1:]
	return &client{t: t, conn: conn, reader: reader, maxTime: -1, sessionID: sessionID, viewID: "view"}, http.StatusSwitchingProtocols, "", nil
}
