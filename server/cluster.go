package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// # Cluster mode
//
// With Config.Cluster set, the server is one node of a cluster (package
// cluster, docs/cluster.md) and every session is stamped by exactly one
// node at a time, its owner. The server asks its Cluster two things:
//
//   - before it upgrades a WebSocket for a session it does not hold,
//     whether another node owns it (Forward): then the upgrade is passed
//     on to that node as it came (a reverse proxy: the owner checks the
//     token, stamps and writes; this node copies bytes both ways);
//   - before a session actor loads a session, to make this node its owner
//     (Acquire): the actor then stamps until it ends (and releases the
//     session) or until the ownership is lost (Lost), when the host
//     relinquishes the session: nothing more is stored or sent, and every
//     client is asked to reconnect, to be served by the next owner.
//
// Ownership is advisory: what keeps a deposed owner from storing anything
// is the store's fencing (store.ErrFenced from Commit), which ends the
// session the same way.

// Cluster is the server's view of its cluster node (package cluster).
type Cluster interface {
	// Forward returns the base URL ("http://host:port") of the node that
	// owns the session, if another node does; "" if this node should
	// serve it (nobody owns it, or this node does).
	Forward(ctx context.Context, sessionID string) (string, error)
	// Acquire makes this node the session's owner. It fails if another
	// node owns it (the session's clients are then asked to reconnect,
	// and are forwarded).
	Acquire(ctx context.Context, sessionID string) (Ownership, error)
	// ForwardWait is how long an upgrade for a session whose owner cannot
	// be reached is held while the owner's lease runs out (then this node
	// serves it); after that the client gets 503.
	ForwardWait() time.Duration
	// WriteMetrics appends the node's metrics in the Prometheus text
	// format to /metrics.
	WriteMetrics(w io.Writer)
}

// Ownership is this node's ownership of one session.
type Ownership interface {
	// Lost is closed when the node must stop stamping the session (its
	// lease could not be renewed in time, or another node took it).
	Lost() <-chan struct{}
	// Err says why Lost was closed.
	Err() error
	// Release gives the session up (it ended here) so that another node
	// may claim it at once. It does not block.
	Release()
}

// forwardRetryInterval is how often a held upgrade asks again who owns its
// session while the owner cannot be reached.
const forwardRetryInterval = 100 * time.Millisecond

// forwardDialTimeout bounds the connection to the owner of a forwarded
// upgrade.
const forwardDialTimeout = 2 * time.Second

// forwardedHeader marks an upgrade one node forwarded to another.
const forwardedHeader = "Metronome-Forwarded"

// errOwnerUnreachable is what a forward attempt returns when the owner's
// address cannot be reached: nothing was written to the client yet.
var errOwnerUnreachable = errors.New("owner unreachable")

// forwardUpgrade passes an upgrade on to the session's owner if another
// node owns it, and reports whether it did (answered the request). While
// the owner cannot be reached (it died: its lease runs out within
// ForwardWait) the request is held and asked again; once nobody else owns
// the session, this node serves it (false).
func (s *Server) forwardUpgrade(w http.ResponseWriter, r *http.Request, sessionID string) bool {
	cluster := s.config.Cluster
	if cluster == nil || s.holdsSession(sessionID) {
		return false
	}
	if r.Header.Get(forwardedHeader) != "" {
		// Forwarded here by another node: serve it or refuse it, never
		// forward it again (two nodes reading ownership at different
		// moments would otherwise pass it back and forth).
		ctx, cancel := context.WithTimeout(r.Context(), acquireTimeout)
		err := s.claimSession(ctx, sessionID)
		cancel()
		if err == nil {
			return false
		}
		s.metrics.forwardsFailed.Add(1)
		w.Header().Set("Retry-After", "1")
		http.Error(w, "session owner changed, retry: "+err.Error(), http.StatusServiceUnavailable)
		return true
	}
	deadline := time.Now().Add(cluster.ForwardWait())
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(r.Context(), forwardDialTimeout)
		owner, err := cluster.Forward(ctx, sessionID)
		cancel()
		switch {
		case err != nil:
			lastErr = fmt.Errorf("looking up the session's owner: %w", err)
		case owner == "":
			// Nobody owns it: claim it now, before the upgrade, so that of
			// several nodes reached at once by the session's clients (a new
			// session, a failover) one wins and the others forward to it,
			// instead of accepting clients only to send them away.
			ctx, cancel := context.WithTimeout(r.Context(), acquireTimeout)
			err := s.claimSession(ctx, sessionID)
			cancel()
			if err == nil {
				return false
			}
			lastErr = fmt.Errorf("claiming the session: %w", err)
		default:
			err = s.proxyUpgrade(w, r, owner)
			if !errors.Is(err, errOwnerUnreachable) {
				return true
			}
			lastErr = err
		}
		if time.Now().After(deadline) || r.Context().Err() != nil {
			s.metrics.forwardsFailed.Add(1)
			s.logger.Warn("websocket upgrade refused: the session's owner cannot be reached", "session", sessionID, "err", lastErr)
			w.Header().Set("Retry-After", "1")
			http.Error(w, "session owner unavailable, retry: "+lastErr.Error(), http.StatusServiceUnavailable)
			return true
		}
		time.Sleep(forwardRetryInterval)
	}
}

// holdsSession reports whether the session has an actor here, or this
// node owns it (claimed for an upgrade whose actor is about to start).
func (s *Server) holdsSession(sessionID string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sessionID] != nil || s.ownerships[sessionID] != nil
}

// claimSession makes this node the session's owner unless it is already;
// the ownership waits in s.ownerships for the session's actor (takeOwnership).
// Claims of one session on this node take turns.
func (s *Server) claimSession(ctx context.Context, sessionID string) error {
	unlock := s.claiming.lock(sessionID)
	defer unlock()
	if s.holdsSession(sessionID) {
		return nil
	}
	ownership, err := s.config.Cluster.Acquire(ctx, sessionID)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.ownerships[sessionID] = ownership
	s.mu.Unlock()
	return nil
}

// takeOwnership returns the ownership an actor starting for the session
// runs with: the one claimed for its first upgrade, or a new claim.
func (s *Server) takeOwnership(ctx context.Context, sessionID string) (Ownership, error) {
	unlock := s.claiming.lock(sessionID)
	defer unlock()
	s.mu.Lock()
	ownership := s.ownerships[sessionID]
	s.mu.Unlock()
	if ownership != nil {
		return ownership, nil
	}
	ownership, err := s.config.Cluster.Acquire(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.ownerships[sessionID] = ownership
	s.mu.Unlock()
	return ownership, nil
}

// endOwnership gives up the session's ownership when its actor ends.
func (s *Server) endOwnership(sessionID string, ownership Ownership) {
	s.mu.Lock()
	if s.ownerships[sessionID] == ownership {
		delete(s.ownerships, sessionID)
	}
	s.mu.Unlock()
	ownership.Release()
}

// dropUnusedOwnership gives up an ownership claimed for an upgrade that
// did not lead to an actor (refused, failed), so that it is not renewed
// for nothing.
func (s *Server) dropUnusedOwnership(sessionID string) {
	s.mu.Lock()
	ownership := s.ownerships[sessionID]
	if ownership == nil || s.sessions[sessionID] != nil {
		s.mu.Unlock()
		return
	}
	delete(s.ownerships, sessionID)
	s.mu.Unlock()
	ownership.Release()
}

// keyedLocks are mutexes by key, created on use and dropped when free.
type keyedLocks struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu    sync.Mutex
	users int
}

func (k *keyedLocks) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = make(map[string]*keyedLock)
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.users++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.users--; l.users == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// proxyUpgrade copies the upgrade to owner and the connection's bytes both
// ways until either side closes. It returns errOwnerUnreachable if the
// owner could not be reached (nothing was written to w).
func (s *Server) proxyUpgrade(w http.ResponseWriter, r *http.Request, owner string) error {
	target, err := url.Parse(owner)
	if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
		return fmt.Errorf("%w: bad owner address %q", errOwnerUnreachable, owner)
	}
	var failed atomic.Pointer[error]
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + r.URL.Path
			pr.Out.URL.RawPath = ""
			pr.SetXForwarded()
			pr.Out.Header.Set(forwardedHeader, "1")
		},
		Transport: s.forwardTransport(),
		ModifyResponse: func(*http.Response) error {
			s.metrics.forwardedConnections.Add(1) // the owner answered
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failed.Store(&err)
		},
	}
	s.metrics.forwarding.Add(1)
	defer s.metrics.forwarding.Add(-1)
	proxy.ServeHTTP(w, r)
	if err := failed.Load(); err != nil {
		return fmt.Errorf("%w: %s: %w", errOwnerUnreachable, owner, *err)
	}
	return nil
}

// forwardTransport is the HTTP transport of forwarded upgrades (one per
// server, created on first use).
func (s *Server) forwardTransport() http.RoundTripper {
	s.forwardOnce.Do(func() {
		s.forwarder = &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: forwardDialTimeout}).DialContext,
			TLSHandshakeTimeout:   forwardDialTimeout,
			ResponseHeaderTimeout: 10 * time.Second,
			MaxIdleConnsPerHost:   -1, // upgraded connections are never reused
			DisableCompression:    true,
		}
	})
	return s.forwarder
}
