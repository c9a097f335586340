package server

import (
	"io"
	"net/http"
	"strconv"
)

// # Storage health
//
// A store that can tell that its storage fails right now (store/diskstore:
// a full disk or an I/O error, from which it retries by itself) makes the
// server say so instead of failing every session one commit at a time:
//
//   - /healthz answers 503 with the reason, so a load balancer or an
//     orchestrator takes the node out, and an operator sees why;
//   - WebSocket upgrades are refused with 503 and Retry-After, so clients
//     back off at the HTTP level instead of joining a session that can
//     only fail (each failed session would close every client with 4003,
//     and they would reconnect at once, in a loop).
//
// Sessions already running fail at their next commit (4003) and their
// clients meet the same refusal when they reconnect. Once the store
// recovers, everything works again without a restart.

// storeHealth is implemented by stores that can report a storage failure
// in progress.
type storeHealth interface {
	// Health returns the storage error that makes commits fail now, or nil.
	Health() error
}

// storageRetryAfterSeconds is the Retry-After of a refused upgrade while
// storage fails.
const storageRetryAfterSeconds = 2

// storageFailure returns the store's current failure, or nil.
func (s *Server) storageFailure() error {
	if health, ok := s.store.(storeHealth); ok {
		return health.Health()
	}
	return nil
}

// serveHealth answers /healthz: 200 "ok", or 503 with the storage failure.
func (s *Server) serveHealth(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := s.storageFailure(); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "unhealthy: storage fails: "+err.Error()+"\n")
		return
	}
	io.WriteString(w, "ok\n")
}

// refuseWhileStorageFails answers a WebSocket upgrade with 503 while the
// store fails, and reports whether it did.
func (s *Server) refuseWhileStorageFails(w http.ResponseWriter) bool {
	err := s.storageFailure()
	if err == nil {
		return false
	}
	s.metrics.upgradesRefusedStorage.Add(1)
	w.Header().Set("Retry-After", strconv.Itoa(storageRetryAfterSeconds))
	http.Error(w, "storage unavailable, retry later: "+err.Error(), http.StatusServiceUnavailable)
	return true
}
