package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// The file server of Croquet-in-a-Box (docs/protocol.md §12.2): PUT stores
// a file, GET reads it. Files named by their content's hash are written
// once (files_writeonce.go); CORS follows Config.AllowedOrigins
// (files_origins.go). Uploads are other people's bytes: they are only ever
// served as application/octet-stream, never as a page a browser would
// render or run (setFileSafetyHeaders). With AuthToken a PUT, GET or HEAD
// needs a token with the right (auth.go).
func (s *Server) serveFiles(w http.ResponseWriter, r *http.Request, token pathToken) {
	header := w.Header()
	setFileSafetyHeaders(header)
	origin := r.Header.Get("Origin")
	originAllowed := s.origins.writeFilesCORS(header, origin)
	if !originAllowed && r.Method != http.MethodGet && r.Method != http.MethodHead {
		// A GET is answered without CORS headers (the browser hides it
		// from the page); a PUT or its preflight is refused outright.
		s.logger.Info("file request refused: origin not allowed", "origin", origin, "method", r.Method, "remote", s.remoteAddr(r))
		writeText(w, http.StatusForbidden, fmt.Sprintf("origin %q may not upload here: it is not in the server's allowed origins (--allowed-origins)", origin))
		return
	}
	path := strings.TrimPrefix(strings.TrimPrefix(r.URL.Path, "/files"), "/")
	if r.Method == http.MethodOptions {
		header.Set("Access-Control-Max-Age", "1728000")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if s.config.Auth == AuthToken && !s.authorizeFile(w, r, token, path) {
		return
	}
	if err := store.ValidatePath(path); err != nil {
		http.Error(w, "bad file path: "+err.Error(), http.StatusBadRequest)
		return
	}
	// Bound the transfer (FileTransferTimeout): the body's reads for a PUT,
	// the response's writes for a GET.
	transfer := fileTransfer{deadline: time.Now().Add(s.config.FileTransferTimeout), controller: http.NewResponseController(w)}
	_ = transfer.controller.SetReadDeadline(transfer.deadline)
	_ = transfer.controller.SetWriteDeadline(transfer.deadline)
	switch r.Method {
	case http.MethodPut:
		s.putFile(w, r, path, transfer)
	case http.MethodGet, http.MethodHead:
		s.getFile(w, r, path)
	default:
		header.Set("Allow", "GET, HEAD, PUT, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// setFileSafetyHeaders makes every /files/ answer inert in a browser: no
// MIME sniffing (so bytes served as application/octet-stream are never
// taken for HTML or script), and a sandbox without any allowed source in
// case a browser renders one anyway (no script runs, nothing loads, the
// document gets an origin of its own).
func setFileSafetyHeaders(header http.Header) {
	header.Set("X-Content-Type-Options", "nosniff")
	header.Set("Content-Security-Policy", "default-src 'none'; sandbox")
}

// fileTransfer is the deadline of one request's transfer
// (FileTransferTimeout) and the controller that set it.
type fileTransfer struct {
	deadline   time.Time
	controller *http.ResponseController
}

func (s *Server) putFile(w http.ResponseWriter, r *http.Request, path string, transfer fileTransfer) {
	if r.ContentLength > s.config.FileBytesMax {
		http.Error(w, fmt.Sprintf("file of %d bytes exceeds the limit of %d bytes (FileBytesMax)", r.ContentLength, s.config.FileBytesMax),
			http.StatusRequestEntityTooLarge)
		return
	}
	if s.refuseUploadForSpace(w, r) {
		return
	}
	// PUTs of one path take turns: a write-once path is compared with
	// what the previous one stored (files_writeonce.go), and the quotas
	// count the file each replaces (files_quota.go).
	unlock, locked := s.lockPath(w, r, path, transfer)
	if !locked {
		return
	}
	defer unlock()
	if rule := fileRuleFor(path); rule != fileReplaceable {
		s.putOnce(w, r, path, rule, transfer)
		return
	}
	s.storeFile(w, r, path, transfer)
}

// lockPath waits for the path's lock (fileLocks) until the transfer's
// deadline; it answers 408 if it did not get it.
func (s *Server) lockPath(w http.ResponseWriter, r *http.Request, path string, transfer fileTransfer) (unlock func(), locked bool) {
	ctx, cancel := context.WithDeadline(r.Context(), transfer.deadline)
	defer cancel()
	unlock, err := s.fileLocks.lock(ctx, path)
	if err == nil {
		return unlock, true
	}
	if r.Context().Err() == nil { // else the client went away
		s.logger.Info("upload waited too long for another upload of the same path", "path", path, "remote", s.remoteAddr(r), "err", err)
		writeText(w, http.StatusRequestTimeout, fmt.Sprintf("another upload of %s did not finish within %s (FileTransferTimeout)", path, s.config.FileTransferTimeout))
	}
	return nil, false
}

// freeSpace is implemented by stores that know their free disk space.
type freeSpace interface {
	FreeBytes() (int64, error)
}

// refuseUploadForSpace answers 507 when an upload of this request's size
// would leave less than FilesDiskReserveBytes free, and reports whether it
// did.
func (s *Server) refuseUploadForSpace(w http.ResponseWriter, r *http.Request) bool {
	space, ok := s.store.(freeSpace)
	if !ok || s.config.FilesDiskReserveBytes < 0 {
		return false
	}
	free, err := space.FreeBytes()
	if err != nil {
		return false
	}
	size := max(r.ContentLength, 0)
	if free-size >= s.config.FilesDiskReserveBytes {
		return false
	}
	s.metrics.countUploadRefused("--files-disk-reserve")
	s.logger.Warn("upload refused: the disk is nearly full", "remote", s.remoteAddr(r),
		"free_bytes", free, "upload_bytes", size, "reserve_bytes", s.config.FilesDiskReserveBytes)
	http.Error(w, fmt.Sprintf("the server's disk is nearly full: %d bytes free, %d kept for sessions (FilesDiskReserveBytes)",
		free, s.config.FilesDiskReserveBytes), http.StatusInsufficientStorage)
	return true
}

// storeFile stores the body at path, replacing what was there: 201. The
// caller holds the path's lock.
func (s *Server) storeFile(w http.ResponseWriter, r *http.Request, path string, transfer fileTransfer) {
	admission, exceeded, err := s.admitUpload(r.Context(), path, r.ContentLength)
	if err != nil {
		s.logger.Error("reading file failed", "path", path, "err", err)
		http.Error(w, "reading the stored file failed", http.StatusInternalServerError)
		return
	}
	if exceeded != nil {
		s.refuseForQuota(w, r, path, exceeded, r.ContentLength)
		return
	}
	defer admission.finish()
	body := &countingReader{reader: r.Body}
	err = s.store.PutFile(r.Context(), path, body, admission.maxBytes)
	switch {
	case errors.Is(err, store.ErrTooLarge) && admission.bound != nil:
		s.refuseForQuota(w, r, path, admission.bound, -1)
	case errors.Is(err, store.ErrTooLarge):
		http.Error(w, fmt.Sprintf("file exceeds the limit of %d bytes (FileBytesMax)", s.config.FileBytesMax), http.StatusRequestEntityTooLarge)
	case errors.Is(err, store.ErrBadPath):
		http.Error(w, "bad file path: "+err.Error(), http.StatusBadRequest)
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.uploadFailed(w, r, path, err, transfer)
	case errors.Is(err, syscall.ENOSPC):
		s.logger.Error("storing file failed: the disk is full", "path", path, "err", err)
		http.Error(w, "the server's disk is full", http.StatusInsufficientStorage)
	case err != nil:
		s.logger.Error("storing file failed", "path", path, "err", err)
		http.Error(w, "storing the file failed", http.StatusInternalServerError)
	default:
		admission.stored(body.read)
		s.metrics.filesPut.Add(1)
		w.WriteHeader(http.StatusCreated)
	}
}

// uploadFailed answers an upload whose body could not be read: 408 when
// it was too slow, 400 otherwise (the client went away, a broken chunk).
func (s *Server) uploadFailed(w http.ResponseWriter, r *http.Request, path string, err error, transfer fileTransfer) {
	if errors.Is(err, os.ErrDeadlineExceeded) {
		s.logger.Info("upload too slow: cut off", "path", path, "remote", s.remoteAddr(r), "timeout", s.config.FileTransferTimeout)
		_ = transfer.controller.SetWriteDeadline(time.Now().Add(time.Second))
		http.Error(w, fmt.Sprintf("upload not complete within %s (FileTransferTimeout)", s.config.FileTransferTimeout), http.StatusRequestTimeout)
		return
	}
	s.logger.Info("reading an upload failed", "path", path, "remote", s.remoteAddr(r), "err", err)
	http.Error(w, "reading the upload failed", http.StatusBadRequest)
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, path string) {
	body, size, err := s.store.OpenFile(r.Context(), path)
	switch {
	case errors.Is(err, store.ErrNotFound):
		http.Error(w, "no such file", http.StatusNotFound)
		return
	case err != nil:
		// Most often passing (a disk error the store retries, a JetStream
		// election in cluster mode): the client may try again.
		s.logger.Error("reading file failed", "path", path, "err", err)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "reading the file failed, retry", http.StatusServiceUnavailable)
		return
	}
	defer body.Close()
	header := w.Header()
	// Always opaque bytes, whatever the name or the uploader said: the
	// clients read snapshots and data as an ArrayBuffer and need no type.
	header.Set("Content-Type", "application/octet-stream")
	header.Set("Content-Disposition", "attachment")
	header.Set("Content-Length", strconv.FormatInt(size, 10))
	header.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		s.metrics.filesGot.Add(1)
		io.Copy(w, body)
	}
}

// writeText answers with a line of plain text.
func writeText(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(status)
	io.WriteString(w, message+"\n")
}
