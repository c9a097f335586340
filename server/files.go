package server

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// The file server of Croquet-in-a-Box (docs/protocol.md §12.2): PUT creates or replaces
// a file, GET reads it; CORS is open so browser apps on other origins work.
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request) {
	header := w.Header()
	header.Set("Access-Control-Allow-Origin", "*")
	header.Set("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
	header.Set("Access-Control-Allow-Headers", "Content-Type, Cache-Control, Range, X-Croquet-App, X-Croquet-Id, X-Croquet-Session, X-Croquet-Version, X-Croquet-Path")
	header.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range")

	path := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/files"), "/")
	if r.Method == http.MethodOptions {
		header.Set("Access-Control-Max-Age", "1728000")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := store.ValidatePath(path); err != nil {
		http.Error(w, "bad file path: "+err.Error(), http.StatusBadRequest)
		return
	}
	ctx := r.Context()
	// Bound the transfer (FileTransferTimeout): the body's reads for a PUT,
	// the response's writes for a GET.
	deadline := time.Now().Add(s.config.FileTransferTimeout)
	controller := http.NewResponseController(w)
	_ = controller.SetReadDeadline(deadline)
	_ = controller.SetWriteDeadline(deadline)
	switch r.Method {
	case http.MethodPut:
		if r.ContentLength > s.config.FileBytesMax {
			http.Error(w, fmt.Sprintf("file of %d bytes exceeds the limit of %d bytes (FileBytesMax)", r.ContentLength, s.config.FileBytesMax),
				http.StatusRequestEntityTooLarge)
			return
		}
		err := s.store.PutFile(ctx, path, r.Body, s.config.FileBytesMax)
		switch {
		case errors.Is(err, store.ErrTooLarge):
			http.Error(w, fmt.Sprintf("file exceeds the limit of %d bytes (FileBytesMax)", s.config.FileBytesMax), http.StatusRequestEntityTooLarge)
		case errors.Is(err, store.ErrBadPath):
			http.Error(w, "bad file path: "+err.Error(), http.StatusBadRequest)
		case errors.Is(err, os.ErrDeadlineExceeded):
			s.logger.Info("upload too slow: cut off", "path", path, "remote", s.remoteAddr(r), "timeout", s.config.FileTransferTimeout)
			_ = controller.SetWriteDeadline(time.Now().Add(time.Second))
			http.Error(w, fmt.Sprintf("upload not complete within %s (FileTransferTimeout)", s.config.FileTransferTimeout), http.StatusRequestTimeout)
		case err != nil:
			s.logger.Error("storing file failed", "path", path, "err", err)
			http.Error(w, "storing the file failed", http.StatusInternalServerError)
		default:
			s.metrics.filesPut.Add(1)
			w.WriteHeader(http.StatusCreated)
		}
	case http.MethodGet, http.MethodHead:
		body, size, err := s.store.OpenFile(ctx, path)
		switch {
		case errors.Is(err, store.ErrNotFound):
			http.Error(w, "no such file", http.StatusNotFound)
			return
		case err != nil:
			s.logger.Error("reading file failed", "path", path, "err", err)
			http.Error(w, "reading the file failed", http.StatusInternalServerError)
			return
		}
		defer body.Close()
		header.Set("Content-Type", "application/octet-stream")
		header.Set("Content-Length", strconv.FormatInt(size, 10))
		header.Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodGet {
			s.metrics.filesGot.Add(1)
			io.Copy(w, body)
		}
	default:
		header.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}
