package cluster

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// TestClusterConverges: one session, six clients, two connected directly
// to each of the three nodes, so that the clients on the two nodes that do
// not own the session are forwarded to its owner. Each publishes 20
// events; every replica must end with all 120, the same list, each view's
// events once and in publish order, and the same state.
func TestClusterConverges(t *testing.T) {
	skipShort(t)
	const (
		perNode  = 2
		events   = 20
		interval = 50 * time.Millisecond
	)
	c := startCluster(t, 3)
	w := newWorld(t)
	var specs []joinSpec
	for i, nd := range c.nodes {
		for j := range perNode {
			specs = append(specs, joinSpec{reflector: nd.reflectorURL(), via: nd.name, session: "converge",
				view: fmt.Sprintf("v%d%d", i+1, j+1)})
		}
	}
	joinStart := time.Now()
	members := w.joinAll(t, specs)
	t.Logf("%d clients joined in %v", len(members), time.Since(joinStart).Round(time.Millisecond))

	var publishing sync.WaitGroup
	for k, m := range members {
		publishing.Add(1)
		go func() {
			defer publishing.Done()
			m.publishLoop(time.Duration(k)*interval/time.Duration(len(members)), interval, events, nil)
		}()
	}
	publishing.Wait()
	if n, examples := w.publishErrors(); n > 0 {
		t.Fatalf("%d Publish calls failed, e.g. %q", n, examples)
	}
	expected := w.expected("converge")
	if len(expected) != len(members)*events {
		t.Fatalf("recorded %d publications, want %d", len(expected), len(members)*events)
	}
	complete, state := w.waitQuiet(t, "converge", members, 30*time.Second)
	if !complete {
		t.Errorf("not every client received all %d events within 30 s: %s", len(expected), state)
	}
	list := checkReplicas(t, "converge", members)
	if len(list) != len(expected) {
		t.Errorf("the replicas hold %d events, want %d", len(list), len(expected))
	}
	checkStates(t, "converge", members, 10*time.Second)
	w.checkNoDivergence(t)
	t.Logf("%s", clientStats(members))

	// One node owns (stamps) the session; the clients of the two others
	// are forwarded to it: each of those holds two forwarded connections.
	ids, _ := sessionIDs([]string{"converge"}, map[string][]*member{"converge": members})
	owner := c.settledOwners(t, ids, 10*time.Second)[ids[0]]
	ok, last := waitUntil(t, 10*time.Second, func() (bool, string) {
		description := ""
		good := true
		for _, nd := range c.nodes {
			samples, err := c.metrics(nd)
			if err != nil {
				return false, err.Error()
			}
			open := samples["metronome_cluster_forwarded_connections"]
			want := float64(perNode)
			if nd == owner {
				want = 0
			}
			good = good && open == want
			description += fmt.Sprintf("%s: %v forwarded open (%v in all), owned %v; ", nd.name, open,
				samples["metronome_cluster_forwarded_connections_total"], samples["metronome_cluster_owned_sessions"])
		}
		return good, description
	})
	if !ok {
		t.Errorf("forwarding: want %d open forwarded connections on each node but the owner %s: %s", perNode, owner.name, last)
	} else {
		t.Logf("owner %s; %s", owner.name, last)
	}
}
