package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

const (
	// leaseTTL is --cluster-lease (the default, given explicitly so that
	// the tests say what they assume).
	leaseTTL = 1500 * time.Millisecond
	// startWait bounds the start of a cluster: JetStream needs a majority
	// and the nodes create the streams together.
	startWait = 90 * time.Second
	// tailLines is how much of each node's log a failed test prints.
	tailLines = 80
)

// node is one `metronome serve` process of a test cluster.
type node struct {
	name string
	// addr serves the clients, admin the operator (/sessions, /metrics),
	// route the NATS routes, nats NATS clients (for diagnostics).
	addr, admin, route, nats string
	logPath                  string
	cmd                      *exec.Cmd
	// routesOut are the proxies this node's routes dial through, one per
	// other node (startCluster with proxiedRoutes only).
	routesOut map[*node]*roundRobinProxy
	// exited is closed once the process has been waited for (exitErr).
	exited  chan struct{}
	exitErr error
}

// testCluster is a cluster of nodes started by one test.
type testCluster struct {
	t     *testing.T
	nodes []*node
	http  *http.Client
}

// startCluster starts n nodes together (JetStream needs a majority before
// any of them serves), waits until each logs that it serves, and stops
// them all when the test ends, printing the tail of every node's log if
// the test failed.
func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return startClusterWith(t, n, false)
}

// startClusterWith is startCluster; with proxiedRoutes, every route goes
// through a TCP proxy of its own, one per ordered pair of nodes (node i
// dials node j through routesOut[j] of node i): a test can then cut a
// node off from the others (cutRoutes) and heal it. A proxy per pair, not
// per route port: the proxy in front of a port is also the way between
// the two other nodes.
//
// NATS gossips each route a node accepts as nats-route://<the
// connection's remote IP>:<the peer's own route port>, and the others
// dial that implicit route directly, around the proxies (nats-server
// 2.15 has no option against it). So the route proxies dial from
// routeProxySource (127.0.0.2): the address gossiped is then
// 127.0.0.2:<route port>, where no node listens (they listen on
// 127.0.0.1), and implicit routes fail. checkRoutesProxied checks that
// no route bypasses the proxies.
func startClusterWith(t *testing.T, n int, proxiedRoutes bool) *testCluster {
	t.Helper()
	binary := serverBinary(t)
	directory := t.TempDir()
	ports := freePorts(t, 4*n)
	c := &testCluster{t: t, http: &http.Client{Timeout: 3 * time.Second}}
	var routes []string
	for i := range n {
		c.nodes = append(c.nodes, &node{
			name:    fmt.Sprintf("n%d", i+1),
			addr:    fmt.Sprintf("127.0.0.1:%d", ports[4*i]),
			admin:   fmt.Sprintf("127.0.0.1:%d", ports[4*i+1]),
			route:   fmt.Sprintf("127.0.0.1:%d", ports[4*i+2]),
			nats:    fmt.Sprintf("127.0.0.1:%d", ports[4*i+3]),
			logPath: filepath.Join(directory, fmt.Sprintf("n%d.log", i+1)),
			exited:  make(chan struct{}),
		})
		routes = append(routes, "nats://"+c.nodes[i].route)
	}
	routesOf := func(nd *node) []string { return routes }
	if proxiedRoutes {
		for _, from := range c.nodes {
			from.routesOut = map[*node]*roundRobinProxy{}
			for _, to := range c.nodes {
				if to != from {
					from.routesOut[to] = newProxyFrom(t, []string{to.route}, routeProxySource)
				}
			}
		}
		routesOf = func(nd *node) []string {
			var list []string
			for _, to := range c.nodes {
				if to != nd {
					list = append(list, "nats://"+nd.routesOut[to].Addr())
				}
			}
			return list
		}
	}
	t.Cleanup(c.stop)
	environment := withoutMetronomeVariables(os.Environ())
	for _, nd := range c.nodes {
		logFile, err := os.Create(nd.logPath)
		if err != nil {
			t.Fatal(err)
		}
		args := []string{"serve",
			"--addr", nd.addr, "--admin-addr", nd.admin,
			"--data-dir", filepath.Join(directory, nd.name),
			"--cluster-name", "test", "--node-name", nd.name,
			"--cluster-listen", nd.route, "--cluster-routes", strings.Join(routesOf(nd), ","),
			"--nats-listen", nd.nats,
			"--cluster-lease", leaseTTL.String(),
			"--log-level", "debug"}
		nd.cmd = exec.Command(binary, args...)
		nd.cmd.Env = environment
		nd.cmd.Stdout, nd.cmd.Stderr = logFile, logFile
		if err := nd.cmd.Start(); err != nil {
			logFile.Close()
			t.Fatalf("starting %s: %v", nd.name, err)
		}
		go func() {
			nd.exitErr = nd.cmd.Wait()
			logFile.Close()
			close(nd.exited)
		}()
	}
	started := time.Now()
	deadline := testDeadline(t, startWait)
	for _, nd := range c.nodes {
		for !bytes.Contains(nd.log(), []byte(`msg="metronome serving"`)) {
			select {
			case <-nd.exited:
				t.Fatalf("%s exited before serving: %v", nd.name, nd.exitErr)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not log that it serves within %v", nd.name, time.Since(started).Round(time.Millisecond))
			}
		}
	}
	t.Logf("cluster of %d nodes serving after %v", n, time.Since(started).Round(time.Millisecond))
	return c
}

// withoutMetronomeVariables drops METRONOME_* settings of the caller's
// environment, which the server would read as flags.
func withoutMetronomeVariables(environment []string) []string {
	return slices.DeleteFunc(slices.Clone(environment), func(v string) bool { return strings.HasPrefix(v, "METRONOME_") })
}

// stop kills every node still running and, if the test failed (or
// METRONOME_CLUSTER_LOGS is set), prints the end of every node's log.
func (c *testCluster) stop() {
	for _, nd := range c.nodes {
		if nd.cmd != nil && nd.cmd.Process != nil && !nd.hasExited() {
			nd.cmd.Process.Kill()
		}
	}
	for _, nd := range c.nodes {
		if nd.cmd == nil {
			continue
		}
		select {
		case <-nd.exited:
		case <-time.After(10 * time.Second):
			c.t.Errorf("%s (pid %d) did not exit within 10 s of SIGKILL", nd.name, nd.cmd.Process.Pid)
		}
	}
	for _, nd := range c.nodes {
		if races := nd.logLines("WARNING: DATA RACE"); len(races) > 0 {
			c.t.Errorf("%s: the race detector reported %d data races (the server was built with -race: %s)", nd.name, len(races), raceServerVariable)
		}
		if panics := nd.logLines("panic: "); len(panics) > 0 {
			c.t.Errorf("%s panicked: %s", nd.name, panics[0])
		}
	}
	full := os.Getenv(keepVariable) != ""
	if !c.t.Failed() && !full {
		return
	}
	for _, nd := range c.nodes {
		lines := strings.Split(strings.TrimRight(string(nd.log()), "\n"), "\n")
		shown := lines
		if !full && len(lines) > tailLines {
			shown = lines[len(lines)-tailLines:]
		}
		c.t.Logf("---- %s (%s): last %d of %d log lines ----\n%s", nd.name, nd.addr, len(shown), len(lines), strings.Join(shown, "\n"))
	}
}

func (nd *node) hasExited() bool {
	select {
	case <-nd.exited:
		return true
	default:
		return false
	}
}

// log returns the node's log so far.
func (nd *node) log() []byte {
	content, _ := os.ReadFile(nd.logPath)
	return content
}

// logLines returns the lines of the node's log that contain every one of
// the substrings.
func (nd *node) logLines(substrings ...string) []string {
	var found []string
	scanner := bufio.NewScanner(bytes.NewReader(nd.log()))
	scanner.Buffer(make([]byte, 0, 64<<10), 4<<20)
lines:
	for scanner.Scan() {
		for _, s := range substrings {
			if !strings.Contains(scanner.Text(), s) {
				continue lines
			}
		}
		found = append(found, scanner.Text())
	}
	return found
}

// kill sends SIGKILL and waits until the process is gone.
func (nd *node) kill(t *testing.T) {
	t.Helper()
	if err := nd.cmd.Process.Kill(); err != nil {
		t.Fatalf("kill %s: %v", nd.name, err)
	}
	select {
	case <-nd.exited:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not exit within 10 s of SIGKILL", nd.name)
	}
}

// signal sends sig (SIGSTOP, SIGCONT) to the node.
func (nd *node) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := nd.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("%v to %s: %v", sig, nd.name, err)
	}
}

// routeProxySource is the address the route proxies dial from.
var routeProxySource = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// cutRoutes cuts every route proxy to and from nd (startClusterWith
// proxiedRoutes): their connections close and new ones are refused.
func (c *testCluster) cutRoutes(nd *node) {
	for _, other := range c.nodes {
		if other != nd {
			nd.routesOut[other].Cut()
			other.routesOut[nd].Cut()
		}
	}
}

// healRoutes undoes cutRoutes.
func (c *testCluster) healRoutes(nd *node) {
	for _, other := range c.nodes {
		if other != nd {
			nd.routesOut[other].Heal()
			other.routesOut[nd].Heal()
		}
	}
}

// reflectorURL is what an SDK client connecting to the node directly
// uses as Options.Reflector.
func (nd *node) reflectorURL() string { return "ws://" + nd.addr + "/reflector" }

// addrs returns the client addresses of the nodes.
func (c *testCluster) addrs() []string {
	var addrs []string
	for _, nd := range c.nodes {
		addrs = append(addrs, nd.addr)
	}
	return addrs
}

// adminGet reads path from the node's admin listener.
func (c *testCluster) adminGet(nd *node, path string) (string, error) {
	response, err := c.http.Get("http://" + nd.admin + path)
	if err != nil {
		return "", err
	}
	defer response.Body.Close()
	body, err := io.ReadAll(response.Body)
	if err != nil {
		return "", err
	}
	if response.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s on %s: %s: %s", path, nd.name, response.Status, body)
	}
	return string(body), nil
}

// sessions returns the ids of the sessions that have an actor on the node
// (GET /sessions on its admin listener).
func (c *testCluster) sessions(nd *node) (map[string]bool, error) {
	body, err := c.adminGet(nd, "/sessions")
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, line := range strings.Split(body, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			ids[line] = true
		}
	}
	return ids, nil
}

// metrics returns the node's /metrics samples by name (labels included
// in the name as written, e.g. `metronome_closes_total{code="4003"}`).
func (c *testCluster) metrics(nd *node) (map[string]float64, error) {
	body, err := c.adminGet(nd, "/metrics")
	if err != nil {
		return nil, err
	}
	samples := map[string]float64{}
	for _, line := range strings.Split(body, "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if value, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			samples[line[:i]] = value
		}
	}
	return samples, nil
}

// owners asks every live node which of the sessions it holds, and returns
// for each session the nodes that list it.
func (c *testCluster) owners(ids []string) (map[string][]*node, error) {
	listed := map[string][]*node{}
	for _, nd := range c.nodes {
		if nd.hasExited() {
			continue
		}
		held, err := c.sessions(nd)
		if err != nil {
			return nil, err
		}
		for _, id := range ids {
			if held[id] {
				listed[id] = append(listed[id], nd)
			}
		}
	}
	return listed, nil
}

// settledOwners waits until every session is listed by exactly one live
// node, and returns that node per session.
func (c *testCluster) settledOwners(t *testing.T, ids []string, wait time.Duration) map[string]*node {
	t.Helper()
	var owner map[string]*node
	ok, last := waitUntil(t, wait, func() (bool, string) {
		listed, err := c.owners(ids)
		if err != nil {
			return false, err.Error()
		}
		owner = map[string]*node{}
		var problems []string
		for _, id := range ids {
			if len(listed[id]) != 1 {
				problems = append(problems, fmt.Sprintf("%s listed by %s", short(id), nodeNames(listed[id])))
				continue
			}
			owner[id] = listed[id][0]
		}
		return len(problems) == 0, strings.Join(problems, "; ")
	})
	if !ok {
		t.Fatalf("sessions not held by exactly one node each within %v: %s", wait, last)
	}
	return owner
}

func nodeNames(nodes []*node) string {
	if len(nodes) == 0 {
		return "no node"
	}
	var names []string
	for _, nd := range nodes {
		names = append(names, nd.name)
	}
	return strings.Join(names, ",")
}

// short abbreviates a session id for messages.
func short(id string) string { return id[:min(len(id), 8)] }

// Streams of the cluster store whose leaders matter to failover.
const (
	sessionsStream = "metronome_sessions"
	ownersStream   = "KV_metronome_owners"
)

// streamLeaders returns the name of the JetStream leader of the sessions
// stream and of the owners bucket, as a live node sees them ("?" if
// unknown), and a description for the log.
func (c *testCluster) streamLeaders() (map[string]string, string) {
	leaders := map[string]string{}
	var parts []string
	for _, nd := range c.nodes {
		if nd.hasExited() {
			continue
		}
		conn, err := nats.Connect("nats://"+nd.nats, nats.Timeout(2*time.Second))
		if err != nil {
			return leaders, "leaders unknown: " + err.Error()
		}
		defer conn.Close()
		js, err := jetstream.New(conn)
		if err != nil {
			return leaders, "leaders unknown: " + err.Error()
		}
		for _, name := range []string{sessionsStream, ownersStream} {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			stream, err := js.Stream(ctx, name)
			leader := "?"
			if err == nil {
				var info *jetstream.StreamInfo
				if info, err = stream.Info(ctx); err == nil && info.Cluster != nil && info.Cluster.Leader != "" {
					leader = info.Cluster.Leader
				}
			}
			cancel()
			leaders[name] = leader
			if err != nil {
				leader += " (" + err.Error() + ")"
			}
			parts = append(parts, name+" leader "+leader)
		}
		return leaders, strings.Join(parts, ", ")
	}
	return leaders, "no live node"
}

// node returns the node named name, or nil.
func (c *testCluster) node(name string) *node {
	for _, nd := range c.nodes {
		if nd.name == name {
			return nd
		}
	}
	return nil
}

// freePorts returns n TCP ports of 127.0.0.1 that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
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

// testDeadline returns now + wait, or earlier if the test's deadline
// (go test -timeout) comes first, leaving time for the cleanup.
func testDeadline(t *testing.T, wait time.Duration) time.Time {
	end := time.Now().Add(wait)
	if deadline, ok := t.Deadline(); ok && deadline.Add(-15*time.Second).Before(end) {
		end = deadline.Add(-15 * time.Second)
	}
	return end
}

// waitUntil polls condition every 100 ms until it holds (true) or wait
// (bounded by the test's deadline) has passed (false); the string is the
// condition's last description of what it is waiting for.
func waitUntil(t *testing.T, wait time.Duration, condition func() (bool, string)) (bool, string) {
	t.Helper()
	deadline := testDeadline(t, wait)
	for {
		ok, last := condition()
		if ok {
			return true, last
		}
		if time.Now().After(deadline) {
			return false, last
		}
		time.Sleep(100 * time.Millisecond)
	}
}
