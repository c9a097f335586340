package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"syscall"
	"time"

	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store"
	"github.com/metronome-sync/metronome/store/diskstore"
	"github.com/metronome-sync/metronome/store/memstore"
)

const serveUsage = `Usage: metronome serve [flags]

Runs the reflector (WebSocket, any path; the last path segment is the session
id, e.g. ws://HOST/reflector/<sessionId>), the file server (PUT/GET /files/...),
a web root at / (an embedded demo unless --web-root is given), /healthz and
/metrics. Croquet apps connect with Session.join({box: "http://HOST:PORT/", ...}).

Access control: on the default address (127.0.0.1:8888, loopback) everyone
may connect. On any other address serve refuses to start unless clients need a
token: --auth token --auth-keys FILE. A client then carries its token in the
box URL, box: "https://HOST/k/<token>/"; "metronome token --help" shows how to
create keys and mint tokens (docs/operations.md, "Access control").

TLS: --tls-cert FILE --tls-key FILE make the address serve https:// and
wss:// (box: "https://HOST:PORT/"); SIGHUP re-reads them. Behind a reverse
proxy that terminates TLS, name it in --trusted-proxies (docs/operations.md,
"TLS and reverse proxies").

The operator's address, --admin-addr (default 127.0.0.1:8889, loopback
only), serves a live session inspector at http://127.0.0.1:8889/, the
session list /sessions, /metrics and Go's profiler /debug/pprof/; the
public address never serves /sessions or the profiler (docs/operations.md,
"Admin listener and inspector").

Sessions are kept in --data-dir across restarts: clients that reconnect after
a restart continue with the same timeline, time and sequence numbers.

Cluster mode: --cluster-name NAME --node-name NODE --cluster-listen HOST:PORT
--cluster-routes nats://HOST:PORT,... on each node (each with its own
--data-dir) runs a cluster with an embedded NATS JetStream: any node serves any
session, one node at a time stamps it, and when that node dies another takes
over within --cluster-lease. --nats-url uses an external NATS cluster instead.
See docs/cluster.md.

Every flag can also be set by an environment variable, shown in brackets;
a flag on the command line wins.

Flags:
`

func serve(args []string, stdout, stderr io.Writer) (code int) {
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	flags.SetOutput(stderr)
	addr := flags.String("addr", env("METRONOME_ADDR", server.DefaultAddr), "listen address host:port [METRONOME_ADDR]")
	dataDir := flags.String("data-dir", env("METRONOME_DATA_DIR", "metronome-data"), `directory for sessions and files; "" keeps everything in memory [METRONOME_DATA_DIR]`)
	durable := flags.Bool("durable", envBool("METRONOME_DURABLE", true), "fsync every stamped message before sending it (off: survives a process crash, not a machine crash) [METRONOME_DURABLE]")
	croquetClient := flags.String("croquet-client", env("METRONOME_CROQUET_CLIENT", defaultCroquetClient()), "the Croquet client module (croquet.esm.js) served at /croquet.esm.js, so that the embedded demo works offline; default: node_modules/@croquet/croquet/pub/croquet.esm.js under the working directory if it exists (npm install @croquet/croquet@2.0.4), else none and the demo loads it from a CDN [METRONOME_CROQUET_CLIENT]")
	webRoot := flags.String("web-root", env("METRONOME_WEB_ROOT", ""), "directory served at / (default: the embedded demo) [METRONOME_WEB_ROOT]")
	logLevel := flags.String("log-level", env("METRONOME_LOG_LEVEL", "info"), "debug, info, warn or error [METRONOME_LOG_LEVEL]")
	logFormat := flags.String("log-format", env("METRONOME_LOG_FORMAT", "text"), "text or json [METRONOME_LOG_FORMAT]")
	fileBytesMax := flags.Int64("file-bytes-max", envInt("METRONOME_FILE_BYTES_MAX", server.DefaultFileBytesMax), "largest file accepted by PUT /files [METRONOME_FILE_BYTES_MAX]")
	filesDiskReserve := flags.Int64("files-disk-reserve", envInt("METRONOME_FILES_DISK_RESERVE", server.DefaultFilesDiskReserveBytes), "free disk space (bytes) uploads never take, so that sessions can still be stored: a PUT that would leave less is refused with 507; -1 turns the check off [METRONOME_FILES_DISK_RESERVE]")
	filesSessionBytesMax := flags.Int64("files-session-bytes-max", envInt("METRONOME_FILES_SESSION_BYTES_MAX", server.DefaultFilesSessionBytesMax), "most bytes of files in one session's snapshot directory: a PUT beyond it first deletes the session's snapshots replaced more than 10 min ago, then is refused with 507; at least twice --file-bytes-max; -1 turns it off [METRONOME_FILES_SESSION_BYTES_MAX]")
	filesBytesMax := flags.Int64("files-total-bytes-max", envInt("METRONOME_FILES_TOTAL_BYTES_MAX", 0), "most bytes of all uploaded files together (--file-bytes-max bounds one file): a PUT beyond it is refused with 507; 0: no such bound on disk (--files-disk-reserve applies), 1 GiB in memory (--data-dir \"\"); -1 turns it off [METRONOME_FILES_TOTAL_BYTES_MAX]")
	fileTransferTimeout := flags.Duration("file-transfer-timeout", envDuration("METRONOME_FILE_TRANSFER_TIMEOUT", server.DefaultFileTransferTimeout), "longest upload (PUT body) or download (GET response) under /files; a slower upload is cut off with 408 [METRONOME_FILE_TRANSFER_TIMEOUT]")
	connectionsMax := flags.Int("connections-max", int(envInt("METRONOME_CONNECTIONS_MAX", server.DefaultConnectionsMax)), "most WebSocket connections at once [METRONOME_CONNECTIONS_MAX]")
	sessionRetention := flags.Duration("session-retention", envDuration("METRONOME_SESSION_RETENTION", server.DefaultSessionRetention), "a stored session unchanged for this long, with no connection, is deleted with its messages and snapshot files (checked every hour; its persisted data stays); -1ns keeps sessions forever [METRONOME_SESSION_RETENTION]")
	connectionsPerIP := flags.Int("connections-per-ip-max", int(envInt("METRONOME_CONNECTIONS_PER_IP_MAX", server.DefaultConnectionsPerIPMax)), "most WebSocket connections from one client address (the peer's, or the client's as --trusted-proxies reveal it); more are refused with 429; loopback is not limited; -1 turns it off [METRONOME_CONNECTIONS_PER_IP_MAX]")
	joinsPerIPRate := flags.Float64("joins-per-ip-per-second", envFloat("METRONOME_JOINS_PER_IP_PER_SECOND", server.DefaultJoinsPerIPPerSecond), "JOINs one client address may make per second, after a burst of --joins-per-ip-burst (every JOIN costs a SYNC: the session's messages since its snapshot); a connection beyond it is refused with 429 before the upgrade, a repeated JOIN is closed with 4003; loopback is not limited; -1 turns it off [METRONOME_JOINS_PER_IP_PER_SECOND]")
	joinsPerIPBurst := flags.Int("joins-per-ip-burst", int(envInt("METRONOME_JOINS_PER_IP_BURST", server.DefaultJoinsPerIPBurst)), "JOINs one client address may make at once before --joins-per-ip-per-second applies (a classroom behind one NAT address reconnecting after a restart) [METRONOME_JOINS_PER_IP_BURST]")
	sessionsMax := flags.Int("sessions-max", int(envInt("METRONOME_SESSIONS_MAX", server.DefaultSessionsMax)), "most sessions in memory at once; a connection to one more is refused with 503 (sessions already running are not affected); -1 turns it off [METRONOME_SESSIONS_MAX]")
	queueAgeMax := flags.Duration("queue-age-max", envDuration("METRONOME_QUEUE_AGE_MAX", server.DefaultQueueAgeMax), "longest a client may leave frames unread: a connection whose send queue has not been emptied for this long is closed with 4001 (it reconnects and resyncs), as is one whose queue holds 4096 frames or 16 MiB [METRONOME_QUEUE_AGE_MAX]")
	coalesceMax := flags.Duration("coalesce-max", envDuration("METRONOME_COALESCE_MAX", server.DefaultCoalesceMax), "while the server is overloaded (goroutines wait > 0.5 ms for a CPU), sessions hold their frames up to this long so that one write carries several: more throughput at the cost of latency that is already high; 0 turns it off; see /metrics metronome_coalesce_hold_microseconds [METRONOME_COALESCE_MAX]")
	trustedProxies := flags.String("trusted-proxies", env("METRONOME_TRUSTED_PROXIES", ""), "comma-separated addresses or prefixes of reverse proxies (e.g. 127.0.0.1,10.0.0.0/8) whose X-Forwarded-For is believed for the client address in logs; empty: the header is ignored [METRONOME_TRUSTED_PROXIES]")
	allowedOrigins := flags.String("allowed-origins", env("METRONOME_ALLOWED_ORIGINS", server.AnyOrigin), `web pages that may use the server from a browser: * (any), or comma-separated origins such as https://app.example.com,http://localhost:5173; WebSocket upgrades and uploads with another Origin header get 403, and /files/ sends CORS headers to these only; clients that send no Origin (native, Node.js) are not affected. Set it on a server others can reach, including the server's own origin if it serves the app (--web-root, the demo) [METRONOME_ALLOWED_ORIGINS]`)
	adminAddr := flags.String("admin-addr", env("METRONOME_ADMIN_ADDR", defaultAdminAddr), `the operator's address: the session inspector (a web page at /), /sessions, /metrics and Go's profiler (/debug/pprof/); "off" turns it off. It has no authentication: keep it on loopback (reach it through an SSH tunnel). If the default address is taken, serve warns and runs without it [METRONOME_ADMIN_ADDR]`)
	debugAddr := flags.String("debug-addr", env("METRONOME_DEBUG_ADDR", ""), "deprecated: the old name of --admin-addr [METRONOME_DEBUG_ADDR]")
	var secure tlsFlags
	flags.StringVar(&secure.certFile, "tls-cert", env("METRONOME_TLS_CERT", ""), "certificate chain (PEM, e.g. fullchain.pem): --addr serves https:// and wss:// only; needs --tls-key; re-read on SIGHUP [METRONOME_TLS_CERT]")
	flags.StringVar(&secure.keyFile, "tls-key", env("METRONOME_TLS_KEY", ""), "private key (PEM) of --tls-cert; re-read on SIGHUP [METRONOME_TLS_KEY]")
	flags.StringVar(&secure.redirectAddr, "http-redirect-addr", env("METRONOME_HTTP_REDIRECT_ADDR", ""), "with --tls-cert: also listen on this address (e.g. 0.0.0.0:80) for plain HTTP and answer every request with 308 to the same URL over https on --addr; off when empty [METRONOME_HTTP_REDIRECT_ADDR]")
	var access authFlags
	flags.StringVar(&access.mode, "auth", env("METRONOME_AUTH", ""), `who may connect: "token" (a token in the URL path /k/<token>/, checked against --auth-keys) or "none" (everyone); default none on a loopback --addr, required on any other [METRONOME_AUTH]`)
	flags.StringVar(&access.secretFile, "auth-secret-file", env("METRONOME_AUTH_SECRET_FILE", ""), `signing key of --auth token (PEM, from metronome token keygen): tokens it signs are accepted; the same file mints them: metronome token --auth-secret-file FILE --app APPID [METRONOME_AUTH_SECRET_FILE]`)
	flags.StringVar(&access.keysFile, "auth-keys", env("METRONOME_AUTH_KEYS", ""), `keys file of --auth token: lines "<kid> ed25519 <public key>" and "static <secret> apps=... rights=..."; reloaded on SIGHUP [METRONOME_AUTH_KEYS]`)
	flags.BoolVar(&access.insecure, "insecure-no-auth", envBool("METRONOME_INSECURE_NO_AUTH", false), "allow --auth none on an address that is not loopback: anyone who can reach it may join any session and write files [METRONOME_INSECURE_NO_AUTH]")
	var clusterOptions clusterFlags
	clusterOptions.register(flags)
	if code, done := parseFlags(flags, serveUsage, args, stderr); done {
		return code
	}
	logger, err := newLogger(stderr, *logLevel, *logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 2
	}
	coalesce, err := coalesceMaxConfig(*coalesceMax)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 2
	}
	proxies, err := server.ParseTrustedProxies(*trustedProxies)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve: --trusted-proxies:", err)
		return 2
	}
	admin, err := adminSettings(flags, *adminAddr, *debugAddr)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 2
	}
	origins, err := server.ParseAllowedOrigins(*allowedOrigins)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve: --allowed-origins:", err)
		return 2
	}
	authMode, verifier, err := authSettings(*addr, access, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 2
	}
	certificates, err := tlsSettings(secure)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 2
	}
	var st store.Store
	var clustered *clusterSetup
	if clusterOptions.enabled() {
		clustered, err = openCluster(clusterOptions, *dataDir, *addr, certificates != nil, logger) // serve_cluster.go
		if err != nil {
			fmt.Fprintln(stderr, "metronome serve:", err)
			return 1
		}
		defer clustered.close()
		st = clustered.store
		proxies = append(proxies, clustered.trusted...)
	} else if st, err = openStore(*dataDir, *durable, logger); err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 1
	}
	if *dataDir != "" && *durable && clustered == nil {
		ensureProcsForDurableSyncs(logger)
	}
	defer func() {
		if clustered != nil {
			return // closed by clustered.close
		}
		if err := st.Close(); err != nil {
			// What was not synced stays in the journal and is replayed at
			// the next start; the exit status tells a supervisor that this
			// stop was not clean.
			logger.Error("closing the store", "err", err)
			if code == 0 {
				code = 1
			}
		}
	}()
	config := server.Config{
		Addr:                  *addr,
		TLS:                   tlsConfig(certificates),
		HTTPRedirectAddr:      secure.redirectAddr,
		Store:                 st,
		TrustedProxies:        proxies,
		AllowedOrigins:        origins,
		Auth:                  authMode,
		AuthVerifier:          verifier,
		InsecureNoAuth:        access.insecure,
		WebRoot:               *webRoot,
		CroquetClient:         *croquetClient,
		Logger:                logger,
		FileBytesMax:          *fileBytesMax,
		FilesDiskReserveBytes: *filesDiskReserve,
		FilesSessionBytesMax:  *filesSessionBytesMax,
		FilesTotalBytesMax:    *filesBytesMax,
		FileTransferTimeout:   *fileTransferTimeout,
		ConnectionsMax:        connectionsWithinFileLimit(*connectionsMax, openFilesLimit(), logger),
		OpenConnectionsMax:    openConnectionsMax(openFilesLimit()),
		ConnectionsPerIPMax:   *connectionsPerIP,
		JoinsPerIPPerSecond:   *joinsPerIPRate,
		JoinsPerIPBurst:       *joinsPerIPBurst,
		SessionsMax:           *sessionsMax,
		QueueAgeMax:           *queueAgeMax,
		SessionRetention:      *sessionRetention,
		CoalesceMax:           coalesce,
	}
	if clustered != nil {
		config.Cluster = clustered.node
		if !isSet(flags, "session-retention", "METRONOME_SESSION_RETENTION") {
			config.SessionRetention = -1 // not in cluster mode yet (server.Config.Cluster)
		}
	}
	srv, err := server.New(config)
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 1
	}
	adminListener, err := listenAdmin(admin, logger) // before Start: a refusal leaves nothing running
	if err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 1
	}
	if err := srv.Start(); err != nil {
		fmt.Fprintln(stderr, "metronome serve:", err)
		return 1
	}
	logAccessControl(logger, config, access.keysFile)
	logTLS(logger, certificates, srv)
	stopAdmin := serveAdmin(adminListener, srv.AdminHandler(), logger)
	defer stopAdmin()
	logger.Info("metronome serving", "addr", srv.Addr(), "url", srv.URL(), "data_dir", *dataDir, "durable", *durable, "web_root", *webRoot)
	if authMode == server.AuthToken {
		fmt.Fprintf(stdout, "metronome serving on %s (demo page; clients need a token: box %sk/<token>/)\n", srv.URL(), srv.URL())
	} else {
		fmt.Fprintf(stdout, "metronome serving on %s (demo page; reflector at %s)\n", srv.URL(), reflectorURL(srv))
	}

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	if authMode == server.AuthToken || certificates != nil {
		signal.Notify(signals, syscall.SIGHUP) // something to reload
	}
	received := <-signals
	for received == syscall.SIGHUP {
		if authMode == server.AuthToken {
			reloadKeys(logger, srv, access)
		}
		if certificates != nil {
			reloadCertificate(logger, certificates)
		}
		received = <-signals
	}
	logger.Info("shutting down: persisting sessions and asking clients to reconnect", "signal", received.String())
	ctx, cancel := context.WithTimeout(context.Background(), server.DefaultShutdownTimeout)
	defer cancel()
	go func() {
		for received := range signals {
			if received != syscall.SIGHUP { // a reload request is no reason to stop
				logger.Warn("second signal: exiting now")
				os.Exit(1)
			}
		}
	}()
	if err := srv.Shutdown(ctx); err != nil {
		logger.Error("shutdown incomplete", "err", err)
		return 1
	}
	return 0
}

// durableProcsMin is the least GOMAXPROCS in durable mode. The journal's
// fdatasync is a system call that keeps its P while the disk flushes
// (0.2-0.6 ms here, longer on slower disks), and the runtime hands that P
// to other goroutines only now and then: with one P the whole server
// stops for every sync. Measured with the server pinned to one core at
// 100 sessions x 10 clients x 5 msg/s: p50 50-57 ms with GOMAXPROCS=1,
// 3-12 ms with 2 (docs/benchmarks.md, "Durable commit micro-benchmarks").
// Two Ps on one CPU cost nothing while one of them waits in the kernel.
const durableProcsMin = 2

// ensureProcsForDurableSyncs raises GOMAXPROCS to durableProcsMin, unless
// the operator chose it with the GOMAXPROCS environment variable (the
// default follows the CPUs, or the container's CPU limit: often 1).
func ensureProcsForDurableSyncs(logger *slog.Logger) {
	if _, chosen := os.LookupEnv("GOMAXPROCS"); chosen {
		return
	}
	if procs := runtime.GOMAXPROCS(0); procs < durableProcsMin {
		runtime.GOMAXPROCS(durableProcsMin)
		logger.Info("durable mode: GOMAXPROCS raised so that the journal's syncs never stop the server",
			"from", procs, "to", durableProcsMin)
	}
}

// filesReservedForServer is how many open files --connections-max leaves
// to the rest of the server: the listener, the journal and the session
// logs it keeps open, uploads and downloads in flight, the epoll poller.
const filesReservedForServer = 512

// filesLimitUnbounded: an open-file limit above it (RLIM_INFINITY, or
// close to it) is no bound worth deriving limits from.
const filesLimitUnbounded = 1 << 30

// connectionsWithinFileLimit returns connectionsMax, lowered (with a
// warning) so that WebSocket connections cannot use up the open-file limit:
// idle upgrades would otherwise take the descriptors that the journal,
// session logs and file transfers of running sessions need.
func connectionsWithinFileLimit(connectionsMax int, filesLimit uint64, logger *slog.Logger) int {
	if filesLimit == 0 || filesLimit > filesLimitUnbounded {
		return connectionsMax
	}
	room := int64(filesLimit) - filesReservedForServer
	if room < 1 {
		room = 1
	}
	if int64(connectionsMax) <= room {
		return connectionsMax
	}
	logger.Warn("--connections-max lowered to fit the open-file limit (raise it with ulimit -n, or LimitNOFILE= in a systemd unit)",
		"connections_max", connectionsMax, "open_files_limit", filesLimit, "reserved", filesReservedForServer, "now", room)
	return int(room)
}

// openConnectionsMax is how many TCP connections (HTTP and WebSocket) the
// server keeps open at once for an open-file limit: the limit less
// filesReservedForServer; 0 (no bound) when the limit is unknown. Beyond
// it new connections wait in the listen backlog (server/listenlimit.go).
func openConnectionsMax(filesLimit uint64) int {
	if filesLimit == 0 || filesLimit > filesLimitUnbounded {
		return 0
	}
	return int(max(int64(filesLimit)-filesReservedForServer, 1))
}

// openStore opens the sessions' and files' store: on disk in dataDir, or
// in memory when dataDir is empty.
func openStore(dataDir string, durable bool, logger *slog.Logger) (store.Store, error) {
	if dataDir == "" {
		return memstore.New(), nil
	}
	diskStore, err := diskstore.Open(dataDir, diskstore.Options{Durable: durable})
	if err != nil {
		return nil, fmt.Errorf("opening data dir: %w", err)
	}
	recovery := diskStore.Recovery()
	if recovery.Replayed > 0 {
		logger.Warn("data dir was not closed cleanly: recovered the sessions from the journal",
			"dir", dataDir, "entries", recovery.Replayed)
	}
	for _, damage := range recovery.JournalDamage {
		logger.Error("damaged journal: replayed what could be read around the damage; the file was kept for inspection",
			"damage", damage)
	}
	for _, quarantined := range recovery.Quarantined {
		logger.Error("damaged session quarantined: it starts on a new timeline, its clients rejoin from scratch",
			"session", quarantined.Session, "reason", quarantined.Reason, "moved_to", quarantined.Quarantine)
	}
	return diskStore, nil
}

// coalesceMaxConfig turns --coalesce-max into server.Config.CoalesceMax. The
// flag's 0 turns holding off: it becomes server.CoalesceOff, because the
// Config's zero value means server.DefaultCoalesceMax.
func coalesceMaxConfig(flag time.Duration) (time.Duration, error) {
	switch {
	case flag < 0:
		return 0, fmt.Errorf("--coalesce-max must not be negative (0 turns holding off), got %s", flag)
	case flag == 0:
		return server.CoalesceOff, nil
	}
	return flag, nil
}

// parseFlags parses a command's flags with a teaching usage text. done
// reports that the command must exit with code (after --help or an error).
func parseFlags(flags *flag.FlagSet, usage string, args []string, stderr io.Writer) (code int, done bool) {
	flags.Usage = func() {
		fmt.Fprint(stderr, usage)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, true
		}
		return 2, true
	}
	if flags.NArg() > 0 {
		fmt.Fprintf(stderr, "metronome %s: unexpected argument %q\n", flags.Name(), flags.Arg(0))
		return 2, true
	}
	return 0, false
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var slogLevel slog.Level
	if err := slogLevel.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %q is not debug, info, warn or error", level)
	}
	options := &slog.HandlerOptions{Level: slogLevel}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, options)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, options)), nil
	}
	return nil, fmt.Errorf("--log-format: %q is not text or json", format)
}

func env(name, fallback string) string {
	if value, ok := os.LookupEnv(name); ok {
		return value
	}
	return fallback
}

func envBool(name string, fallback bool) bool {
	if value, ok := os.LookupEnv(name); ok {
		if parsed, err := strconv.ParseBool(value); err == nil {
			return parsed
		}
		fmt.Fprintf(os.Stderr, "metronome: ignoring %s=%q: not a boolean\n", name, value)
	}
	return fallback
}

func envDuration(name string, fallback time.Duration) time.Duration {
	if value, ok := os.LookupEnv(name); ok {
		if parsed, err := time.ParseDuration(value); err == nil {
			return parsed
		}
		fmt.Fprintf(os.Stderr, "metronome: ignoring %s=%q: not a duration (e.g. 20ms)\n", name, value)
	}
	return fallback
}

func envFloat(name string, fallback float64) float64 {
	if value, ok := os.LookupEnv(name); ok {
		if parsed, err := strconv.ParseFloat(value, 64); err == nil {
			return parsed
		}
		fmt.Fprintf(os.Stderr, "metronome: ignoring %s=%q: not a number\n", name, value)
	}
	return fallback
}

func envInt(name string, fallback int64) int64 {
	if value, ok := os.LookupEnv(name); ok {
		if parsed, err := strconv.ParseInt(value, 10, 64); err == nil {
			return parsed
		}
		fmt.Fprintf(os.Stderr, "metronome: ignoring %s=%q: not an integer\n", name, value)
	}
	return fallback
}

// defaultCroquetClient is the Croquet client module of an npm install in
// the working directory, if there is one.
func defaultCroquetClient() string {
	const installed = "node_modules/@croquet/croquet/pub/croquet.esm.js"
	if _, err := os.Stat(installed); err == nil {
		return installed
	}
	return ""
}
