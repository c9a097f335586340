package server

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/protocol"
)

// # Access control (docs/operations.md, "Access control")
//
// Croquet and Multisynq clients in box mode send no credential of their
// own (their JOIN says apiKey "none"), but they build both of their URLs
// from the box option: with box "https://host/k/<token>/" the reflector is
// wss://host/k/<token>/reflector/<sessionId> and files are under
// https://host/k/<token>/files/. So a token travels as the path prefix
// /k/<token>/, which ServeHTTP strips before routing (in every mode).
//
// With AuthToken:
//
//   - A WebSocket upgrade needs a valid token (auth.Verifier.Verify) with
//     the join right. Otherwise the upgrade is accepted and closed at once
//     with closeNotAuthorized and a reason that says why: a close code from
//     4100 on stops the client, where a refused upgrade (an HTTP error)
//     would make it reconnect again and again.
//   - Every JOIN is checked again, now with its appId: the token must still
//     be valid and allow the app (closeNotAuthorized otherwise; the JOIN
//     never reaches the session).
//   - PUT under /files/ needs a valid token with the upload right; GET and
//     HEAD a genuine one with the read right, whose expiry is not checked:
//     the clients download every snapshot and persisted file through the
//     URL its uploader put into SNAP or SAVE, with the uploader's token in
//     it, for as long as the session or the persisted data lives. A path
//     apps/<appId>/... must be for an app of the token. Refusals are 401
//     (no valid token) or 403 (a valid token without the right or app).
//   - /metrics is not served on the public address (404; with AuthNone it
//     is). /healthz, the web root and CORS preflights need no token.
//
// In every mode the public address answers /sessions and the profiler's
// /debug/pprof/ with 404: they are served by the admin listener only
// (admin.go; metronome serve's --admin-addr), with /metrics and the
// session inspector.

// AuthMode says who may use the server.
type AuthMode int

const (
	// AuthNone lets everyone in (a /k/<token>/ prefix is stripped and not
	// checked). The zero value; New allows it only on a loopback address
	// unless Config.InsecureNoAuth is set.
	AuthNone AuthMode = iota
	// AuthToken requires a token that Config.AuthVerifier accepts.
	AuthToken
)

// String returns the mode's name as --auth spells it.
func (m AuthMode) String() string {
	switch m {
	case AuthNone:
		return "none"
	case AuthToken:
		return "token"
	}
	return fmt.Sprintf("AuthMode(%d)", int(m))
}

// ParseAuthMode parses "none" or "token".
func ParseAuthMode(name string) (AuthMode, error) {
	switch name {
	case "none":
		return AuthNone, nil
	case "token":
		return AuthToken, nil
	}
	return 0, fmt.Errorf("%q is not an auth mode: want none or token", name)
}

// tokenPathPrefix starts a path that carries a token: /k/<token>/...
const tokenPathPrefix = "/k/"

// closeNotAuthorized closes a connection whose token does not allow it.
// It is the reference's "bad apiKey" code: from 4100 on, so the client
// stops instead of reconnecting (docs/protocol.md §5.3).
const closeNotAuthorized = protocol.CloseBadAPIKey

// notAuthorized starts every refusal's text, in close reasons and
// response bodies.
const notAuthorized = "not authorized: "

// errNoToken is the refusal of a request without a /k/<token>/ prefix.
var errNoToken = &auth.Error{Kind: auth.ErrMissing,
	Text: `no token in the URL: use box "<server>/k/<token>/"`}

// errJoinWithoutApp refuses a JOIN without appId: the token's apps could
// not be checked. (The JavaScript clients always send one, "no.appId" if
// the app gives none; so does the Go SDK.)
var errJoinWithoutApp = &auth.Error{Kind: auth.ErrAppNotAllowed,
	Text: "the JOIN names no appId, so the token's apps cannot be checked"}

// pathToken is the token of a request's /k/<token>/ prefix.
type pathToken struct {
	token   string
	present bool // the path had the prefix (the token may still be empty)
}

// splitToken returns the token of a path /k/<token>/rest and the path
// without that prefix ("/rest"); found is false for any other path.
func splitToken(path string) (token, rest string, found bool) {
	after, ok := strings.CutPrefix(path, tokenPathPrefix)
	if !ok {
		return "", path, false
	}
	token, rest, _ = strings.Cut(after, "/")
	return token, "/" + rest, true
}

// withoutToken returns the request with the /k/<token>/ prefix removed
// from its path, and the token.
func withoutToken(r *http.Request) (*http.Request, pathToken) {
	token, rest, found := splitToken(r.URL.Path)
	if !found {
		return r, pathToken{}
	}
	stripped := r.WithContext(r.Context())
	url := *r.URL
	url.Path, url.RawPath = rest, ""
	stripped.URL = &url
	return stripped, pathToken{token: token, present: true}
}

// authorize returns the claims of a token that allows right (and, unless
// appID is empty, the app) now; with authenticOnly the token's expiry is
// not checked.
func (s *Server) authorize(token pathToken, right auth.Right, appID string, authenticOnly bool) (auth.Claims, error) {
	return authorizeWith(s.verifier.Load(), token, right, appID, authenticOnly)
}

// authorizeWith is authorize with the given keys.
func authorizeWith(verifier *auth.Verifier, token pathToken, right auth.Right, appID string, authenticOnly bool) (auth.Claims, error) {
	if !token.present {
		return auth.Claims{}, errNoToken
	}
	var claims auth.Claims
	var err error
	if authenticOnly {
		claims, err = verifier.Authentic(token.token)
	} else {
		claims, err = verifier.Verify(token.token, time.Now())
	}
	if err != nil {
		return auth.Claims{}, err
	}
	if err := claims.Authorize(right, appID); err != nil {
		return auth.Claims{}, err
	}
	return claims, nil
}

// tokenRefusalStatus is the HTTP status of a refused file request: 401
// without a valid token, 403 when a valid token lacks the right or app.
func tokenRefusalStatus(err error) int {
	if errors.Is(err, auth.ErrRightMissing) || errors.Is(err, auth.ErrAppNotAllowed) {
		return http.StatusForbidden
	}
	return http.StatusUnauthorized
}

// authorizeFile checks a /files/ request in AuthToken mode and answers a
// refusal itself; it reports whether the request may go on.
func (s *Server) authorizeFile(w http.ResponseWriter, r *http.Request, token pathToken, path string) bool {
	var right auth.Right
	authenticOnly := false
	switch r.Method {
	case http.MethodPut:
		right = auth.RightUpload
	case http.MethodGet, http.MethodHead:
		// The URL is the uploader's, shared with every member of the
		// session for as long as the file is used: its token may have
		// expired since (see the comment at the top of this file).
		right, authenticOnly = auth.RightRead, true
	default:
		return true // answered 405 without touching anything
	}
	claims, err := s.authorize(token, right, appOfFilePath(path), authenticOnly)
	if err != nil {
		s.metrics.authRefusedFiles.Add(1)
		s.logger.Info("file request refused: not authorized", "method", r.Method, "path", path, "why", err, "remote", s.remoteAddr(r))
		writeText(w, tokenRefusalStatus(err), notAuthorized+err.Error())
		return false
	}
	s.logger.Debug("file request authorized", "method", r.Method, "path", path, "sub", claims.Subject, "kid", claims.KeyID)
	return true
}

// appOfFilePath returns the appId of a path apps/<appId>/..., "" for other
// paths (snapshots/<sessionId>/... names no app).
func appOfFilePath(path string) string {
	after, ok := strings.CutPrefix(path, "apps/")
	if !ok {
		return ""
	}
	appID, _, _ := strings.Cut(after, "/")
	return appID
}

// authorizeUpgrade checks a WebSocket upgrade in AuthToken mode: the
// token must be valid and grant the join right. It returns the claims, or
// the close reason of a refusal.
func (s *Server) authorizeUpgrade(r *http.Request, token pathToken) (verifiedToken, string) {
	verifier := s.verifier.Load()
	claims, err := authorizeWith(verifier, token, auth.RightJoin, "", false)
	if err != nil {
		s.metrics.authRefusedUpgrades.Add(1)
		s.metrics.countClose(closeNotAuthorized)
		s.logger.Info("websocket refused: not authorized", "path", r.URL.Path, "why", err, "remote", s.remoteAddr(r))
		return verifiedToken{}, notAuthorized + err.Error()
	}
	return verifiedToken{token: token, claims: claims, verifier: verifier}, ""
}

// verifiedToken is a connection's token with the claims its upgrade found
// genuine, and the keys that said so.
type verifiedToken struct {
	token    pathToken
	claims   auth.Claims
	verifier *auth.Verifier
}

// authorizeJoin checks the token again for a JOIN of appID. While the keys
// are those of the upgrade (no reload since) the signature still holds,
// and only the expiry and the app are checked: a signed token costs one
// signature check per connection, not two.
func (s *Server) authorizeJoin(token *verifiedToken, appID string) (auth.Claims, error) {
	if token.verifier == nil || token.verifier != s.verifier.Load() {
		return s.authorize(token.token, auth.RightJoin, appID, false)
	}
	if err := token.claims.CheckExpiry(time.Now()); err != nil {
		return auth.Claims{}, err
	}
	if err := token.claims.Authorize(auth.RightJoin, appID); err != nil {
		return auth.Claims{}, err
	}
	return token.claims, nil
}

// refuseJoin checks a JOIN of a connection opened with a token (c.token
// is set only in AuthToken mode): the token must still be valid and allow
// the JOIN's appId. On a refusal it closes the connection and reports
// true; the JOIN must then not reach the session. A JOIN whose args cannot
// be decoded passes: the session rejects it with its own close code.
//
// The appId is the one the JOIN states; the session refuses a JOIN whose
// appId differs from the one it was created with (4101), so a token for
// one app cannot open another app's session by its id.
func (c *conn) refuseJoin(frame protocol.ClientFrame) bool {
	join, err := protocol.DecodeJoin(frame.Args)
	if err != nil {
		return false
	}
	s := c.server
	claims, err := auth.Claims{}, error(errJoinWithoutApp)
	if join.AppID != "" {
		claims, err = s.authorizeJoin(c.token, join.AppID)
	}
	if err == nil {
		s.logger.Debug("join authorized", "conn", c.id, "app", join.AppID, "sub", claims.Subject, "kid", claims.KeyID)
		return false
	}
	s.metrics.authRefusedJoins.Add(1)
	s.metrics.countClose(closeNotAuthorized)
	s.logger.Info("join refused: not authorized", "conn", c.id, "app", join.AppID, "why", err, "remote", c.remote)
	c.close(closeNotAuthorized, notAuthorized+err.Error())
	return true
}

// IsLoopbackAddr reports whether a listen address ("host:port") is
// reachable only from this machine: a loopback IP address or "localhost".
// An empty host (all interfaces) and every other host name count as
// reachable from elsewhere; names are not resolved.
func IsLoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	address, err := netip.ParseAddr(host)
	return err == nil && address.Unmap().IsLoopback()
}

// validateAuth checks the access-control fields of a config.
func (c *Config) validateAuth() error {
	switch c.Auth {
	case AuthToken:
		if c.AuthVerifier == nil {
			return errors.New("server config: Auth is AuthToken but AuthVerifier is nil: nothing could check the tokens (build one with auth.ParseKeys)")
		}
		if c.InsecureNoAuth {
			return errors.New("server config: InsecureNoAuth goes with AuthNone only, Auth is AuthToken")
		}
	case AuthNone:
		if c.AuthVerifier != nil {
			return errors.New("server config: AuthVerifier is set but Auth is AuthNone: tokens would not be checked; set Auth to AuthToken")
		}
		if !IsLoopbackAddr(c.Addr) && !c.InsecureNoAuth {
			return fmt.Errorf("server config: Addr %s is not a loopback address and Auth is AuthNone: anyone who can reach it could join any session and write files; set Auth to AuthToken (with an AuthVerifier), or InsecureNoAuth to accept that", c.Addr)
		}
	default:
		return fmt.Errorf("server config: Auth must be AuthNone or AuthToken, got %v", c.Auth)
	}
	return nil
}

// SetAuthVerifier replaces the verifier of an AuthToken server (after the
// keys file changed: metronome serve reloads it on SIGHUP). Requests
// already authorized are not affected; every later check, including the
// JOINs of open connections, uses the new verifier.
func (s *Server) SetAuthVerifier(verifier *auth.Verifier) error {
	if s.config.Auth != AuthToken {
		return fmt.Errorf("the server runs with Auth %v: there is no verifier to replace", s.config.Auth)
	}
	if verifier == nil {
		return errors.New("SetAuthVerifier: the verifier is nil")
	}
	s.verifier.Store(verifier)
	return nil
}

// servePublicMetrics answers /metrics on the public address: served
// with AuthNone, 404 with AuthToken (the counters tell strangers how busy
// the server is; the operator reads them on the admin listener,
// AdminHandler).
func (s *Server) servePublicMetrics(w http.ResponseWriter, r *http.Request) {
	if s.config.Auth == AuthToken {
		writeText(w, http.StatusNotFound, fmt.Sprintf("%s is not served on the public address with --auth token; the operator reads it on the admin listener (metronome serve --admin-addr)", r.URL.Path))
		return
	}
	s.serveMetrics(w)
}
