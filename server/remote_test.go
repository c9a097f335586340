package server

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
)

func TestRemoteAddrTrustsOnlyConfiguredProxies(t *testing.T) {
	proxies, err := ParseTrustedProxies("10.0.0.0/8, 127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{config: Config{TrustedProxies: proxies}}
	for _, tc := range []struct {
		peer, forwarded, want string
	}{
		{"203.0.113.7:5000", "198.51.100.1", "203.0.113.7:5000"},     // a stranger's header is ignored
		{"127.0.0.1:5000", "198.51.100.1", "198.51.100.1"},           // from the proxy: believed
		{"127.0.0.1:5000", "6.6.6.6, 198.51.100.1", "198.51.100.1"},  // the client's own claim (leftmost) is not
		{"127.0.0.1:5000", "198.51.100.1, 10.1.2.3", "198.51.100.1"}, // a chain of trusted proxies is walked
		{"127.0.0.1:5000", "not-an-address", "127.0.0.1:5000"},       // a malformed header: none of it
		{"127.0.0.1:5000", "", "127.0.0.1:5000"},                     // no header
		{"[::ffff:10.0.0.1]:5000", "198.51.100.9", "198.51.100.9"},   // IPv4-mapped peer
		{"[2001:db8::1]:5000", "198.51.100.1", "[2001:db8::1]:5000"}, // untrusted IPv6 peer
	} {
		r := &http.Request{RemoteAddr: tc.peer, Header: http.Header{}}
		if tc.forwarded != "" {
			r.Header.Set("X-Forwarded-For", tc.forwarded)
		}
		if got := s.remoteAddr(r); got != tc.want {
			t.Errorf("peer %s, X-Forwarded-For %q: %q, want %q", tc.peer, tc.forwarded, got, tc.want)
		}
	}
	if _, err := ParseTrustedProxies("10.0.0.0/8,bogus"); err == nil {
		t.Error("a bad entry was accepted")
	}
}

// TestWebRootIsNotListed: a directory without index.html is 404, not a
// listing of its files; one with index.html serves it.
func TestWebRootIsNotListed(t *testing.T) {
	root := t.TempDir()
	for name, content := range map[string]string{"secret/notes.txt": "x", "app/index.html": "<p>app</p>", "index.html": "<p>root</p>"} {
		path := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	server := startServer(t, Config{WebRoot: root})
	for path, want := range map[string]int{"/secret/": 404, "/secret": 404, "/secret/notes.txt": 200, "/app/": 200, "/": 200} {
		response, body := httpGet(t, "http://"+server.Addr()+path)
		if response.StatusCode != want {
			t.Errorf("GET %s: %d %q, want %d", path, response.StatusCode, body, want)
		}
	}
}
