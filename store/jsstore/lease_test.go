package jsstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestLease(t *testing.T) {
	srv := startServer(t)
	namespace := newNamespace()
	const leaseTTL = time.Second
	a := open(t, connect(t, srv), Options{Namespace: namespace, LeaseTTL: leaseTTL})
	b := open(t, connect(t, srv), Options{Namespace: namespace, LeaseTTL: leaseTTL})
	ctx := context.Background()

	first, err := a.Claim(ctx, "s", "node-a")
	if err != nil {
		t.Fatalf("Claim by node-a: %v", err)
	}
	if _, err := b.Claim(ctx, "s", "node-b"); !errors.Is(err, ErrLeaseHeld) {
		t.Fatalf("Claim by node-b while node-a holds the lease: error = %v, want ErrLeaseHeld", err)
	}
	current, err := b.CurrentLease(ctx, "s")
	if err != nil || current.Owner != "node-a" || current.Epoch != first.Epoch {
		t.Fatalf("CurrentLease = %+v, %v; want node-a, epoch %d", current, err, first.Epoch)
	}

	renewed, err := a.Renew(ctx, first)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	if renewed.Epoch != first.Epoch || renewed.Revision <= first.Revision {
		t.Fatalf("Renew = %+v from %+v: want the same epoch and a higher revision", renewed, first)
	}
	if _, err := a.Renew(ctx, first); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew with a stale revision: error = %v, want ErrLeaseLost", err)
	}
	if current, err := b.CurrentLease(ctx, "s"); err != nil || current.Epoch != first.Epoch {
		t.Fatalf("CurrentLease after renewal = %+v, %v; want epoch %d", current, err, first.Epoch)
	}

	// node-a stops renewing: once the bucket's TTL has passed, node-b
	// claims with a higher epoch.
	var second Lease
	deadline := time.Now().Add(10 * leaseTTL)
	for {
		second, err = b.Claim(ctx, "s", "node-b")
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLeaseHeld) || time.Now().After(deadline) {
			t.Fatalf("Claim by node-b after node-a's lease expired: %v", err)
		}
		time.Sleep(leaseTTL / 10)
	}
	if second.Epoch <= first.Epoch {
		t.Fatalf("epoch after expiry = %d, want more than %d", second.Epoch, first.Epoch)
	}
	if _, err := a.Renew(ctx, renewed); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Renew of the expired lease: error = %v, want ErrLeaseLost", err)
	}
	if err := a.Release(ctx, renewed); !errors.Is(err, ErrLeaseLost) {
		t.Fatalf("Release of the expired lease: error = %v, want ErrLeaseLost", err)
	}

	// Released, the session can be claimed at once, with a higher epoch.
	if err := b.Release(ctx, second); err != nil {
		t.Fatalf("Release: %v", err)
	}
	third, err := a.Claim(ctx, "s", "node-a")
	if err != nil {
		t.Fatalf("Claim after Release: %v", err)
	}
	if third.Epoch <= second.Epoch {
		t.Fatalf("epoch after release = %d, want more than %d", third.Epoch, second.Epoch)
	}
}
