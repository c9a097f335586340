package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/cluster"
	"github.com/metronome-sync/metronome/store/jsstore"
)

// clusterLeaseDefault is --cluster-lease: how long a dead node's sessions
// wait before another node takes them over. Each owned session renews its
// lease every third of it (one JetStream KV write).
const clusterLeaseDefault = 1500 * time.Millisecond

// clusterJetStreamWait bounds how long a node waits at start for JetStream
// (a majority of the embedded cluster's nodes).
const clusterJetStreamWait = 2 * time.Minute

// clusterFlags are serve's cluster-mode flags (docs/cluster.md).
type clusterFlags struct {
	name, node, listen, routes string
	natsURL, natsListen        string
	advertise                  string
	lease                      time.Duration
	replicas                   int
}

func (c *clusterFlags) register(flags *flag.FlagSet) {
	hostname, _ := os.Hostname()
	flags.StringVar(&c.name, "cluster-name", env("METRONOME_CLUSTER_NAME", ""), "cluster mode with an embedded NATS server: the cluster's name, the same on every node (needs --node-name, --cluster-listen, --cluster-routes; docs/cluster.md) [METRONOME_CLUSTER_NAME]")
	flags.StringVar(&c.node, "node-name", env("METRONOME_NODE_NAME", hostname), "cluster mode: this node's name, unique in the cluster (default: the host name) [METRONOME_NODE_NAME]")
	flags.StringVar(&c.listen, "cluster-listen", env("METRONOME_CLUSTER_LISTEN", ""), "cluster mode: host:port where this node's embedded NATS server accepts its peers' routes [METRONOME_CLUSTER_LISTEN]")
	flags.StringVar(&c.routes, "cluster-routes", env("METRONOME_CLUSTER_ROUTES", ""), "cluster mode: comma-separated nats://host:port route addresses of the nodes (this node's own may be listed: the same value on every node) [METRONOME_CLUSTER_ROUTES]")
	flags.StringVar(&c.natsURL, "nats-url", env("METRONOME_NATS_URL", ""), "cluster mode on an external NATS cluster with JetStream (instead of --cluster-name): its client URLs, comma-separated [METRONOME_NATS_URL]")
	flags.StringVar(&c.natsListen, "nats-listen", env("METRONOME_NATS_LISTEN", ""), "cluster mode, embedded: also accept NATS clients (e.g. the nats CLI) on this host:port; default a random port on 127.0.0.1 (the node itself connects in-process) [METRONOME_NATS_LISTEN]")
	flags.StringVar(&c.advertise, "cluster-advertise", env("METRONOME_CLUSTER_ADVERTISE", ""), "cluster mode: the URL at which the other nodes reach this node's --addr (http://host:port), to forward the clients of the sessions this node owns; default: http:// or https:// with --addr's host (the host name when --addr listens on all addresses) [METRONOME_CLUSTER_ADVERTISE]")
	flags.DurationVar(&c.lease, "cluster-lease", envDuration("METRONOME_CLUSTER_LEASE", clusterLeaseDefault), "cluster mode: a session's ownership lease; when its owner dies, another node takes the session over after at most this long (each owned session renews every third of it) [METRONOME_CLUSTER_LEASE]")
	flags.IntVar(&c.replicas, "cluster-replicas", int(envInt("METRONOME_CLUSTER_REPLICAS", 0)), "cluster mode: JetStream replicas of the sessions, leases and files (a write is acknowledged once a majority has it); default: the number of nodes in --cluster-routes up to 3, or 3 with --nats-url [METRONOME_CLUSTER_REPLICAS]")
}

// enabled reports whether any cluster-mode flag asks for cluster mode.
func (c *clusterFlags) enabled() bool { return c.name != "" || c.natsURL != "" }

// clusterSetup is what cluster mode adds to serve: the shared store, the
// node, the peers trusted as proxies, and how to stop it all.
type clusterSetup struct {
	store   *jsstore.Store
	node    *cluster.Node
	trusted []netip.Prefix
	nats    *natsserver.Server // nil with --nats-url
	conn    *nats.Conn
}

// openCluster starts (or connects to) NATS, waits for JetStream, and opens
// the shared store and the node.
func openCluster(c clusterFlags, dataDir, addr string, tlsOn bool, logger *slog.Logger) (*clusterSetup, error) {
	if c.name != "" && c.natsURL != "" {
		return nil, errors.New("--cluster-name (an embedded NATS cluster) and --nats-url (an external one) exclude each other")
	}
	if c.node == "" {
		return nil, errors.New("cluster mode needs --node-name")
	}
	if c.lease < 300*time.Millisecond {
		return nil, fmt.Errorf("--cluster-lease %v is below 300ms: renewals (every third of it) would not fit a JetStream round trip", c.lease)
	}
	advertise, err := advertiseURL(c.advertise, addr, tlsOn)
	if err != nil {
		return nil, err
	}
	setup := &clusterSetup{}
	routes := splitList(c.routes)
	replicas := c.replicas
	if c.name != "" {
		if dataDir == "" {
			return nil, errors.New(`cluster mode keeps JetStream's files in --data-dir: it cannot be ""`)
		}
		setup.nats, err = cluster.StartEmbedded(cluster.EmbeddedOptions{
			ClusterName: c.name, NodeName: c.node, ClusterListen: c.listen, Routes: routes,
			DataDir: dataDir, ClientListen: c.natsListen, Logger: logger,
		})
		if err != nil {
			return nil, err
		}
		setup.conn, err = cluster.ConnectEmbedded(setup.nats, c.node)
		if replicas == 0 {
			replicas = min(max(countNodes(routes, c.listen), 1), 3)
		}
	} else {
		setup.conn, err = cluster.ConnectURL(c.natsURL, c.node)
		if replicas == 0 {
			replicas = 3
		}
	}
	if err != nil {
		setup.close()
		return nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	js, err := jetstream.New(setup.conn)
	if err != nil {
		setup.close()
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), clusterJetStreamWait)
	defer cancel()
	if err := cluster.WaitForJetStream(ctx, js, logger); err != nil {
		setup.close()
		return nil, err
	}
	setup.store, err = cluster.OpenStore(ctx, js, jsstore.Options{Replicas: replicas, LeaseTTL: c.lease, Address: advertise}, logger)
	if err != nil {
		setup.close()
		return nil, err
	}
	// Whether the node reaches a majority of the cluster: with an
	// embedded server, its routes; with an external one, its connection
	// (the external cluster's own partitions are not visible from here).
	majority := func() bool { return setup.conn.IsConnected() }
	if setup.nats != nil {
		majority = cluster.EmbeddedMajority(setup.nats, countNodes(routes, c.listen))
	}
	setup.node, err = cluster.NewNode(cluster.NodeOptions{Name: c.node, Store: setup.store, LeaseTTL: c.lease,
		Majority: majority, Logger: logger})
	if err != nil {
		setup.close()
		return nil, err
	}
	setup.trusted = routeHosts(routes)
	logger.Info("cluster node ready", "node", c.node, "advertise", advertise, "replicas", replicas, "lease", c.lease,
		"embedded", setup.nats != nil)
	return setup, nil
}

// close stops what openCluster started, in reverse order, after the
// server's shutdown (which released the node's sessions).
func (s *clusterSetup) close() {
	if s.node != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		s.node.Close(ctx)
		cancel()
	}
	if s.store != nil {
		_ = s.store.Close()
	}
	if s.conn != nil {
		_ = s.conn.Drain()
	}
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
}

// advertiseURL is --cluster-advertise, or the URL made of --addr.
func advertiseURL(advertise, addr string, tlsOn bool) (string, error) {
	if advertise != "" {
		u, err := url.Parse(advertise)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return "", fmt.Errorf("--cluster-advertise %q must be an http:// or https:// URL with a host", advertise)
		}
		return strings.TrimSuffix(advertise, "/"), nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("--addr %q: %w", addr, err)
	}
	if port == "0" {
		return "", errors.New("cluster mode with --addr port 0 needs --cluster-advertise (the other nodes must know the port)")
	}
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		if host, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("--cluster-advertise is needed: %w", err)
		}
	}
	scheme := "http"
	if tlsOn {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// countNodes counts the distinct route addresses plus this node's own if
// it is not among them.
func countNodes(routes []string, listen string) int {
	seen := map[string]bool{}
	for _, route := range routes {
		if u, err := url.Parse(route); err == nil {
			seen[u.Host] = true
		}
	}
	if !seen[listen] {
		seen[listen] = true
	}
	return len(seen)
}

// routeHosts returns the addresses of the route hosts: the peers, whose
// forwarded upgrades carry their clients' addresses in X-Forwarded-For
// (per-address limits apply to the clients, not to the forwarding node).
func routeHosts(routes []string) []netip.Prefix {
	var prefixes []netip.Prefix
	for _, route := range routes {
		u, err := url.Parse(route)
		if err != nil {
			continue
		}
		if ip, err := netip.ParseAddr(u.Hostname()); err == nil {
			prefixes = append(prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
			continue
		}
		ips, err := net.LookupIP(u.Hostname())
		if err != nil {
			continue
		}
		for _, ip := range ips {
			if addr, ok := netip.AddrFromSlice(ip); ok {
				prefixes = append(prefixes, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
			}
		}
	}
	return prefixes
}

func splitList(list string) []string {
	var items []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}
