package server

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/store/memstore"
)

// TestCroquetClientServed: with Config.CroquetClient the module is served
// at /croquet.esm.js as JavaScript, next to the demo that imports it from
// there; a missing module is an error at start.
func TestCroquetClientServed(t *testing.T) {
	module := filepath.Join(t.TempDir(), "croquet.esm.js")
	if err := os.WriteFile(module, []byte("export const Model = class {};\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server := startServer(t, Config{CroquetClient: module})
	get := func(path string) (*http.Response, string) {
		t.Helper()
		response, err := http.Get("http://" + server.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer response.Body.Close()
		body, _ := io.ReadAll(response.Body)
		return response, string(body)
	}
	response, body := get("/croquet.esm.js")
	if response.StatusCode != http.StatusOK || !strings.HasPrefix(response.Header.Get("Content-Type"), "text/javascript") || body != "export const Model = class {};\n" {
		t.Errorf("/croquet.esm.js: %d %q %q", response.StatusCode, response.Header.Get("Content-Type"), body)
	}
	if response, body := get("/"); response.StatusCode != http.StatusOK || !strings.Contains(body, `"/croquet.esm.js"`) {
		t.Errorf("the demo does not import the served module first: %d", response.StatusCode)
	}
	if _, err := New(Config{Store: memstore.New(), CroquetClient: filepath.Join(t.TempDir(), "missing.js")}); err == nil || !strings.Contains(err.Error(), "croquet client") {
		t.Errorf("a missing client module: %v, want an error naming it", err)
	}
}
