// Package server is the I/O shell of Metronome: it accepts WebSocket
// connections, drives one reflector state machine per session, executes
// the machine's effects (storage before sending), serves the file store
// under /files/ and a web root at /, and exposes /healthz and /metrics.
// With AuthToken it lets in only requests whose /k/<token>/ path prefix
// carries a token that allows them (auth.go). It makes no protocol
// decisions: those are all in package reflector.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/host"
	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
)

// Server is a reflector, file server and web server in one.
type Server struct {
	config Config
	logger *slog.Logger
	store  store.Store
	// deletions marks sessions the retention sweep is deleting (guarded by
	// mu; retention.go).
	deletions host.Deletions
	// perIP counts connections per client address (perip.go).
	perIP ipConnections
	// joins limits the JOINs per client address (joinrate.go).
	joins joinLimiter
	// acceptWaitLogged is when (unix ns) the listener last warned that it
	// was full (listenlimit.go).
	acceptWaitLogged atomic.Int64
	// hostStore is the store as session hosts use it (commits timed).
	hostStore host.Store
	start     time.Time

	listener   net.Listener
	httpServer *http.Server
	ready      chan struct{}
	serveErr   chan error
	// redirectListener and redirectServer serve Config.HTTPRedirectAddr
	// (tls.go); nil without it.
	redirectListener net.Listener
	redirectServer   *http.Server

	mu       sync.Mutex
	sessions map[string]*sessionActor
	closing  bool

	nextConn          atomic.Uint64
	actors            sync.WaitGroup
	connections       sync.WaitGroup
	shutdownRequested chan struct{}
	shutdownOnce      sync.Once

	metrics  metrics
	web      http.Handler
	overload *overloadMonitor // nil when CoalesceMax is CoalesceOff
	// Owned by the overload monitor's goroutine (logOverload).
	overloadLogged   time.Time
	overloadEpisodes int

	// origins is Config.AllowedOrigins, for /files/ and WebSocket upgrades.
	origins originPolicy
	// fileLocks lets the uploads of one file, and its deletion, take
	// turns.
	fileLocks fileLocks
	// fileUsage counts the uploaded files' bytes for the quotas and the
	// metrics (files_usage.go); snapshots deletes old snapshots and the
	// files of deleted sessions (snapshotgc.go). Both nil when the store
	// has no file catalog.
	fileUsage *fileUsage
	snapshots *snapshotCollector
	// background counts the goroutines of the sweeps and the snapshot
	// collection, which Shutdown waits for.
	background sync.WaitGroup
	// forwarder is the HTTP transport of upgrades forwarded to the owner
	// of their session in cluster mode (cluster.go).
	forwardOnce sync.Once
	forwarder   *http.Transport
	// ownerships are the sessions this node owns in cluster mode, claimed
	// before the upgrade or by the actor (guarded by mu); claiming makes
	// the claims of one session take turns.
	ownerships map[string]Ownership
	claiming   keyedLocks
	// verifier checks tokens with AuthToken (Config.AuthVerifier, replaced
	// by SetAuthVerifier); nil with AuthNone.
	verifier atomic.Pointer[auth.Verifier]
}

// New creates a server: it validates the config and opens the store. Call
// Start to listen.
func New(config Config) (*Server, error) {
	config.fillDefaults()
	if err := config.Validate(); err != nil {
		return nil, err
	}
	logger := config.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	} else {
		logger = slog.New(redactingHandler{inner: logger.Handler()}) // auth_redact.go
	}
	server := &Server{
		config:            config,
		logger:            logger,
		start:             time.Now(),
		ready:             make(chan struct{}),
		serveErr:          make(chan error, 1),
		sessions:          make(map[string]*sessionActor),
		ownerships:        make(map[string]Ownership),
		shutdownRequested: make(chan struct{}),
	}
	server.store = config.Store
	server.origins = newOriginPolicy(config.AllowedOrigins)
	if config.Auth == AuthToken {
		server.verifier.Store(config.AuthVerifier)
	}
	web, err := newWebHandler(config.WebRoot)
	if err != nil {
		return nil, err
	}
	if web, err = withCroquetClient(web, config.CroquetClient); err != nil {
		return nil, err
	}
	server.web = web
	server.metrics.init()
	server.hostStore = newHostStore(server.store, &server.metrics.commit)
	if catalog, ok := server.store.(store.FileCatalog); ok {
		usage, err := measureFileUsage(context.Background(), catalog)
		if err != nil {
			return nil, fmt.Errorf("measuring the uploaded files: %w", err)
		}
		server.fileUsage = usage
		server.snapshots = newSnapshotCollector(server, catalog)
	}
	return server, nil
}

// Start listens on the configured address and serves in the background.
func (s *Server) Start() error {
	listener, err := net.Listen("tcp", s.config.Addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.config.Addr, err)
	}
	if s.config.OpenConnectionsMax > 0 {
		listener = newLimitListener(listener, s.config.OpenConnectionsMax, s.noteAcceptWait)
	}
	if s.config.TLS != nil {
		listener = tls.NewListener(listener, s.listenerTLSConfig())
	}
	s.listener = listener
	s.httpServer = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelDebug),
	}
	if err := s.startRedirect(); err != nil {
		listener.Close()
		return err
	}
	s.background.Add(1)
	go s.runSweeps(s.shutdownRequested)
	if s.snapshots.collecting() {
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			s.snapshots.run(s.shutdownRequested)
		}()
	}
	// The monitor exists before the first connection can read it.
	if s.config.CoalesceMax != CoalesceOff {
		s.overload = newOverloadMonitor(s.config.CoalesceMax, s.logOverload)
		go s.overload.run(s.shutdownRequested)
	}
	go func() {
		err := s.httpServer.Serve(listener)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr <- err
	}()
	close(s.ready)
	return nil
}

// logOverload reports when the server starts holding frames: at most once
// per overloadLogInterval, with the number of episodes since the last
// report (the delay can go up and down every few samples).
func (s *Server) logOverload(delay, wait time.Duration) {
	if delay == 0 {
		return
	}
	s.overloadEpisodes++
	if now := time.Now(); now.Sub(s.overloadLogged) >= overloadLogInterval {
		s.logger.Warn("server overloaded: goroutines wait for a CPU; sessions hold their frames to batch writes",
			"median_wait", wait, "hold_max", s.config.CoalesceMax, "episodes", s.overloadEpisodes)
		s.overloadLogged, s.overloadEpisodes = now, 0
	}
}

// Timeouts of plain HTTP connections (WebSockets are hijacked and have
// their own: the watchdog, WriteTimeout; file transfers have
// FileTransferTimeout).
const (
	// httpReadHeaderTimeout bounds reading a request's headers.
	httpReadHeaderTimeout = 10 * time.Second
	// httpIdleTimeout closes a keep-alive connection idle this long.
	httpIdleTimeout = 2 * time.Minute
)

// overloadLogInterval spaces the overload warnings.
const overloadLogInterval = 30 * time.Second

// Ready is closed once the server accepts connections.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addr returns the listening address (useful with port 0).
func (s *Server) Addr() string {
	if s.listener == nil {
		return ""
	}
	return s.listener.Addr().String()
}

// Store returns the server's store.
func (s *Server) Store() store.Store { return s.store }

// Shutdown stops accepting connections, persists every session, asks every
// client to reconnect (close 4003) and waits until all is written or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	var result error
	s.shutdownOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		// Sessions first: they persist and ask their clients to reconnect
		// at once, whatever HTTP requests are still running (a slow
		// upload must not keep sessions frozen until the deadline).
		close(s.shutdownRequested)
		if s.httpServer != nil {
			if err := s.httpServer.Shutdown(ctx); err != nil {
				result = err
			}
		}
		if s.redirectServer != nil {
			_ = s.redirectServer.Close() // redirects only: nothing to finish
		}
		if err := waitGroup(ctx, &s.actors); err != nil {
			result = errors.Join(result, fmt.Errorf("sessions did not finish: %w", err))
		}
		if err := waitGroup(ctx, &s.connections); err != nil {
			result = errors.Join(result, fmt.Errorf("connections did not close: %w", err))
		}
		if err := waitGroup(ctx, &s.background); err != nil {
			result = errors.Join(result, fmt.Errorf("sweeps did not finish: %w", err))
		}
		s.logger.Info("metronome stopped")
	})
	return result
}

func waitGroup(ctx context.Context, group *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() {
		group.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// ServeHTTP routes requests: WebSocket upgrades on any path go to the
// reflector (the session id is the last path segment, docs/protocol.md §3.1).
// A /k/<token>/ prefix is removed first, its token kept for the checks of
// AuthToken mode (auth.go).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "metronome")
	original := r
	r, token := withoutToken(r)
	if isWebSocketUpgrade(r) {
		s.serveWebSocket(w, r, original, token)
		return
	}
	switch {
	case r.URL.Path == "/healthz":
		s.serveHealth(w)
	case r.URL.Path == "/metrics":
		s.servePublicMetrics(w, r)
	case isAdminOnlyPath(r.URL.Path):
		s.refuseAdminOnly(w, r) // admin.go
	case r.URL.Path == "/files" || strings.HasPrefix(r.URL.Path, "/files/"):
		s.serveFiles(w, r, token)
	default:
		s.web.ServeHTTP(w, r)
	}
}

func isWebSocketUpgrade(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

// sessionIDFromPath returns the last path segment.
func sessionIDFromPath(path string) string {
	return path[strings.LastIndexByte(path, '/')+1:]
}

// serveWebSocket upgrades r (without its token prefix; original is the
// request as it came, for forwarding in cluster mode).
func (s *Server) serveWebSocket(w http.ResponseWriter, r, original *http.Request, token pathToken) {
	s.mu.Lock()
	closing := s.closing
	s.mu.Unlock()
	if closing {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	if s.refuseWhileStorageFails(w) {
		return
	}
	if origin := r.Header.Get("Origin"); !s.origins.allows(origin) {
		// Browsers name the page in Origin; a page of another site must
		// not use the reflector through its visitors' browsers.
		s.logger.Info("websocket upgrade refused: origin not allowed", "origin", origin, "remote", s.remoteAddr(r))
		http.Error(w, fmt.Sprintf("origin %q may not connect: it is not in the server's allowed origins (--allowed-origins)", origin), http.StatusForbidden)
		return
	}
	if s.refuseNewSession(w, sessionIDFromPath(r.URL.Path)) {
		return
	}
	if int(s.metrics.connections.Load()+s.metrics.forwarding.Load()) >= s.config.ConnectionsMax {
		s.metrics.rejectedConnections.Add(1)
		http.Error(w, fmt.Sprintf("too many connections (ConnectionsMax=%d)", s.config.ConnectionsMax), http.StatusServiceUnavailable)
		return
	}
	remote := s.remoteAddr(r)
	limited, isLimited := s.limitedAddress(remote)
	if isLimited && !s.perIP.acquire(limited, s.config.ConnectionsPerIPMax) {
		s.metrics.rejectedPerIP.Add(1)
		http.Error(w, fmt.Sprintf("too many connections from %s (ConnectionsPerIPMax=%d)", limited, s.config.ConnectionsPerIPMax), http.StatusTooManyRequests)
		return
	}
	releaseAddress := func() {
		if isLimited {
			s.perIP.release(limited)
		}
	}
	if isLimited && !s.takeJoin(limited) {
		releaseAddress()
		reason := s.joinRateRefusal(limited)
		s.logger.Info("websocket upgrade refused: JOIN rate", "remote", remote, "why", reason)
		w.Header().Set("Retry-After", "1")
		http.Error(w, reason, http.StatusTooManyRequests)
		return
	}
	if sessionID := sessionIDFromPath(r.URL.Path); s.config.Cluster != nil && validateSessionID(sessionID) == nil {
		if s.forwardUpgrade(w, original, sessionID) { // cluster.go
			releaseAddress()
			return
		}
		defer s.dropUnusedOwnership(sessionID)
	}
	var verified verifiedToken
	refusal := ""
	if s.config.Auth == AuthToken {
		verified, refusal = s.authorizeUpgrade(r, token)
	}
	upgrader := ws.HTTPUpgrader{Timeout: 10 * time.Second}
	netConn, rw, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		releaseAddress()
		s.logger.Debug("websocket upgrade failed", "remote", r.RemoteAddr, "err", err)
		return
	}
	if !s.countConnection() {
		releaseAddress()
		netConn.Close() // shutting down: the client reconnects later
		return
	}
	id := reflector.ConnID(s.nextConn.Add(1))
	c := newConn(s, id, netConn, rw, remote)
	s.metrics.connections.Add(1)
	s.metrics.connectionsTotal.Add(1)
	c.onFinished = func() {
		releaseAddress()
		s.metrics.connections.Add(-1)
		s.connections.Done()
	}

	if refusal != "" {
		// Accepted and closed at once: a close code from 4100 on stops the
		// client, an HTTP error would have it reconnect in a loop.
		c.close(closeNotAuthorized, refusal)
		go discardUntilClosed(c)
		return
	}
	if s.config.Auth == AuthToken {
		c.token = &verified // its JOINs are checked again, with their appId
	}
	c.joinLimited, c.joinAddress = isLimited && s.joinRateLimited(), limited
	sessionID := sessionIDFromPath(r.URL.Path)
	if err := validateSessionID(sessionID); err != nil {
		c.close(protocol.CloseOutdatedProtocol, "outdated protocol: "+err.Error())
		go discardUntilClosed(c)
		return
	}
	actor, full := s.route(sessionID)
	if actor == nil {
		reason := "session unavailable (the server is shutting down, or the idle session is being deleted), please reconnect"
		if full {
			reason = "please reconnect: " + s.sessionsFullReason()
		}
		c.close(protocol.CloseReconnect, reason)
		go discardUntilClosed(c)
		return
	}
	s.logger.Debug("connection", "session", sessionID, "conn", id, "remote", c.remote, "sub", verified.claims.Subject)
	actor.deliver(actorEvent{event: reflector.Connect{Conn: id}, conn: c})
	c.startReading(actor)
}

// countConnection adds an upgraded connection to those Shutdown waits
// for, unless the server is shutting down (false). It takes s.mu, as
// Shutdown does to set closing before it waits: a connection is either
// counted before the wait begins or not at all (a connection refused
// before it reaches route would otherwise be counted concurrently with
// the wait, which sync.WaitGroup forbids).
func (s *Server) countConnection() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.connections.Add(1)
	return true
}

func validateSessionID(id string) error {
	if id == "" {
		return errors.New("no session id in the URL path")
	}
	if len(id) > protocol.SessionIDBytesMax {
		return fmt.Errorf("session id of %d bytes exceeds %d (SessionIDBytesMax)", len(id), protocol.SessionIDBytesMax)
	}
	return store.ValidateSessionID(id)
}

// route returns the session's actor, creating (and starting) it if needed,
// and counts the connection that is about to be delivered to it. It
// returns nil while shutting down, while the session is being deleted, and
// (full) when a new session would exceed SessionsMax.
func (s *Server) route(sessionID string) (actor *sessionActor, full bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return nil, false
	}
	actor = s.sessions[sessionID]
	if actor == nil && s.deletions.Refuses(sessionID) {
		return nil, false // being deleted (retention.go): the client reconnects
	}
	if actor == nil && s.sessionsFullLocked() {
		s.metrics.rejectedSessionsMax.Add(1)
		return nil, true
	}
	if actor == nil {
		actor = newSessionActor(s, sessionID)
		s.sessions[sessionID] = actor
		s.metrics.sessions.Add(1)
		s.actors.Add(1)
		go actor.run()
	}
	actor.pendingConnects++
	return actor, false
}

// sessionsFullLocked reports whether a new session would exceed
// SessionsMax.
func (s *Server) sessionsFullLocked() bool {
	return s.config.SessionsMax > 0 && len(s.sessions) >= s.config.SessionsMax
}

// refuseNewSession answers an upgrade for a session that is not in memory
// with 503 while SessionsMax sessions are; it reports whether it did.
// Checked before the upgrade so that the refusal costs little; route
// checks again, exactly.
func (s *Server) refuseNewSession(w http.ResponseWriter, sessionID string) bool {
	s.mu.Lock()
	full := s.sessions[sessionID] == nil && s.sessionsFullLocked()
	s.mu.Unlock()
	if !full {
		return false
	}
	s.metrics.rejectedSessionsMax.Add(1)
	w.Header().Set("Retry-After", "5")
	http.Error(w, s.sessionsFullReason(), http.StatusServiceUnavailable)
	return true
}

func (s *Server) sessionsFullReason() string {
	return fmt.Sprintf("too many sessions on this server (SessionsMax=%d)", s.config.SessionsMax)
}

// serveSessions lists the ids of the sessions in memory as plain text,
// sorted, one per line (the admin listener's GET /sessions, admin.go).
func (s *Server) serveSessions(w http.ResponseWriter) {
	s.mu.Lock()
	ids := make([]string, 0, len(s.sessions))
	for id := range s.sessions {
		ids = append(ids, id)
	}
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, id := range sortedStrings(ids) {
		fmt.Fprintln(w, id)
	}
}
