package cluster

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/server"
	"github.com/metronome-sync/metronome/store/jsstore"
)

// counter is the test model: the inputs of every view, in order.
type counter struct{ Inputs []string }

var counterApp = client.App[counter]{
	ID: "io.metronome.test.cluster", Version: "1",
	Events: map[string]client.Handler[counter]{
		"add": func(m *counter, ctx *client.Context, e client.Event) {
			var text string
			if e.Decode(&text) == nil {
				m.Inputs = append(m.Inputs, text)
			}
		},
	},
}

// testNode is one node of an in-process cluster: a server whose store is
// the shared JetStream store and whose Cluster is a Node.
type testNode struct {
	server *server.Server
	node   *Node
	addr   string
}

// startTestNodes starts n servers on the first n NATS servers.
func startTestNodes(t *testing.T, natsServers int, n int, ttl time.Duration) []*testNode {
	t.Helper()
	servers := startEmbeddedCluster(t, natsServers)
	ports := freePorts(t, n)
	nodes := make([]*testNode, n)
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		addr := fmt.Sprintf("127.0.0.1:%d", ports[i])
		nc, err := ConnectEmbedded(servers[i], name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		if err := WaitForJetStream(ctx, js, nil); err != nil {
			cancel()
			t.Fatal(err)
		}
		st, err := OpenStore(ctx, js, jsstore.Options{Replicas: natsServers, LeaseTTL: ttl, Address: "http://" + addr}, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		node, err := NewNode(NodeOptions{Name: name, Store: st, LeaseTTL: ttl})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := server.New(server.Config{Addr: addr, Store: st, Cluster: node,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			srv.Shutdown(ctx)
			node.Close(ctx)
		})
		nodes[i] = &testNode{server: srv, node: node, addr: addr}
	}
	return nodes
}

func joinCounter(t *testing.T, addr, view string) *client.Session[counter] {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := client.Join(ctx, counterApp, client.Options{Reflector: "ws://" + addr + "/reflector",
		Name: "room", Password: "secret", ViewID: view, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("%s joining through %s: %v", view, addr, err)
	}
	t.Cleanup(func() { s.Leave() })
	return s
}

// waitInputs waits until the session's model holds want inputs and returns
// them.
func waitInputs(t *testing.T, s *client.Session[counter], want int) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var inputs []string
		if err := s.ReadConfirmed(func(m *counter, _ int64) { inputs = append([]string(nil), m.Inputs...) }); err != nil {
			t.Fatalf("%s: %v", s.ViewID(), err)
		}
		if len(inputs) >= want {
			return inputs
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s holds %d inputs after 30 s, want %d: %v", s.ViewID(), len(inputs), want, inputs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func metric(t *testing.T, addr, name string) string {
	t.Helper()
	response, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if value, ok := strings.CutPrefix(line, name+" "); ok {
			return value
		}
	}
	return ""
}

// TestForwardAndDrain: a client of the owner and a client forwarded by
// another node share one session; when the owner drains (SIGTERM), the
// other node claims the session, restores it from JetStream, and its
// client goes on from where it was.
func TestForwardAndDrain(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	nodes := startTestNodes(t, 3, 2, time.Second)
	alice := joinCounter(t, nodes[0].addr, "alice") // n1 claims the session
	bob := joinCounter(t, nodes[1].addr, "bob")     // n2 forwards to n1
	if got := metric(t, nodes[1].addr, "metronome_cluster_forwarded_connections_total"); got != "1" {
		t.Fatalf("n2 forwarded %q connections, want 1", got)
	}
	if got := metric(t, nodes[0].addr, "metronome_cluster_owned_sessions"); got != "1" {
		t.Fatalf("n1 owns %q sessions, want 1", got)
	}
	for i := range 5 {
		alice.Publish("add", fmt.Sprintf("alice-%d", i))
		bob.Publish("add", fmt.Sprintf("bob-%d", i))
	}
	fromAlice, fromBob := waitInputs(t, alice, 10), waitInputs(t, bob, 10)
	if strings.Join(fromAlice, ",") != strings.Join(fromBob, ",") {
		t.Fatalf("replicas differ:\nalice %v\nbob   %v", fromAlice, fromBob)
	}

	// n1 drains: it stores the session, asks its clients to reconnect and
	// releases the lease; bob reconnects through n2, which claims the
	// session and restores it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := nodes[0].server.Shutdown(ctx); err != nil {
		t.Fatalf("n1 shutdown: %v", err)
	}
	nodes[0].node.Close(ctx)
	if owned := nodes[0].node.Owned(); owned != 0 {
		t.Fatalf("n1 still owns %d sessions after draining", owned)
	}
	bob.Publish("add", "bob-after")
	after := waitInputs(t, bob, 11)
	if strings.Join(after[:10], ",") != strings.Join(fromBob, ",") || after[10] != "bob-after" {
		t.Fatalf("after the move bob holds %v, want %v then bob-after", after, fromBob)
	}
	if got := metric(t, nodes[1].addr, "metronome_cluster_owned_sessions"); got != "1" {
		t.Fatalf("n2 owns %q sessions after n1 drained, want 1", got)
	}
}
