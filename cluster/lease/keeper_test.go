package lease

import "testing"

const (
	testTTL    = 1500
	testMargin = 150
)

func TestKeeperRenewsEveryThirdOfTheTTL(t *testing.T) {
	k := New(testTTL, testMargin, 0)
	if e := k.Tick(0); e.Renew || e.Stop || e.Wake != testTTL/3 {
		t.Fatalf("Tick(0) = %+v, want no renewal, wake at %d", e, testTTL/3)
	}
	e := k.Tick(testTTL / 3)
	if !e.Renew {
		t.Fatalf("Tick(TTL/3) = %+v, want a renewal", e)
	}
	// While the renewal is in flight, nothing more is sent; the wake is
	// the end of the lease.
	if e := k.Tick(testTTL/3 + 10); e.Renew || e.Wake != testTTL-testMargin {
		t.Fatalf("Tick during the renewal = %+v, want no renewal, wake at %d", e, testTTL-testMargin)
	}
	// Acknowledged: the lease counts from when the renewal was sent.
	e = k.Renewed(testTTL/3+20, testTTL/3)
	if e.Renew || e.Stop || e.Wake != 2*testTTL/3 {
		t.Fatalf("Renewed = %+v, want the next renewal at %d", e, 2*testTTL/3)
	}
	if got := k.ValidUntil(); got != testTTL/3+testTTL-testMargin {
		t.Fatalf("ValidUntil = %d, want %d", got, testTTL/3+testTTL-testMargin)
	}
}

func TestKeeperStopsBeforeTheLeaseEnds(t *testing.T) {
	k := New(testTTL, testMargin, 0)
	if !k.Tick(testTTL / 3).Renew {
		t.Fatal("no renewal at TTL/3")
	}
	// The renewal hangs (a partition): at TTL - margin the node stops,
	// before any other node can claim the lease.
	if e := k.Tick(testTTL - testMargin - 1); e.Stop {
		t.Fatalf("stopped early: %+v", e)
	}
	e := k.Tick(testTTL - testMargin)
	if !e.Stop || e.Reason == "" {
		t.Fatalf("Tick(TTL - margin) = %+v, want Stop with a reason", e)
	}
	if !k.Stopped() {
		t.Fatal("Stopped() = false after Stop")
	}
	// A late acknowledgement does not bring the ownership back.
	if e := k.Renewed(testTTL, testTTL/3); e.Stop || e.Renew {
		t.Fatalf("after Stop: %+v, want nothing", e)
	}
}

func TestKeeperRetriesFailedRenewals(t *testing.T) {
	k := New(testTTL, testMargin, 0)
	k.Tick(testTTL / 3)
	e := k.RenewFailed(testTTL/3+5, testTTL/3, false)
	if e.Renew || e.Stop || e.Wake != testTTL/3+5+RetryInterval {
		t.Fatalf("RenewFailed = %+v, want a retry at %d", e, testTTL/3+5+RetryInterval)
	}
	if e := k.Tick(testTTL/3 + 5 + RetryInterval); !e.Renew {
		t.Fatalf("no retry after RetryInterval: %+v", e)
	}
	// The retry succeeds: back to the normal rhythm.
	if e := k.Renewed(testTTL/3+120, testTTL/3+105); e.Wake != testTTL/3+105+testTTL/3 {
		t.Fatalf("Renewed after a retry = %+v, want the next renewal a third later", e)
	}
}

func TestKeeperStopsAtOnceWhenTheLeaseIsLost(t *testing.T) {
	k := New(testTTL, testMargin, 0)
	k.Tick(testTTL / 3)
	e := k.RenewFailed(testTTL/3+5, testTTL/3, true)
	if !e.Stop {
		t.Fatalf("RenewFailed(lost) = %+v, want Stop", e)
	}
	if e := k.Tick(testTTL / 2); e.Stop || e.Renew {
		t.Fatalf("Stop given twice, or a renewal after it: %+v", e)
	}
}

func TestKeeperNeverRenewsAnOlderLease(t *testing.T) {
	k := New(testTTL, testMargin, 1000)
	k.Tick(1000 + testTTL/3)
	// An acknowledgement of a renewal sent before the claim cannot move
	// the lease's start back.
	k.Renewed(1000+testTTL/3+1, 900)
	if got := k.ValidUntil(); got != 1000+testTTL-testMargin {
		t.Fatalf("ValidUntil = %d, want %d", got, 1000+testTTL-testMargin)
	}
}

func TestKeeperKeepsTheSessionWhileTheClusterElects(t *testing.T) {
	k := New(testTTL, testMargin, 0)
	k.Observe(0, true)
	k.Tick(testTTL / 3)
	// JetStream elects a new leader for the leases: renewals get no
	// answer, but the node reaches a majority: it keeps the session and
	// keeps trying.
	if e := k.RenewFailed(testTTL/3+2000, testTTL/3, false); e.Stop {
		t.Fatalf("stopped while reaching a majority: %+v", e)
	}
	e := k.Tick(testTTL/3 + 2000 + RetryInterval)
	if e.Stop || !e.Renew {
		t.Fatalf("past the lease with a majority: %+v, want another renewal", e)
	}
	// The lease expired meanwhile; the node claimed it again.
	e = k.Reclaimed(testTTL/3+2500, testTTL/3+2400)
	if e.Stop || e.Renew || e.Wake != testTTL/3+2400+testTTL/3 {
		t.Fatalf("Reclaimed = %+v, want the normal rhythm from the new claim", e)
	}
	// Cut off from the majority, past the lease: stop.
	if e := k.Observe(testTTL/3+2400+testTTL, false); !e.Stop {
		t.Fatalf("cut off past the lease: %+v, want Stop", e)
	}
}

func TestKeeperStopsWhenCutOff(t *testing.T) {
	k := New(testTTL, testMargin, 0)
	k.Observe(0, true)
	k.Tick(testTTL / 3)
	k.RenewFailed(testTTL/3+100, testTTL/3, false)
	if e := k.Observe(testTTL/3+200, false); e.Stop {
		t.Fatalf("stopped before the lease ran out: %+v", e)
	}
	if e := k.Tick(testTTL - testMargin); !e.Stop {
		t.Fatalf("cut off at TTL - margin: %+v, want Stop", e)
	}
}
