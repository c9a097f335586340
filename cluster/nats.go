package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store/jsstore"
)

// EmbeddedOptions configure the NATS server a node embeds (serve
// --cluster-name ...): one server per node, clustered with its peers by
// routes, JetStream on, its files under DataDir.
type EmbeddedOptions struct {
	// ClusterName is the same on every node (--cluster-name).
	ClusterName string
	// NodeName is unique in the cluster (--node-name): the NATS server's
	// name, JetStream's peer name, and the owner named in leases.
	NodeName string
	// ClusterListen is where the node's routes listen ("host:port",
	// --cluster-listen); peers connect there.
	ClusterListen string
	// Routes are the peers' route URLs ("nats://host:port",
	// --cluster-routes); the node's own may be among them.
	Routes []string
	// DataDir holds JetStream's files (a directory of its own per node).
	DataDir string
	// ClientListen, if set, also accepts NATS clients there ("host:port",
	// --nats-listen), e.g. for the nats command-line tool; default a
	// random port on 127.0.0.1. The node itself connects in-process.
	ClientListen string
	// PayloadBytesMax is the largest NATS message (a committed batch of a
	// session): at least a few times the largest client message.
	PayloadBytesMax int32
	// Logger receives the NATS server's notices, warnings and errors.
	Logger *slog.Logger
}

// PayloadBytesMaxDefault is EmbeddedOptions.PayloadBytesMax unless set: a
// batch holds at most a few messages of up to 1 MiB (the reflector's
// message limit) and their record.
const PayloadBytesMaxDefault = 8 << 20

// StartEmbedded starts the node's NATS server and returns it once it
// accepts connections (JetStream may still be electing: see
// WaitForJetStream).
func StartEmbedded(o EmbeddedOptions) (*server.Server, error) {
	if o.ClusterName == "" || o.NodeName == "" || o.ClusterListen == "" {
		return nil, errors.New("cluster: --cluster-name, --node-name and --cluster-listen are all required for an embedded cluster")
	}
	host, port, err := splitHostPort(o.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("cluster: --cluster-listen %q: %w", o.ClusterListen, err)
	}
	// The NATS server only logs a route port it cannot listen on, and then
	// waits for routes forever: find out first.
	probe, err := net.Listen("tcp", o.ClusterListen)
	if err != nil {
		return nil, fmt.Errorf("cluster: --cluster-listen %q: %w", o.ClusterListen, err)
	}
	probe.Close()
	var routes []*url.URL
	for _, route := range o.Routes {
		u, err := url.Parse(strings.TrimSpace(route))
		if err != nil || u.Scheme != "nats" || u.Host == "" {
			return nil, fmt.Errorf("cluster: --cluster-routes entry %q is not a nats://host:port URL", route)
		}
		routes = append(routes, u)
	}
	if o.PayloadBytesMax == 0 {
		o.PayloadBytesMax = PayloadBytesMaxDefault
	}
	options := &server.Options{
		ServerName: o.NodeName,
		JetStream:  true,
		StoreDir:   filepath.Join(o.DataDir, "jetstream"),
		MaxPayload: o.PayloadBytesMax,
		Cluster: server.ClusterOpts{
			Name: o.ClusterName,
			Host: host,
			Port: port,
		},
		Routes: routes,
		NoSigs: true,
	}
	if o.ClientListen == "" {
		// The node connects in-process; the server still needs a client
		// listener (its routes wait for one to start), so it gets a
		// random loopback port.
		options.Host, options.Port = "127.0.0.1", server.RANDOM_PORT
	} else {
		clientHost, clientPort, err := splitHostPort(o.ClientListen)
		if err != nil {
			return nil, fmt.Errorf("cluster: --nats-listen %q: %w", o.ClientListen, err)
		}
		options.Host, options.Port = clientHost, clientPort
	}
	srv, err := server.NewServer(options)
	if err != nil {
		return nil, fmt.Errorf("cluster: NATS server: %w", err)
	}
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	srv.SetLoggerV2(natsLogger{logger.With("component", "nats")}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		return nil, errors.New("cluster: the NATS server did not start within 10 s (is --cluster-listen free?)")
	}
	return srv, nil
}

// ConnectEmbedded connects to the node's own server in-process.
func ConnectEmbedded(srv *server.Server, nodeName string) (*nats.Conn, error) {
	return nats.Connect("", nats.InProcessServer(srv), nats.Name("metronome "+nodeName),
		nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
}

// ConnectURL connects to an external NATS cluster (--nats-url).
func ConnectURL(urls, nodeName string) (*nats.Conn, error) {
	return nats.Connect(urls, nats.Name("metronome "+nodeName),
		nats.MaxReconnects(-1), nats.ReconnectWait(250*time.Millisecond))
}

// WaitForJetStream returns once JetStream answers (a cluster needs a
// majority of its nodes for that), logging every few seconds while it
// waits, or fails when ctx ends.
func WaitForJetStream(ctx context.Context, js jetstream.JetStream, logger *slog.Logger) error {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	started := time.Now()
	lastLog := started
	for {
		attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(attempt)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("cluster: JetStream not available after %v: %w", time.Since(started).Round(time.Second), err)
		}
		if time.Since(lastLog) >= 3*time.Second {
			lastLog = time.Now()
			logger.Info("waiting for JetStream: a majority of the cluster's nodes must be up and routed to each other",
				"waited", time.Since(started).Round(time.Second), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func splitHostPort(address string) (string, int, error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port %q", portText)
	}
	return host, port, nil
}

// natsLogger passes the NATS server's log lines to slog.
type natsLogger struct{ logger *slog.Logger }

func (l natsLogger) Noticef(format string, v ...any) { l.logger.Info(fmt.Sprintf(format, v...)) }
func (l natsLogger) Warnf(format string, v ...any)   { l.logger.Warn(fmt.Sprintf(format, v...)) }
func (l natsLogger) Fatalf(format string, v ...any)  { l.logger.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Errorf(format string, v ...any)  { l.logger.Error(fmt.Sprintf(format, v...)) }
func (l natsLogger) Debugf(format string, v ...any)  { l.logger.Debug(fmt.Sprintf(format, v...)) }
func (l natsLogger) Tracef(format string, v ...any)  {}

// storeAttemptTimeout bounds one attempt of OpenStore. Nodes starting
// together create the same streams at once, and JetStream (2.15) may leave
// all but one of the concurrent creations of a replicated stream without
// an answer: a short attempt, retried, finds the stream the winner made.
const storeAttemptTimeout = 3 * time.Second

// OpenStore opens the cluster's shared store, retrying until ctx ends:
// right after a cluster forms, JetStream may not place a replicated stream
// at once, and concurrent creations by several nodes can go unanswered.
func OpenStore(ctx context.Context, js jetstream.JetStream, options jsstore.Options, logger *slog.Logger) (*jsstore.Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	for {
		attempt, cancel := context.WithTimeout(ctx, storeAttemptTimeout)
		st, err := jsstore.Open(attempt, js, options)
		cancel()
		if err == nil {
			return st, nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("opening the cluster store (replicas %d: at most the number of JetStream servers): %w", options.Replicas, err)
		}
		logger.Info("waiting to open the cluster store", "replicas", options.Replicas, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}
