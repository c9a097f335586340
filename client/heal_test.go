package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// watched is a session whose votes and divergence reports a test reads.
type watched struct {
	*Session[tally]
	mu          sync.Mutex
	votes       map[int64]string // session time → hash
	divergences []Divergence
}

func (w *watched) voteAt(at int64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.votes[at]
}

func (w *watched) reports() []Divergence {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Divergence(nil), w.divergences...)
}

// joinWatched joins with app, recording votes and divergence reports.
func joinWatched(t *testing.T, addr, name string, app App[tally]) *watched {
	t.Helper()
	w := &watched{votes: map[int64]string{}}
	options := Options{Reflector: "ws://" + addr + "/reflector", Name: name, Password: "pw",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnVote: func(at int64, hash string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.votes[at] = hash
		},
		OnDivergence: func(d Divergence) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.divergences = append(w.divergences, d)
		}}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Join(ctx, app, options)
	if err != nil {
		t.Fatalf("Join: %v", err)
	}
	t.Cleanup(func() { s.Leave() })
	w.Session = s
	return w
}

// waitFor polls done for up to timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, done func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !done() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// oddApp is tallyApp(SnapshotIntervalMsMin) with a deliberately
// nondeterministic "add": after the shared handler, odd changes the sum by
// a value of this replica alone.
func oddApp(odd func(m *tally)) App[tally] {
	app := tallyApp(SnapshotIntervalMsMin)
	add := app.Events["add"]
	app.Events["add"] = func(m *tally, ctx *Context, e Event) {
		add(m, ctx, e)
		odd(m)
	}
	return app
}

// TestAMinorityReplicaRecovers: of three replicas, one adds a value of its
// own once. At the next vote it is outside the majority: it reloads the
// majority's snapshot, reports Recovered, and votes the majority's hash at
// the vote after; every input took effect once in each replica.
func TestAMinorityReplicaRecovers(t *testing.T) {
	addr := startServer(t)
	a := joinWatched(t, addr, "heal1", tallyApp(SnapshotIntervalMsMin))
	b := joinWatched(t, addr, "heal1", tallyApp(SnapshotIntervalMsMin))
	added := false
	c := joinWatched(t, addr, "heal1", oddApp(func(m *tally) {
		if !added { // the session goroutine runs model code: no race
			added = true
			m.Sum += 1000
		}
	}))
	for i := 1; i <= 10; i++ {
		if err := a.Publish("add", i); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 30*time.Second, "c recovers", func() bool { return len(c.reports()) > 0 })
	d := c.reports()[0]
	if !d.Local || !d.Majority || !d.Recovered || d.Repeated || d.Reason != "" || len(d.Groups) != 2 ||
		d.Groups[0].Hash == d.LocalHash || !strings.Contains(strings.Join(d.Groups[1].Views, ","), c.ViewID()) {
		t.Fatalf("c's report: %+v", d)
	}
	for _, s := range []*watched{a, b} {
		waitFor(t, 10*time.Second, "the majority reports the split", func() bool { return len(s.reports()) > 0 })
		if r := s.reports()[0]; r.Local || r.Recovered || r.Time != d.Time {
			t.Fatalf("a majority replica's report: %+v, want not local, at %d", r, d.Time)
		}
	}
	// The next vote agrees.
	var next int64
	waitFor(t, 20*time.Second, "a vote after the recovery", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for at := range c.votes {
			if at > d.Time && (next == 0 || at < next) {
				next = at
			}
		}
		return next != 0 && a.voteAt(next) != "" && b.voteAt(next) != ""
	})
	if hash := c.voteAt(next); hash != a.voteAt(next) || hash != b.voteAt(next) {
		t.Fatalf("at the vote after the recovery (time %d) c voted %.16s, a %.16s, b %.16s", next, hash, a.voteAt(next), b.voteAt(next))
	}
	_, model := waitAgree(t, func(model string) bool { return strings.HasSuffix(model, "sum=55") },
		a.Session, b.Session, c.Session)
	if !strings.Contains(model, a.ViewID()+"=10 ") {
		t.Fatalf("model %s, want each of a's 10 inputs once", model)
	}
	if stats := c.Stats(); stats.Recoveries != 1 || !strings.Contains(stats.SnapshotURL, "/files/snapshots/") || len(c.reports()) != 1 {
		t.Fatalf("c: %d recoveries, snapshot %q, %d reports", stats.Recoveries, stats.SnapshotURL, len(c.reports()))
	}
}

// TestAReplicaThatKeepsDivergingIsToldWhy: one of three replicas diverges
// on every input. It recovers RecoveriesInARowMax times, each report after
// the first Repeated and naming the first input after the snapshot it
// recovered from; then it stops reloading and says why. Inputs still take
// effect once everywhere (the per-view counts, which it does not skew).
func TestAReplicaThatKeepsDivergingIsToldWhy(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for RecoveriesInARowMax+1 snapshot votes, 5 s of session time each")
	}
	addr := startServer(t)
	a := joinWatched(t, addr, "heal2", tallyApp(SnapshotIntervalMsMin))
	b := joinWatched(t, addr, "heal2", tallyApp(SnapshotIntervalMsMin))
	local := 0
	c := joinWatched(t, addr, "heal2", oddApp(func(m *tally) {
		local++ // differs on every replay too
		m.Sum += local
	}))
	stop := make(chan struct{})
	published := make(chan int)
	go func() {
		n := 0
		defer func() { published <- n }()
		for {
			select {
			case <-stop:
				return
			case <-time.After(250 * time.Millisecond):
				if a.Publish("add", 1) == nil {
					n++
				}
			}
		}
	}()
	reports := RecoveriesInARowMax + 1
	waitFor(t, time.Duration(reports)*15*time.Second, fmt.Sprintf("%d reports by c", reports), func() bool { return len(c.reports()) >= reports })
	close(stop)
	n := <-published

	got := c.reports()
	for k, d := range got[:reports] {
		if !d.Local || !d.Majority || d.Repeated != (k > 0) {
			t.Fatalf("report %d: %+v, want local, majority, repeated %v", k, d, k > 0)
		}
		if k > 0 {
			// Named: the first input after the snapshot it last recovered
			// from (seqs wrap around: a new session starts at 2^32 - 16).
			suspect := d.Suspect
			if suspect == nil || int32(suspect.Seq-got[k-1].Seq) <= 0 || suspect.What != fmt.Sprintf("event %q from view %s", "add", a.ViewID()) {
				t.Fatalf("report %d names %v, want an add from %s after seq %d", k, suspect, a.ViewID(), got[k-1].Seq)
			}
		}
		if k < RecoveriesInARowMax && (!d.Recovered || d.Reason != "") {
			t.Fatalf("report %d: %+v, want recovered", k, d)
		}
		if k == RecoveriesInARowMax && (d.Recovered || !strings.Contains(d.Reason, "RecoveriesInARowMax") || !strings.Contains(d.Error(), "keeps diverging")) {
			t.Fatalf("report %d: %q, want no reload, naming the bound", k, d.Error())
		}
	}
	t.Logf("the last report: %v", got[reports-1].Error())
	if stats := c.Stats(); stats.Recoveries != RecoveriesInARowMax {
		t.Fatalf("c recovered %d times, want %d", stats.Recoveries, RecoveriesInARowMax)
	}
	counts := func(s *watched) string {
		var out string
		s.Read(func(m *tally, _ int64) { out = fmt.Sprint(m.Counts) })
		return out
	}
	want := fmt.Sprint(map[string]int{a.ViewID(): n})
	waitFor(t, 10*time.Second, "every input once in every replica", func() bool {
		return counts(a) == want && counts(b) == want && counts(c) == want
	})
}
