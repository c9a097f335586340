package server

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path"

	"github.com/metronome-sync/metronome/web"
)

// newWebHandler serves dir at "/", or the embedded demo when dir is empty.
// Directories are served only through their index.html: the web root is
// never listed.
// croquetClientPath is where the Croquet client module is served
// (Config.CroquetClient); the embedded demo imports it from there first.
const croquetClientPath = "/croquet.esm.js"

// croquetClientBytesMax bounds the client module read at start (the 2.0.4
// module is about 1 MB).
const croquetClientBytesMax = 16 << 20

// withCroquetClient serves the module at path (read once, at start) at
// croquetClientPath, and everything else with web.
func withCroquetClient(web http.Handler, path string) (http.Handler, error) {
	if path == "" {
		return web, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("croquet client: %w", err)
	}
	if info.Size() > croquetClientBytesMax {
		return nil, fmt.Errorf("croquet client %s: %d bytes, more than %d", path, info.Size(), croquetClientBytesMax)
	}
	module, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("croquet client: %w", err)
	}
	modified := info.ModTime()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != croquetClientPath {
			web.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
		http.ServeContent(w, r, "croquet.esm.js", modified, bytes.NewReader(module))
	}), nil
}

func newWebHandler(dir string) (http.Handler, error) {
	if dir == "" {
		return http.FileServerFS(noListing{web.Demo()}), nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("web root: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("web root %s is not a directory", dir)
	}
	return http.FileServerFS(noListing{os.DirFS(dir)}), nil
}

// noListing hides the directories that have no index.html, so that the
// file server answers 404 instead of listing their files.
type noListing struct{ fs.FS }

func (n noListing) Open(name string) (fs.File, error) {
	file, err := n.FS.Open(name)
	if err != nil {
		return nil, err
	}
	info, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, err
	}
	if info.IsDir() {
		index, err := n.FS.Open(path.Join(name, "index.html"))
		if err != nil {
			file.Close()
			if errors.Is(err, fs.ErrNotExist) {
				return nil, fs.ErrNotExist
			}
			return nil, err
		}
		index.Close()
	}
	return file, nil
}
