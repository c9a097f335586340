package cluster

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store/jsstore"
)

// freePorts returns n TCP ports of 127.0.0.1 that were free a moment ago.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	var ports []int
	var listeners []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range listeners {
		l.Close()
	}
	return ports
}

// startEmbeddedCluster starts n embedded NATS servers routed to each other.
func startEmbeddedCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := freePorts(t, n)
	var routes []string
	for _, port := range ports {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", port))
	}
	servers := make([]*server.Server, n)
	for i := range n {
		srv, err := StartEmbedded(EmbeddedOptions{
			ClusterName: "test", NodeName: fmt.Sprintf("n%d", i+1),
			ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes, DataDir: t.TempDir(),
		})
		if err != nil {
			t.Fatalf("StartEmbedded n%d: %v", i+1, err)
		}
		servers[i] = srv
		t.Cleanup(func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		})
	}
	return servers
}

func TestEmbeddedClusterStore(t *testing.T) {
	servers := startEmbeddedCluster(t, 3)
	start := time.Now()
	done := make(chan error, len(servers))
	for i, srv := range servers {
		go func() { done <- openOne(t, i, srv, start) }()
	}
	for range servers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func openOne(t *testing.T, i int, srv *server.Server, start time.Time) error {
	{
		nc, err := ConnectEmbedded(srv, fmt.Sprintf("n%d", i+1))
		if err != nil {
			return err
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := WaitForJetStream(ctx, js, nil); err != nil {
			return err
		}
		t.Logf("n%d: JetStream after %v", i+1, time.Since(start))
		st, err := OpenStore(ctx, js, jsstore.Options{Replicas: 3, LeaseTTL: time.Second}, nil)
		cancel()
		if err != nil {
			return fmt.Errorf("n%d: Open: %v", i+1, err)
		}
		t.Logf("n%d: store after %v", i+1, time.Since(start))
		st.Close()
	}
	return nil
}
