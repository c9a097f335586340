package jsstore

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// testPayloadBytesMax is the test server's max_payload: the conformance
// suite commits a 1 MiB message, above the server's 1 MiB default once
// encoded.
const testPayloadBytesMax = 8 << 20

// startServer runs an embedded NATS server with JetStream, its store in a
// temporary directory, on a random port of 127.0.0.1.
func startServer(t testing.TB) *server.Server {
	t.Helper()
	srv, err := server.NewServer(&server.Options{
		Host:       "127.0.0.1",
		Port:       -1,
		JetStream:  true,
		StoreDir:   t.TempDir(),
		MaxPayload: testPayloadBytesMax,
		NoLog:      true,
		NoSigs:     true,
	})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		t.Fatalf("NATS server not ready for connections")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// connect returns a JetStream context on a new connection: one per
// simulated node.
func connect(t testing.TB, srv *server.Server) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("nats.Connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("jetstream.New: %v", err)
	}
	return js
}

func open(t testing.TB, js jetstream.JetStream, options Options) *Store {
	t.Helper()
	s, err := Open(context.Background(), js, options)
	if err != nil {
		t.Fatalf("Open(%+v): %v", options, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var namespaceCounter atomic.Int64

// newNamespace returns a namespace no other test on the server uses.
func newNamespace() string {
	return fmt.Sprintf("test%d", namespaceCounter.Add(1))
}
