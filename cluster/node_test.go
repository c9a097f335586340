package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store/jsstore"
)

// TestNodeOwnership runs two nodes of a 3-node embedded cluster: who
// forwards where, claiming, releasing, and losing a lease.
func TestNodeOwnership(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	servers := startEmbeddedCluster(t, 3)
	const ttl = time.Second
	nodes := make([]*Node, 2)
	stores := make([]*jsstore.Store, 2)
	for i := range nodes {
		name := fmt.Sprintf("n%d", i+1)
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
			t.Fatal(err)
		}
		stores[i], err = OpenStore(ctx, js, jsstore.Options{Replicas: 3, LeaseTTL: ttl, Address: "http://" + name + ".example:8888"}, nil)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if nodes[i], err = NewNode(NodeOptions{Name: name, Store: stores[i], LeaseTTL: ttl}); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()

	// Nobody owns "s": both would serve it.
	for _, n := range nodes {
		if address, err := n.Forward(ctx, "s"); err != nil || address != "" {
			t.Fatalf("%s: Forward before any claim = %q, %v; want \"\"", n.Name(), address, err)
		}
	}
	first, err := nodes[0].Acquire(ctx, "s")
	if err != nil {
		t.Fatalf("n1: Acquire: %v", err)
	}
	if address, err := nodes[1].Forward(ctx, "s"); err != nil || address != "http://n1.example:8888" {
		t.Fatalf("n2: Forward = %q, %v; want n1's address", address, err)
	}
	if address, _ := nodes[0].Forward(ctx, "s"); address != "" {
		t.Fatalf("n1: Forward of its own session = %q, want \"\"", address)
	}
	if _, err := nodes[1].Acquire(ctx, "s"); !errors.Is(err, jsstore.ErrLeaseHeld) {
		t.Fatalf("n2: Acquire of n1's session: %v, want ErrLeaseHeld", err)
	}

	// n1 keeps the lease past several TTLs by renewing it.
	time.Sleep(3 * ttl)
	select {
	case <-first.Lost():
		t.Fatalf("n1 lost a lease it renews: %v", first.Err())
	default:
	}
	if address, _ := nodes[1].Forward(ctx, "s"); address != "http://n1.example:8888" {
		t.Fatalf("n2: Forward after 3 TTLs = %q, want n1's address", address)
	}

	// Released, n2 claims it at once.
	first.Release()
	deadline := time.Now().Add(5 * time.Second)
	var second interface {
		Lost() <-chan struct{}
		Err() error
		Release()
	}
	for {
		second, err = nodes[1].Acquire(ctx, "s")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n2: Acquire after n1 released: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}

	// n2's lease disappears (as if it expired while the leases' leader was
	// being elected) and nobody claims it: n2 claims it again and keeps
	// the session.
	// (KV reads may be served by a replica that has not applied the claim
	// yet: read until it shows.)
	currentOf := func(owner string) jsstore.Lease {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			current, err := stores[0].CurrentLease(ctx, "s")
			if err == nil && current.Owner == owner {
				return current
			}
			if time.Now().After(deadline) {
				t.Fatalf("CurrentLease = %+v, %v; want %s's", current, err, owner)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if err := stores[0].Release(ctx, currentOf("n2")); err != nil {
		t.Fatalf("deleting n2's lease: %v", err)
	}
	deadline = time.Now().Add(2 * ttl)
	for nodes[1].reclaims.Load() == 0 {
		select {
		case <-second.Lost():
			t.Fatalf("n2 gave the session up although nobody claimed it: %v", second.Err())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("n2 did not claim its vanished lease again")
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Now another node takes it (deleted, then claimed by n1 before n2's
	// next renewal): n2's renewal and claim fail, and Lost closes.
	for attempt := 0; ; attempt++ {
		// (n2 may claim it again between the two steps: then again.)
		if err := stores[0].Release(ctx, currentOf("n2")); err != nil {
			t.Fatalf("deleting n2's lease: %v", err)
		}
		_, err := stores[0].Claim(ctx, "s", "n1")
		if err == nil {
			break
		}
		if !errors.Is(err, jsstore.ErrLeaseHeld) || attempt == 10 {
			t.Fatalf("n1 claiming: %v", err)
		}
	}
	select {
	case <-second.Lost():
		if !errors.Is(second.Err(), jsstore.ErrLeaseLost) {
			t.Fatalf("Err = %v, want ErrLeaseLost", second.Err())
		}
	case <-time.After(2 * ttl):
		t.Fatal("n2 did not notice that n1 took its session")
	}
	closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	for _, n := range nodes {
		n.Close(closeCtx)
		if n.Owned() != 0 {
			t.Fatalf("%s owns %d sessions after Close", n.Name(), n.Owned())
		}
	}
}
