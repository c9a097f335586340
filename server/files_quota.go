package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/metronome-sync/metronome/store"
)

// # Upload quotas
//
// Two quotas bound what uploads may store, besides FileBytesMax (one
// file) and FilesDiskReserveBytes (free disk space): FilesSessionBytesMax
// bounds one session's snapshot directory and FilesTotalBytesMax all files
// together. They are checked against fileUsage's counters
// (files_usage.go), not by walking files. An upload over a session's
// quota first has the session's old snapshots collected (snapshotgc.go)
// and is checked again; over a quota it gets 507 naming the flag. An
// upload whose size is not declared (chunked) may store what the quotas
// leave; if its body is larger it gets 507 too. Concurrent uploads of
// undeclared size can together pass a quota by at most one file each.
// Stores without a file catalog (store.FileCatalog) have no quotas.

// uploadAdmission is an upload the quotas let in, for as long as it runs.
type uploadAdmission struct {
	usage *fileUsage
	path  string
	// reserved is the declared size held in usage until finish.
	reserved int64
	// previous is the size of the file the upload replaces (existed).
	previous int64
	existed  bool
	// maxBytes is the most the upload may store: FileBytesMax, or less
	// when a quota (bound) leaves less for an upload of unknown size.
	maxBytes int64
	bound    *quotaExceeded
	done     bool
}

// admitUpload checks an upload of length bytes (-1: unknown) at path
// against the quotas. The caller holds path's lock (fileLocks), so the
// file it replaces cannot change meanwhile.
func (s *Server) admitUpload(ctx context.Context, path string, length int64) (*uploadAdmission, *quotaExceeded, error) {
	admission := &uploadAdmission{usage: s.fileUsage, path: path, maxBytes: s.config.FileBytesMax}
	if s.fileUsage == nil {
		return admission, nil, nil
	}
	info, err := s.snapshots.catalog.StatFile(ctx, path)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return nil, nil, err
	default:
		admission.previous, admission.existed = info.Bytes, true
	}
	declared := max(length, 0)
	exceeded := s.fileUsage.reserve(path, declared, s.config.FilesTotalBytesMax, s.config.FilesSessionBytesMax)
	if exceeded != nil && exceeded.where != "" && s.collectForUpload(ctx, path) {
		exceeded = s.fileUsage.reserve(path, declared, s.config.FilesTotalBytesMax, s.config.FilesSessionBytesMax)
	}
	if exceeded != nil {
		return nil, exceeded, nil
	}
	admission.reserved = declared
	if length < 0 {
		admission.maxBytes, admission.bound = s.fileUsage.room(path, s.config.FileBytesMax, s.config.FilesTotalBytesMax, s.config.FilesSessionBytesMax)
		if admission.bound != nil && admission.bound.where != "" && s.collectForUpload(ctx, path) {
			admission.maxBytes, admission.bound = s.fileUsage.room(path, s.config.FileBytesMax, s.config.FilesTotalBytesMax, s.config.FilesSessionBytesMax)
		}
	}
	return admission, nil, nil
}

// collectForUpload collects the old snapshots of the session whose
// snapshot directory holds path, and reports whether any went.
func (s *Server) collectForUpload(ctx context.Context, path string) bool {
	_, _, session := classifyFile(path)
	return session != "" && s.snapshots.collectSession(ctx, session) > 0
}

// stored counts the upload's file, written bytes long.
func (a *uploadAdmission) stored(written int64) {
	if a.usage == nil || a.done {
		return
	}
	files := int64(1)
	if a.existed {
		files = 0
	}
	a.usage.add(a.path, written-a.previous, files)
	a.finish()
}

// finish gives back the reservation (once).
func (a *uploadAdmission) finish() {
	if a.usage == nil || a.done {
		return
	}
	a.done = true
	a.usage.release(a.path, a.reserved)
}

// refuseForQuota answers 507 for an upload of size bytes (-1: unknown)
// that would pass a quota.
func (s *Server) refuseForQuota(w http.ResponseWriter, r *http.Request, path string, exceeded *quotaExceeded, size int64) {
	s.metrics.countUploadRefused(exceeded.flag)
	upload := fmt.Sprintf("an upload of %d bytes", size)
	if size < 0 {
		upload = "this upload (of undeclared size)"
	}
	holder := "the uploaded files hold"
	if exceeded.where != "" {
		holder = fmt.Sprintf("the session's snapshot directory %s holds", exceeded.where)
	}
	s.logger.Warn("upload refused: quota", "path", path, "remote", s.remoteAddr(r), "limit", exceeded.flag,
		"limit_bytes", exceeded.limit, "used_bytes", exceeded.used, "upload_bytes", size)
	http.Error(w, fmt.Sprintf("%s %d bytes; %s would pass its limit of %d bytes (%s, %s)",
		holder, exceeded.used, upload, exceeded.limit, exceeded.flag, exceeded.field), http.StatusInsufficientStorage)
}

// countingReader counts the bytes read through it.
type countingReader struct {
	reader io.Reader
	read   int64
}

func (c *countingReader) Read(buffer []byte) (int, error) {
	n, err := c.reader.Read(buffer)
	c.read += int64(n)
	return n, err
}
