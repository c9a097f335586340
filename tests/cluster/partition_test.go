package cluster

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// routesCutFor is how long TestClusterRoutesCut keeps the node cut off.
const routesCutFor = 8 * time.Second

// TestClusterRoutesCut: the NATS routes between the three nodes go
// through TCP proxies (one per ordered pair of nodes, dialling from
// 127.0.0.2 so that no route bypasses them: startClusterWith). 5 sessions × 3 clients behind the
// round-robin proxy publish every 100 ms; after 2 s every route to and
// from the node that owns the most sessions (one that leads neither the
// sessions stream nor the owners bucket, if there is one) is cut for 8 s,
// then healed; the clients go on 4 s more. The cut node reaches no
// majority: it must stop its sessions before its lease could end
// (docs/cluster.md, "Keeping the lease"), its clients reconnect elsewhere
// (through the client proxy, which may send them to the cut node again:
// it cannot claim anything without JetStream), and the two other nodes
// take the sessions over once the lease has expired. Besides the replica
// invariants (a cut node that went on stamping next to a new owner would
// make the replicas differ): every session the cut node owned was claimed
// by another node during the cut, and the cut node's log says it lost the
// ownership. The time from the cut to each session's first new stamped
// event is logged.
func TestClusterRoutesCut(t *testing.T) {
	skipShort(t)
	c := startClusterWith(t, 3, true)
	checkRoutesProxied(t, c)
	l := startLoad(t, c, 5, 3)
	time.Sleep(2 * time.Second) // the workload before the fault

	owner := c.settledOwners(t, l.ids, 15*time.Second)
	owned := map[*node][]string{}
	for _, id := range l.ids {
		owned[owner[id]] = append(owned[owner[id]], id)
	}
	leaders, description := c.streamLeaders()
	leads := func(nd *node) bool { return nd.name == leaders[sessionsStream] || nd.name == leaders[ownersStream] }
	most := func(eligible func(*node) bool) *node {
		var best *node
		for _, nd := range c.nodes {
			if eligible(nd) && len(owned[nd]) > 0 && (best == nil || len(owned[nd]) > len(owned[best])) {
				best = nd
			}
		}
		return best
	}
	victim := most(func(nd *node) bool { return !leads(nd) })
	if victim == nil {
		victim = most(func(*node) bool { return true })
	}
	var parts []string
	for _, nd := range c.nodes {
		parts = append(parts, fmt.Sprintf("%s owns %d", nd.name, len(owned[nd])))
	}
	t.Logf("ownership: %s; %s", strings.Join(parts, ", "), description)
	if leads(victim) {
		t.Logf("%s (cut) leads a stream: %s; those streams elect a new leader on the majority side", victim.name, description)
	}
	// What the logs said before the cut: a claim or an ownership lost
	// must come during the cut, not before.
	claimsBefore := map[string]int{}
	for _, id := range owned[victim] {
		claimsBefore[id] = claimsElsewhere(c, victim, id)
	}
	lostBefore := map[string]int{}
	for _, id := range owned[victim] {
		lostBefore[id] = len(victim.logLines(id, "session ownership lost"))
	}

	cutAt := time.Now()
	c.cutRoutes(victim)
	t.Logf("cut every route to and from %s (owner of %d sessions) at +0", victim.name, len(owned[victim]))
	time.Sleep(routesCutFor)
	claimsDuringCut := map[string]int{}
	for _, id := range owned[victim] {
		claimsDuringCut[id] = claimsElsewhere(c, victim, id) - claimsBefore[id]
	}
	during := "asked of the cut node: not asked"
	if c.nodes[0] != victim { // streamLeaders asks the first node
		_, during = c.streamLeaders()
	}
	c.healRoutes(victim)
	healedAt := time.Now()
	t.Logf("healed the routes of %s at +%v (leaders at the end of the cut: %s)", victim.name,
		healedAt.Sub(cutAt).Round(time.Millisecond), during)
	time.Sleep(4 * time.Second) // the workload after the fault
	l.settle(t)
	resumed := l.checkResumed(t, cutAt, 3*time.Second)

	var victimNames, otherNames []string
	for _, id := range l.ids {
		if slices.Contains(owned[victim], id) {
			victimNames = append(victimNames, l.nameOf[id])
		} else {
			otherNames = append(otherNames, l.nameOf[id])
		}
	}
	t.Logf("time from the cut to the first event stamped after it: sessions of the cut node: %s; other sessions: %s",
		resumeSummary(resumed, victimNames), resumeSummary(resumed, otherNames))
	for _, name := range victimNames {
		if d, ok := resumed[name]; ok {
			t.Logf("session %s (cut node's): first new event stamped %v after the cut", name, d.Round(time.Millisecond))
		}
	}
	stalls := l.stalls(cutAt)
	t.Logf("longest time without a new event from the cut on: sessions of the cut node: %s; other sessions: %s",
		resumeSummary(stalls, victimNames), resumeSummary(stalls, otherNames))

	after := c.settledOwners(t, l.ids, 15*time.Second)
	for _, id := range owned[victim] {
		lost := len(victim.logLines(id, "session ownership lost")) - lostBefore[id]
		if claimsDuringCut[id] == 0 {
			t.Errorf("session %s: no other node claimed or resumed it while %s was cut off", l.nameOf[id], victim.name)
		}
		if lost == 0 {
			t.Errorf("session %s: %s's log does not say that it lost the ownership", l.nameOf[id], victim.name)
		}
		if after[id] == victim && len(victim.logLines(id, "session claimed")) < 2 {
			t.Errorf("session %s: %s holds it again after the heal without a new claim", l.nameOf[id], victim.name)
		}
		t.Logf("session %s: claims or resumes elsewhere during the cut %d, ownership lost on %s %d, owner after %s",
			l.nameOf[id], claimsDuringCut[id], victim.name, lost, after[id].name)
	}
	for _, pattern := range []string{"session ownership lost", "does not reach a majority"} {
		lines := victim.logLines(pattern)
		t.Logf("%s log: %d lines with %q", victim.name, len(lines), pattern)
		for _, line := range firstLines(lines, 2) {
			t.Logf("    %s", line)
		}
	}
	for _, nd := range c.nodes {
		if samples, err := c.metrics(nd); err == nil {
			t.Logf("%s: owned %v, claims %v, claims refused %v, acquire failed %v, ownership lost %v, leases lost %v, store errors %v, closes 4003 %v",
				nd.name, samples["metronome_cluster_owned_sessions"], samples["metronome_cluster_claims_total"],
				samples["metronome_cluster_claims_refused_total"], samples["metronome_cluster_acquire_failed_total"],
				samples["metronome_cluster_ownership_lost_total"], samples["metronome_cluster_leases_lost_total"],
				samples["metronome_store_errors_total"], samples[`metronome_closes_total{code="4003"}`])
		}
	}
	parts = parts[:0]
	for _, id := range owned[victim] {
		parts = append(parts, fmt.Sprintf("%s→%s", l.nameOf[id], after[id].name))
	}
	t.Logf("the cut node's sessions: %s", strings.Join(parts, " "))
}

// claimsElsewhere counts the lines of the nodes other than nd that say
// they claimed the session or resumed it from storage.
func claimsElsewhere(c *testCluster, nd *node, id string) int {
	n := 0
	for _, other := range c.nodes {
		if other != nd {
			n += len(other.logLines(id, "session claimed")) + len(other.logLines(id, "session resumed from storage"))
		}
	}
	return n
}

// checkRoutesProxied checks, in the nodes' logs, that each node has a
// route to each other node and that every route it dialed went to one of
// its route proxies, never to another node's --cluster-listen address
// directly (a route learned by gossip would bypass the proxies, and the
// cut would not cut it).
func checkRoutesProxied(t *testing.T, c *testCluster) {
	t.Helper()
	ok, last := waitUntil(t, 15*time.Second, func() (bool, string) {
		var problems []string
		for _, nd := range c.nodes {
			created := nd.logLines("Route connection created")
			if len(created) < len(c.nodes)-1 {
				problems = append(problems, fmt.Sprintf("%s logged %d routes created", nd.name, len(created)))
			}
			for _, other := range c.nodes {
				if other == nd {
					continue
				}
				_, port, _ := strings.Cut(other.route, ":")
				if direct := nd.logLines("Route connection created (", ":"+port+")"); len(direct) > 0 {
					t.Fatalf("%s dialed %s's route port directly, bypassing the proxies: %s", nd.name, other.name, direct[0])
				}
				if nd.routesOut[other].accepted.Load() == 0 {
					problems = append(problems, fmt.Sprintf("no connection through the proxy %s→%s", nd.name, other.name))
				}
			}
		}
		return len(problems) == 0, strings.Join(problems, "; ")
	})
	if !ok {
		t.Fatalf("routes not up through the proxies within 15 s: %s", last)
	}
	var counts []string
	for _, nd := range c.nodes {
		for _, other := range c.nodes {
			if other != nd {
				counts = append(counts, fmt.Sprintf("%s→%s %d", nd.name, other.name, nd.routesOut[other].accepted.Load()))
			}
		}
	}
	t.Logf("routes up through the proxies (connections accepted: %s)", strings.Join(counts, ", "))
}
