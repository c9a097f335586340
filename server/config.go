package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store"
)

// Config configures a Server. Store is required; every other zero field
// takes its default (it listens on 127.0.0.1:8888). Fields are filled with
// defaults by New; Validate reports impossible settings.
type Config struct {
	// Addr is the TCP address to listen on ("host:port"; port 0 picks one).
	Addr string
	// TLS, when set, makes Addr serve HTTPS and WSS only (tls.go). It
	// needs a certificate (CertificateFiles.TLSConfig reads one from PEM
	// files and reloads it); MinVersion below TLS 1.2 is refused, zero
	// means 1.2. Nil: plain HTTP and WS.
	TLS *tls.Config
	// HTTPRedirectAddr, with TLS, is a second address that speaks plain
	// HTTP and answers every request with 308 to the same path over https
	// on Addr. Empty: none.
	HTTPRedirectAddr string
	// WebRoot is a directory served at "/"; empty serves the embedded demo.
	WebRoot string
	// CroquetClient is the path of a Croquet client ES module
	// (croquet.esm.js of @croquet/croquet) served at /croquet.esm.js, for
	// the embedded demo to work without internet; empty serves none (the
	// demo then loads the client from a CDN).
	CroquetClient string
	// Logger receives structured logs; nil discards them.
	Logger *slog.Logger

	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed for the client address in logs (see remote.go); empty: the
	// header is ignored and the peer's address is logged.
	TrustedProxies []netip.Prefix

	// AllowedOrigins are the origins ("https://app.example.com") of the web
	// pages that may use the server from a browser: their WebSocket
	// upgrades are accepted and /files/ answers them with CORS headers
	// (files_origins.go). A request with another Origin header is refused
	// (WebSocket upgrade, upload: 403); a request without one (native and
	// Node.js clients) is always accepted. Empty, or just AnyOrigin: every
	// origin, with "Access-Control-Allow-Origin: *".
	AllowedOrigins []string

	// Auth decides who may use the server (auth.go, docs/operations.md
	// "Access control"). AuthNone, the zero value, lets everyone in and is
	// allowed only on a loopback Addr unless InsecureNoAuth is set.
	// AuthToken requires a token that AuthVerifier accepts, in the path
	// prefix /k/<token>/, for every WebSocket and every file transfer.
	Auth AuthMode
	// AuthVerifier checks the tokens of AuthToken mode (auth.ParseKeys
	// reads a keys file); required with AuthToken, refused with AuthNone.
	AuthVerifier *auth.Verifier
	// InsecureNoAuth accepts AuthNone on an address that is not loopback:
	// everyone who can reach the address may join any session and write
	// files. For a network that is trusted entirely.
	InsecureNoAuth bool

	// Cluster makes the server a node of a cluster (cluster.go, package
	// cluster): it stamps only the sessions it owns and forwards the
	// clients of the others to their owners. Store must then be the
	// cluster's shared store (store/jsstore). The retention of idle
	// sessions is off in cluster mode (SessionRetention must not be set):
	// one node deleting a session another node is loading is not fenced
	// yet. Nil: a single node.
	Cluster Cluster

	// Store keeps sessions, pointers and files: store/diskstore on a data
	// directory (what metronome serve opens) or store/memstore. The caller
	// opens it and closes it after Shutdown.
	Store store.Store

	// Reflector holds the session limits; each zero field takes its
	// reflector default (reflector.Config.WithDefaults, where reflector.Off
	// asks for 0 in the fields in which 0 means off).
	Reflector reflector.Config

	// QueueFramesMax and QueueBytesMax bound each connection's outbound
	// queue; a client that falls further behind is disconnected with 4001
	// and reconnects.
	QueueFramesMax int
	QueueBytesMax  int
	// WriteTimeout bounds one write to a client socket.
	WriteTimeout time.Duration
	// FileBytesMax bounds an uploaded file (snapshots, persisted data).
	FileBytesMax int64
	// FilesDiskReserveBytes is the free space uploads never take: a PUT
	// is refused with 507 while the data directory's file system has less
	// than this free, so that uploads cannot starve the journal (stores
	// that know their free space: store/diskstore). Zero means
	// DefaultFilesDiskReserveBytes; negative turns the check off.
	FilesDiskReserveBytes int64
	// FilesSessionBytesMax bounds the bytes under one session's snapshot
	// directory (files_quota.go): a PUT beyond it first collects the
	// session's old snapshots (snapshotgc.go), then is refused with 507.
	// Zero means DefaultFilesSessionBytesMax; negative turns it off.
	FilesSessionBytesMax int64
	// FilesTotalBytesMax bounds all uploaded files together: a PUT beyond it
	// is refused with 507. Zero means: no such bound with a store that
	// knows its free disk space (FilesDiskReserveBytes guards the disk),
	// DefaultFilesMemoryBytesMax with one that does not (memory mode);
	// negative: no bound.
	FilesTotalBytesMax int64
	// SnapshotKeepMin is how long a snapshot stays after a newer one
	// replaced it as the session's snapshot, so that clients whose SYNC
	// named it can still download it (snapshotgc.go). Zero means
	// DefaultSnapshotKeepMin; negative keeps every snapshot.
	SnapshotKeepMin time.Duration
	// FileTransferTimeout bounds one upload's body (PUT) or one download's
	// response (GET) under /files: a client that trickles bytes is cut off
	// (408 for an upload) instead of holding a connection, and a shutdown,
	// for ever.
	FileTransferTimeout time.Duration
	// ConnectionsMax bounds open WebSocket connections, those forwarded
	// to other nodes in cluster mode included (further upgrades get HTTP
	// 503).
	ConnectionsMax int
	// SessionRetention: a stored session unchanged for this long, with no
	// connection, is deleted (retention.go). Zero means
	// DefaultSessionRetention; negative keeps sessions forever.
	SessionRetention time.Duration
	// RetentionSweepInterval is how often idle sessions are looked for.
	// Zero means DefaultRetentionSweepInterval.
	RetentionSweepInterval time.Duration
	// ConnectionsPerIPMax bounds the WebSocket connections of one client
	// address (perip.go; loopback is not limited): an upgrade beyond it is
	// refused with 429. Zero means DefaultConnectionsPerIPMax; negative
	// turns the limit off.
	ConnectionsPerIPMax int
	// JoinsPerIPPerSecond and JoinsPerIPBurst bound the JOINs of one
	// client address (joinrate.go; loopback is not limited): a token
	// bucket of JoinsPerIPBurst refilled at JoinsPerIPPerSecond. Zero means
	// the defaults; a negative rate turns the limit off.
	JoinsPerIPPerSecond float64
	JoinsPerIPBurst     int
	// OpenConnectionsMax bounds the TCP connections open at once, HTTP and
	// WebSocket (listenlimit.go): while that many are open, new ones wait
	// in the listen backlog, so that connections never take the file
	// descriptors that running sessions' storage needs. Zero: no bound
	// (metronome serve derives it from the open-file limit).
	OpenConnectionsMax int
	// SessionsMax bounds the sessions in memory: an upgrade for one more
	// is refused with 503 (sessions that exist are not affected). Zero
	// means DefaultSessionsMax; negative turns the limit off.
	SessionsMax int
	// QueueAgeMax is how long a connection's send queue may stay
	// non-empty before the client is cut as too slow (4001), however
	// little it holds: a client that reads a trickle is cut in bounded
	// time, not only one whose queue fills (QueueFramesMax,
	// QueueBytesMax). Zero means DefaultQueueAgeMax.
	QueueAgeMax time.Duration
	// CoalesceMax is the longest a session holds its frames while the
	// server is overloaded, so that one write carries several (see
	// overload.go). Zero means DefaultCoalesceMax; CoalesceOff turns
	// holding off.
	CoalesceMax time.Duration
}

// Defaults.
const (
	DefaultAddr           = "127.0.0.1:8888"
	DefaultQueueFramesMax = 4096
	DefaultQueueBytesMax  = 16 << 20
	DefaultWriteTimeout   = 10 * time.Second
	DefaultFileBytesMax   = 128 << 20 // ≥ the 100 MB of Croquet-in-a-Box (docs/protocol.md §12.2)
	// DefaultFilesDiskReserveBytes leaves room for the journal (one file
	// of 36 MiB, the next being prepared) and for a checkpoint's session
	// files.
	DefaultFilesDiskReserveBytes = 256 << 20
	// DefaultFilesSessionBytesMax holds a session's snapshot in use, the
	// ones it replaced within SnapshotKeepMin, and the next upload: 8
	// snapshots of the largest size (FileBytesMax), or 120 of 8.5 MiB,
	// as many as a session whose clients snapshot every 5 s (the
	// JavaScript client's shortest interval) uploads in 10 min. Croquet
	// snapshots are mostly kilobytes to a few MiB. It keeps one session
	// from filling the disk with uploads.
	DefaultFilesSessionBytesMax = 1 << 30
	// DefaultFilesMemoryBytesMax bounds all uploaded files when they are
	// kept in memory (there is no disk reserve then).
	DefaultFilesMemoryBytesMax = 1 << 30
	// DefaultSnapshotKeepMin outlasts every use of a SYNC's snapshot URL:
	// the SYNC is used within 5 s, and the JavaScript client's download,
	// with its 3 retries, reaches the server within 8.7 min even when
	// every try meets a TCP connect timeout (store/snapshotgc).
	DefaultSnapshotKeepMin = 10 * time.Minute
	// DefaultFileTransferTimeout lets a 128 MiB snapshot through at
	// about 1.1 MB/s.
	DefaultFileTransferTimeout    = 2 * time.Minute
	DefaultConnectionsMax         = 50_000
	DefaultSessionRetention       = 30 * 24 * time.Hour
	DefaultRetentionSweepInterval = time.Hour
	// DefaultConnectionsPerIPMax leaves room for a classroom or an office
	// behind one NAT address, not for one machine taking the server.
	DefaultConnectionsPerIPMax = 256
	// DefaultJoinsPerIPPerSecond and DefaultJoinsPerIPBurst let a
	// classroom behind one address join at once, and one machine no more
	// than ten SYNCs a second after that.
	DefaultJoinsPerIPPerSecond = 10
	DefaultJoinsPerIPBurst     = 64
	DefaultSessionsMax         = 10_000
	// DefaultQueueAgeMax lets a 16 MiB SYNC (QueueBytesMax) through at
	// about 0.6 MB/s.
	DefaultQueueAgeMax     = 30 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
	DefaultCoalesceMax     = 20 * time.Millisecond
	// CoalesceOff as CoalesceMax: never hold frames.
	CoalesceOff time.Duration = -1
)

func (c *Config) fillDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	c.Reflector = c.Reflector.WithDefaults()
	if c.QueueFramesMax == 0 {
		c.QueueFramesMax = DefaultQueueFramesMax
	}
	if c.QueueBytesMax == 0 {
		c.QueueBytesMax = DefaultQueueBytesMax
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.FileBytesMax == 0 {
		c.FileBytesMax = DefaultFileBytesMax
	}
	if c.FilesDiskReserveBytes == 0 {
		c.FilesDiskReserveBytes = DefaultFilesDiskReserveBytes
	}
	if c.FileTransferTimeout == 0 {
		c.FileTransferTimeout = DefaultFileTransferTimeout
	}
	if c.FilesSessionBytesMax == 0 {
		c.FilesSessionBytesMax = DefaultFilesSessionBytesMax
	}
	if c.FilesTotalBytesMax == 0 {
		c.FilesTotalBytesMax = -1 // the disk reserve guards the disk
		if _, knowsSpace := c.Store.(freeSpace); !knowsSpace {
			c.FilesTotalBytesMax = DefaultFilesMemoryBytesMax
		}
	}
	if c.SnapshotKeepMin == 0 {
		c.SnapshotKeepMin = DefaultSnapshotKeepMin
	}
	if c.ConnectionsMax == 0 {
		c.ConnectionsMax = DefaultConnectionsMax
	}
	if c.SessionRetention == 0 && c.Cluster != nil {
		c.SessionRetention = -1
	}
	if c.SessionRetention == 0 {
		c.SessionRetention = DefaultSessionRetention
	}
	if c.RetentionSweepInterval == 0 {
		c.RetentionSweepInterval = DefaultRetentionSweepInterval
	}
	if c.ConnectionsPerIPMax == 0 {
		c.ConnectionsPerIPMax = DefaultConnectionsPerIPMax
	}
	if c.CoalesceMax == 0 {
		c.CoalesceMax = DefaultCoalesceMax
	}
	if c.JoinsPerIPPerSecond == 0 {
		c.JoinsPerIPPerSecond = DefaultJoinsPerIPPerSecond
	}
	if c.JoinsPerIPBurst == 0 {
		c.JoinsPerIPBurst = DefaultJoinsPerIPBurst
	}
	if c.SessionsMax == 0 {
		c.SessionsMax = DefaultSessionsMax
	}
	if c.QueueAgeMax == 0 {
		c.QueueAgeMax = DefaultQueueAgeMax
	}
}

// Validate reports settings that cannot work.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("server config: Store is required (open store/diskstore or store/memstore and pass it in)")
	}
	if err := c.Reflector.Validate(); err != nil {
		return err
	}
	if c.Cluster != nil && c.SessionRetention > 0 {
		return fmt.Errorf("server config: SessionRetention (%v) is not supported in cluster mode yet: a node could delete a session another node is loading", c.SessionRetention)
	}
	if c.QueueFramesMax < 16 {
		return fmt.Errorf("server config: QueueFramesMax must be at least 16, got %d", c.QueueFramesMax)
	}
	if c.QueueBytesMax < 2<<20 {
		return fmt.Errorf("server config: QueueBytesMax must be at least 2 MiB (a SYNC can be large), got %d", c.QueueBytesMax)
	}
	if c.JoinsPerIPPerSecond > 0 && c.JoinsPerIPBurst < 1 {
		return fmt.Errorf("server config: JoinsPerIPBurst must be at least 1, got %d", c.JoinsPerIPBurst)
	}
	if c.QueueAgeMax < time.Second {
		return fmt.Errorf("server config: QueueAgeMax must be at least 1s, got %s", c.QueueAgeMax)
	}
	if c.WriteTimeout < 100*time.Millisecond {
		return fmt.Errorf("server config: WriteTimeout must be at least 100ms, got %s", c.WriteTimeout)
	}
	if c.FileTransferTimeout < time.Second {
		return fmt.Errorf("server config: FileTransferTimeout must be at least 1s, got %s", c.FileTransferTimeout)
	}
	if c.FileBytesMax < 1<<20 {
		return fmt.Errorf("server config: FileBytesMax must be at least 1 MiB, got %d", c.FileBytesMax)
	}
	// A session's quota holds the snapshot in use and the next upload.
	if c.FilesSessionBytesMax > 0 && c.FilesSessionBytesMax < 2*c.FileBytesMax {
		return fmt.Errorf("server config: FilesSessionBytesMax (--files-session-bytes-max) must be at least twice FileBytesMax (%d bytes): room for the snapshot in use and the next upload; got %d",
			c.FileBytesMax, c.FilesSessionBytesMax)
	}
	if c.FilesTotalBytesMax > 0 && c.FilesTotalBytesMax < 2*c.FileBytesMax {
		return fmt.Errorf("server config: FilesTotalBytesMax (--files-total-bytes-max) must be at least twice FileBytesMax (%d bytes), got %d",
			c.FileBytesMax, c.FilesTotalBytesMax)
	}
	if c.CoalesceMax != CoalesceOff && (c.CoalesceMax < coalesceDelayMin || c.CoalesceMax > time.Second) {
		return fmt.Errorf("server config: CoalesceMax must be in [%s, 1s] (or CoalesceOff), got %s", coalesceDelayMin, c.CoalesceMax)
	}
	if err := validateOrigins(c.AllowedOrigins); err != nil {
		return fmt.Errorf("server config: AllowedOrigins: %w", err)
	}
	if c.ConnectionsMax < 1 {
		return fmt.Errorf("server config: ConnectionsMax must be positive, got %d", c.ConnectionsMax)
	}
	if err := c.validateTLS(); err != nil {
		return err
	}
	return c.validateAuth()
}
