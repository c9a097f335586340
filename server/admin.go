package server

import (
	"cmp"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/metronome-sync/metronome/store"
)

// # The admin listener (docs/operations.md, "Admin listener and inspector")
//
// AdminHandler serves what only the operator may see: the session
// inspector (a web page), /sessions (the list, and one session's detail
// as JSON), /metrics and Go's profiler. metronome serve listens for it on
// --admin-addr, a loopback address by default. It has no authentication:
// whoever reaches the address may read every session's members and
// addresses and profile the server. The public address answers /sessions
// and /debug/pprof/ with 404 in every auth mode (refuseAdminOnly).

// Limits of the admin listener.
const (
	// adminSessionsPageMax is the most sessions one JSON list answer
	// holds; ?offset= pages through the rest.
	adminSessionsPageMax = 200
	// adminUserBytesMax is the longest JOIN user value shown as is; a
	// longer one (view data) is cut.
	adminUserBytesMax = 256
	// adminPointerLookupTimeout bounds the store read of a session's
	// persisted-data pointer in the detail.
	adminPointerLookupTimeout = 2 * time.Second
)

//go:embed inspector
var inspectorFiles embed.FS

// inspectorPolicy is the inspector page's Content-Security-Policy: its
// own files only, no inline script, no other site.
const inspectorPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// AdminHandler serves the admin listener: the inspector page at /,
// /sessions, /sessions/<id>, /metrics and /debug/pprof/. Serve it only
// on an address that the operator alone can reach (metronome serve's
// --admin-addr).
func (s *Server) AdminHandler() http.Handler {
	assets, err := fs.Sub(inspectorFiles, "inspector")
	if err != nil {
		panic("server: the embedded inspector is missing: " + err.Error()) // a build error
	}
	files := http.FileServerFS(assets)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) { s.serveMetrics(w) })
	mux.HandleFunc("GET /sessions", s.serveSessionList)
	mux.HandleFunc("GET /sessions/{id}", s.serveSessionDetail)
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", inspectorPolicy)
		files.ServeHTTP(w, r)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "metronome")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-store")
		if !adminHostAllowed(r.Host) {
			// A web page whose name an attacker rebinds to 127.0.0.1 must
			// not read the listener through the operator's browser.
			writeText(w, http.StatusForbidden, fmt.Sprintf("Host %q refused: the admin listener answers requests to an IP address or localhost only", r.Host))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// adminHostAllowed reports whether a request's Host names the admin
// listener by an IP address or as localhost: names that DNS rebinding
// cannot point at it.
func adminHostAllowed(host string) bool {
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	host = strings.ToLower(host)
	return host == "localhost" || strings.HasSuffix(host, ".localhost")
}

// isAdminOnlyPath reports whether a path is served by the admin listener
// only.
func isAdminOnlyPath(path string) bool {
	return path == "/sessions" || strings.HasPrefix(path, "/sessions/") ||
		path == "/debug/pprof" || strings.HasPrefix(path, "/debug/pprof/")
}

// refuseAdminOnly answers a request on the public address for a path of
// the admin listener.
func (s *Server) refuseAdminOnly(w http.ResponseWriter, r *http.Request) {
	writeText(w, http.StatusNotFound, fmt.Sprintf("%s is not served on the public address; the operator reads it on the admin listener (metronome serve --admin-addr, 127.0.0.1:8889 by default)", r.URL.Path))
}

// runningSessions returns the actors of the sessions in memory.
func (s *Server) runningSessions() []*sessionActor {
	s.mu.Lock()
	defer s.mu.Unlock()
	actors := make([]*sessionActor, 0, len(s.sessions))
	for _, actor := range s.sessions {
		actors = append(actors, actor)
	}
	return actors
}

// sessionList is the JSON list of sessions: one page of at most
// adminSessionsPageMax.
type sessionList struct {
	// Total is the number of sessions in memory; Sessions holds those
	// from Offset on, at most Limit, in the order Sort names.
	Total    int              `json:"total"`
	Offset   int              `json:"offset"`
	Limit    int              `json:"limit"`
	Sort     string           `json:"sort"`
	Sessions []sessionSummary `json:"sessions"`
}

// sessionSorts are the orders of the list: by id, or the busiest first.
var sessionSorts = map[string]func(a, b *sessionSummary) int{
	"id":       func(a, b *sessionSummary) int { return strings.Compare(a.ID, b.ID) },
	"members":  func(a, b *sessionSummary) int { return cmp.Compare(b.Members, a.Members) },
	"inputs":   func(a, b *sessionSummary) int { return cmp.Compare(b.InputsPerSecond, a.InputsPerSecond) },
	"buffered": func(a, b *sessionSummary) int { return cmp.Compare(b.BufferedBytes, a.BufferedBytes) },
}

// serveSessionList answers GET /sessions: the ids as plain text, one per
// line (as before there was an inspector), or a page of session summaries
// as JSON when the request asks for JSON (?format=json, or an Accept
// header naming application/json): ?sort=id|members|inputs|buffered,
// ?offset=N, ?limit=N (at most adminSessionsPageMax).
func (s *Server) serveSessionList(w http.ResponseWriter, r *http.Request) {
	query := r.URL.Query()
	if query.Get("format") != "json" && !strings.Contains(r.Header.Get("Accept"), "application/json") {
		s.serveSessions(w)
		return
	}
	list := sessionList{Limit: adminSessionsPageMax, Sort: cmp.Or(query.Get("sort"), "id")}
	order, ok := sessionSorts[list.Sort]
	if !ok {
		writeText(w, http.StatusBadRequest, fmt.Sprintf("sort %q: want id, members, inputs or buffered", list.Sort))
		return
	}
	var err error
	if list.Offset, err = queryInt(query.Get("offset"), 0); err != nil {
		writeText(w, http.StatusBadRequest, "offset: "+err.Error())
		return
	}
	if list.Limit, err = queryInt(query.Get("limit"), adminSessionsPageMax); err != nil {
		writeText(w, http.StatusBadRequest, "limit: "+err.Error())
		return
	}
	list.Limit = min(list.Limit, adminSessionsPageMax)
	now := time.Now()
	actors := s.runningSessions()
	summaries := make([]sessionSummary, 0, len(actors))
	for _, actor := range actors {
		summaries = append(summaries, summarize(actor.id, actor.stats.Load(), now))
	}
	slices.SortFunc(summaries, func(a, b sessionSummary) int {
		return cmp.Or(order(&a, &b), strings.Compare(a.ID, b.ID))
	})
	list.Total = len(summaries)
	start := min(list.Offset, len(summaries))
	list.Sessions = summaries[start:min(start+list.Limit, len(summaries))]
	writeJSON(w, list)
}

// queryInt parses a non-negative query parameter (fallback when absent).
func queryInt(value string, fallback int) (int, error) {
	if value == "" {
		return fallback, nil
	}
	n, err := strconv.Atoi(value)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative integer", value)
	}
	return n, nil
}

// serveSessionDetail answers GET /sessions/<id>: one running session in
// detail, as JSON; 404 if it is not in memory.
func (s *Server) serveSessionDetail(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	s.mu.Lock()
	actor := s.sessions[id]
	s.mu.Unlock()
	if actor == nil {
		writeText(w, http.StatusNotFound, fmt.Sprintf("no session %q in memory (it may be stored: sessions are loaded when a client connects)", id))
		return
	}
	stats := actor.stats.Load()
	detail := describe(id, stats, time.Now())
	if stats != nil && stats.pointerKey != "" {
		ctx, cancel := context.WithTimeout(r.Context(), adminPointerLookupTimeout)
		_, err := s.store.GetPointer(ctx, stats.pointerKey)
		cancel()
		switch {
		case err == nil, errors.Is(err, store.ErrNotFound):
			stored := err == nil
			detail.Persisted.PointerStored = &stored
		default:
			detail.Persisted.PointerError = err.Error()
		}
	}
	writeJSON(w, detail)
}

func writeJSON(w http.ResponseWriter, value any) {
	w.Header().Set("Content-Type", "application/json")
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", " ")
	encoder.Encode(value)
}
