package server

import (
	"fmt"
	"io/fs"
	"net/http"
	"os"

	"github.com/metronome-sync/metronome/web"
)

// newWebHandler serves dir at "/", or the embedded demo when dir is empty.
func newWebHandler(dir string) (http.Handler, error) {
	if dir == "" {
		return http.FileServerFS(web.Demo()), nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("web root: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("web root %s is not a directory", dir)
	}
	return http.FileServerFS(os.DirFS(dir).(fs.FS)), nil
}
