package server

import (
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
