package server

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// metrics are the server's counters, exposed in the Prometheus text format
// at /metrics. They are plain atomics: no dependency, no global registry.
type metrics struct {
	connections         atomic.Int64
	connectionsTotal    atomic.Uint64
	rejectedConnections atomic.Uint64
	sessions            atomic.Int64
	framesIn            atomic.Uint64
	framesOut           atomic.Uint64
	writes              atomic.Uint64 // socket writes that carried frames
	messagesStamped     atomic.Uint64
	ticksSent           atomic.Uint64
	ticksSkipped        atomic.Uint64
	// ephemeralSkipped counts EPHM frames not queued to a client whose
	// socket was behind (reflector.Outbound.Droppable).
	ephemeralSkipped    atomic.Uint64
	slowClients         atomic.Uint64
	storeErrors         atomic.Uint64
	sessionsQuarantined atomic.Uint64
	// sessionsExpired counts sessions deleted by the retention sweep.
	sessionsExpired atomic.Uint64
	// rejectedPerIP counts upgrades refused by ConnectionsPerIPMax.
	rejectedPerIP atomic.Uint64
	// Cluster mode (cluster.go): upgrades passed on to the owner of their
	// session, those open now, those refused because the owner could not
	// be reached, sessions this node could not acquire, and sessions it
	// stopped stamping because it lost their ownership.
	forwardedConnections atomic.Uint64
	forwarding           atomic.Int64
	forwardsFailed       atomic.Uint64
	acquireFailed        atomic.Uint64
	ownershipLost        atomic.Uint64
	// joinsRateLimited counts upgrades and JOINs refused by
	// JoinsPerIPPerSecond (joinrate.go).
	joinsRateLimited atomic.Uint64
	// acceptWaits counts the times the listener had OpenConnectionsMax
	// connections open and waited (listenlimit.go).
	acceptWaits atomic.Uint64
	// rejectedSessionsMax counts upgrades refused by SessionsMax.
	rejectedSessionsMax atomic.Uint64
	// slowClientsLagging counts clients cut by QueueAgeMax (part of
	// slowClients).
	slowClientsLagging atomic.Uint64
	// upgradesRefusedStorage counts WebSocket upgrades refused while
	// storage failed (health.go).
	upgradesRefusedStorage atomic.Uint64
	filesPut               atomic.Uint64
	filesGot               atomic.Uint64
	// Uploads refused with 507 by a limit: FilesSessionBytesMax,
	// FilesTotalBytesMax, FilesDiskReserveBytes (files_quota.go, files.go).
	uploadsRefusedSession     atomic.Uint64
	uploadsRefusedTotal       atomic.Uint64
	uploadsRefusedDiskReserve atomic.Uint64
	// snapshotsCollected counts the snapshot files the server deleted:
	// replaced ones, and those of deleted sessions (snapshotgc.go).
	snapshotsCollected atomic.Uint64
	// The bytes of sessions, journal and quarantine, as the last sweep
	// measured them (storageMeasured: at least once; snapshotgc.go).
	storageSessions   atomic.Int64
	storageJournal    atomic.Int64
	storageQuarantine atomic.Int64
	storageMeasured   atomic.Bool
	// Requests refused for their token (auth.go), by kind.
	authRefusedUpgrades atomic.Uint64
	authRefusedJoins    atomic.Uint64
	authRefusedFiles    atomic.Uint64

	closesMu sync.Mutex
	closes   map[int]uint64

	// latency is the client-reported round-trip latency (ms) carried in
	// SENDs; commit the duration of store commits (ms).
	latency histogram
	commit  histogram
	// reflect is the server-side time from reading a frame to queuing its
	// effects (decoding, stepping, the durable commit), in ms.
	reflect histogram
}

// latencyBucketsMs are the reference reflector's latency buckets (docs/protocol.md §3.2).
var latencyBucketsMs = []float64{8, 10, 13, 17, 22, 29, 38, 50, 66, 87, 115, 153, 203, 270, 360}

// commitBucketsMs cover a memory commit (µs) to a slow fsync (100 ms).
var commitBucketsMs = []float64{0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 25, 50, 100}

func (m *metrics) init() {
	m.closes = make(map[int]uint64)
	m.latency.init(latencyBucketsMs)
	m.commit.init(commitBucketsMs)
	m.reflect.init(commitBucketsMs)
}

// countWrite counts one socket write that carried frames.
func (m *metrics) countWrite(frames int) {
	if frames > 0 {
		m.framesOut.Add(uint64(frames))
		m.writes.Add(1)
	}
}

// countUploadRefused counts an upload refused by the limit of flag.
func (m *metrics) countUploadRefused(flag string) {
	switch flag {
	case "--files-session-bytes-max":
		m.uploadsRefusedSession.Add(1)
	case "--files-total-bytes-max":
		m.uploadsRefusedTotal.Add(1)
	case "--files-disk-reserve":
		m.uploadsRefusedDiskReserve.Add(1)
	default:
		panic("server: unknown upload limit " + flag)
	}
}

func (m *metrics) countClose(code int) {
	m.closesMu.Lock()
	m.closes[code]++
	m.closesMu.Unlock()
}

type histogram struct {
	mu      sync.Mutex
	bounds  []float64
	counts  []uint64 // one per bound, plus +Inf
	sum     float64
	samples uint64
}

func (h *histogram) init(bounds []float64) {
	h.bounds = bounds
	h.counts = make([]uint64, len(bounds)+1)
}

func (h *histogram) observe(value float64) {
	if math.IsNaN(value) {
		return
	}
	i, _ := slices.BinarySearch(h.bounds, value)
	h.mu.Lock()
	h.counts[i]++
	h.sum += value
	h.samples++
	h.mu.Unlock()
}

func (h *histogram) write(w io.Writer, name, help string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name)
	var cumulative uint64
	for i, bound := range h.bounds {
		cumulative += h.counts[i]
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, bound, cumulative)
	}
	cumulative += h.counts[len(h.bounds)]
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n%s_sum %g\n%s_count %d\n", name, cumulative, name, h.sum, name, h.samples)
}

func (s *Server) serveMetrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	m := &s.metrics
	gauge := func(name, help string, value int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, value)
	}
	counter := func(name, help string, value uint64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, value)
	}
	gauge("metronome_connections", "Open WebSocket connections.", m.connections.Load())
	counter("metronome_connections_total", "WebSocket connections accepted.", m.connectionsTotal.Load())
	counter("metronome_connections_rejected_total", "WebSocket upgrades refused (ConnectionsMax).", m.rejectedConnections.Load())
	counter("metronome_sessions_expired_total", "Stored sessions deleted after being idle for longer than the retention.", m.sessionsExpired.Load())
	counter("metronome_connections_rejected_per_ip_total", "WebSocket upgrades refused with 429 (ConnectionsPerIPMax).", m.rejectedPerIP.Load())
	counter("metronome_joins_rate_limited_total", "WebSocket upgrades (429) and JOINs (4003) refused by JoinsPerIPPerSecond.", m.joinsRateLimited.Load())
	counter("metronome_accept_waits_total", "Times the listener had OpenConnectionsMax connections open and new ones had to wait in the backlog.", m.acceptWaits.Load())
	counter("metronome_sessions_rejected_total", "WebSocket upgrades for a new session refused with 503 (SessionsMax).", m.rejectedSessionsMax.Load())
	gauge("metronome_sessions", "Sessions in memory.", m.sessions.Load())
	counter("metronome_frames_in_total", "Text frames received from clients.", m.framesIn.Load())
	counter("metronome_frames_out_total", "Frames written to clients.", m.framesOut.Load())
	counter("metronome_writes_total", "Socket writes that carried frames (frames_out / writes: frames per write).", m.writes.Load())
	counter("metronome_messages_total", "Messages stamped (client inputs and reflector messages).", m.messagesStamped.Load())
	counter("metronome_ticks_total", "TICK frames queued to clients.", m.ticksSent.Load())
	counter("metronome_ticks_skipped_total", "TICKs skipped for backlogged clients.", m.ticksSkipped.Load())
	counter("metronome_ephemeral_skipped_total", "Ephemeral (EPHM) frames not sent to clients whose socket was behind.", m.ephemeralSkipped.Load())
	counter("metronome_slow_clients_total", "Clients disconnected (4001) because their send queue was full (QueueFramesMax, QueueBytesMax) or had not been emptied for QueueAgeMax.", m.slowClients.Load())
	counter("metronome_slow_clients_lagging_total", "Of metronome_slow_clients_total: clients whose send queue had not been emptied for QueueAgeMax.", m.slowClientsLagging.Load())
	counter("metronome_store_errors_total", "Failed storage commits.", m.storeErrors.Load())
	counter("metronome_upgrades_refused_storage_total", "WebSocket upgrades refused with 503 while storage failed.", m.upgradesRefusedStorage.Load())
	counter("metronome_sessions_quarantined_total", "Sessions whose stored data was damaged: quarantined, restarted on a new timeline.", m.sessionsQuarantined.Load())
	counter("metronome_files_put_total", "Files stored through /files.", m.filesPut.Load())
	counter("metronome_files_get_total", "Files served through /files.", m.filesGot.Load())
	fmt.Fprintf(w, "# HELP metronome_uploads_refused_total Uploads refused with 507, by the limit (flag) they would pass.\n# TYPE metronome_uploads_refused_total counter\n")
	fmt.Fprintf(w, "metronome_uploads_refused_total{limit=\"files-session-bytes-max\"} %d\nmetronome_uploads_refused_total{limit=\"files-total-bytes-max\"} %d\nmetronome_uploads_refused_total{limit=\"files-disk-reserve\"} %d\n",
		m.uploadsRefusedSession.Load(), m.uploadsRefusedTotal.Load(), m.uploadsRefusedDiskReserve.Load())
	counter("metronome_snapshots_collected_total", "Snapshot files deleted: replaced for longer than SnapshotKeepMin, or of sessions deleted by the retention.", m.snapshotsCollected.Load())
	s.writeStorageBytes(w)
	fmt.Fprintf(w, "# HELP metronome_auth_refused_total Requests refused for their token (--auth token), by what was refused.\n# TYPE metronome_auth_refused_total counter\n")
	fmt.Fprintf(w, "metronome_auth_refused_total{what=\"upgrade\"} %d\nmetronome_auth_refused_total{what=\"join\"} %d\nmetronome_auth_refused_total{what=\"files\"} %d\n",
		m.authRefusedUpgrades.Load(), m.authRefusedJoins.Load(), m.authRefusedFiles.Load())
	if s.overload != nil {
		gauge("metronome_coalesce_hold_microseconds", "How long sessions hold frames to batch writes; above 0 only while the server is overloaded.", int64(s.overload.coalesceDelay()/time.Microsecond))
		counter("metronome_overload_episodes_total", "Times the server became overloaded and started holding frames.", s.overload.entered.Load())
	}
	m.closesMu.Lock()
	codes := make([]int, 0, len(m.closes))
	for code := range m.closes {
		codes = append(codes, code)
	}
	slices.Sort(codes)
	fmt.Fprintf(w, "# HELP metronome_closes_total Connections closed by the server, by close code.\n# TYPE metronome_closes_total counter\n")
	for _, code := range codes {
		fmt.Fprintf(w, "metronome_closes_total{code=\"%d\"} %d\n", code, m.closes[code])
	}
	m.closesMu.Unlock()
	if s.config.Cluster != nil {
		counter("metronome_cluster_forwarded_connections_total", "WebSocket upgrades passed on to the node that owns their session.", m.forwardedConnections.Load())
		gauge("metronome_cluster_forwarded_connections", "Forwarded connections open now (this node copies their bytes).", m.forwarding.Load())
		counter("metronome_cluster_forwards_failed_total", "Upgrades answered 503 because their session's owner could not be reached before its lease ran out.", m.forwardsFailed.Load())
		counter("metronome_cluster_acquire_failed_total", "Sessions this node could not become the owner of (their clients were asked to reconnect).", m.acquireFailed.Load())
		counter("metronome_cluster_ownership_lost_total", "Sessions this node stopped stamping because it lost their ownership (lease not renewed in time, or fenced).", m.ownershipLost.Load())
		s.config.Cluster.WriteMetrics(w)
	}
	m.latency.write(w, "metronome_client_latency_ms", "Round-trip latency reported by clients in their SENDs, in milliseconds.")
	m.reflect.write(w, "metronome_reflect_ms", "Time from reading a client frame to queuing what it caused (decode, step, durable commit), in milliseconds.")
	m.commit.write(w, "metronome_store_commit_ms", "Duration of storage commits (one per batch of events), in milliseconds.")
	var memory runtime.MemStats
	runtime.ReadMemStats(&memory)
	gauge("go_goroutines", "Goroutines.", int64(runtime.NumGoroutine()))
	gauge("go_memstats_heap_inuse_bytes", "Heap bytes in use.", int64(memory.HeapInuse))
	counter("go_gc_cycles_total", "Completed GC cycles.", uint64(memory.NumGC))
}

func sortedStrings(values []string) []string {
	slices.Sort(values)
	return values
}

// writeStorageBytes writes metronome_storage_bytes: the uploaded files
// by kind, exact (files_usage.go), and the sessions' records and logs,
// the journal and the quarantine, as the last sweep measured them (at
// start, then every RetentionSweepInterval).
func (s *Server) writeStorageBytes(w io.Writer) {
	m := &s.metrics
	if s.fileUsage == nil && !m.storageMeasured.Load() {
		return
	}
	fmt.Fprintf(w, "# HELP metronome_storage_bytes Bytes stored, by kind: uploaded files (snapshots, persisted, data, other; exact), and sessions (records and message logs), journal and quarantine (measured at start and by each hourly sweep).\n# TYPE metronome_storage_bytes gauge\n")
	if s.fileUsage != nil {
		kinds := s.fileUsage.byKind()
		for kind := range fileKindCount {
			fmt.Fprintf(w, "metronome_storage_bytes{kind=%q} %d\n", kind.String(), kinds[kind])
		}
	}
	if m.storageMeasured.Load() {
		fmt.Fprintf(w, "metronome_storage_bytes{kind=\"sessions\"} %d\nmetronome_storage_bytes{kind=\"journal\"} %d\nmetronome_storage_bytes{kind=\"quarantine\"} %d\n",
			m.storageSessions.Load(), m.storageJournal.Load(), m.storageQuarantine.Load())
	}
}
