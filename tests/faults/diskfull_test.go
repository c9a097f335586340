package faults

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// A full disk: the sessions run on a small image, a file fills it, and is
// removed again.
const (
	fullSessions          = 3
	fullClientsPerSession = 3
	// fullLoadMin and fullLoadMax bound the load before the disk fills.
	fullLoadMin = 500 * time.Millisecond
	fullLoadMax = 1000 * time.Millisecond
	// fullDuration is how long the disk stays full.
	fullDuration = 4 * time.Second
	// healthPollPeriod is how often /healthz is asked meanwhile.
	healthPollPeriod = 100 * time.Millisecond
	// resumeTimeout bounds the time from freeing the disk to every client
	// getting its messages back again (the store retries every 5 s at
	// most: store/diskstore/journal.go).
	resumeTimeout = 30 * time.Second
)

// TestDiskFull fills the file system under load. While it is full the
// server must tell the clients clearly (a 4003 close, or an upgrade
// refused with 503) and report itself unhealthy on /healthz; no client may
// lose a message it received. Once the space is free again, the sessions
// must resume by themselves, on their timelines, and survive a clean
// restart.
func TestDiskFull(t *testing.T) {
	binary := requireEnvironment(t)
	seed := baseSeed(t)*1000 + 200
	t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
		counts := &tally{}
		started := time.Now()
		diskFull(t, binary, seed, counts)
		t.Logf("disk full: %s; in %s", counts, time.Since(started).Round(time.Second))
	})
}

func diskFull(t *testing.T, binary string, seed int64, counts *tally) {
	random := rand.New(rand.NewPCG(uint64(seed), 0xf011))
	d := newDisk(t, smallImageBytes)
	logs := logDirectory(t)
	data := d.dataDirectory()
	srv := startServer(t, binary, data, filepath.Join(logs, "server-0.log"))
	clients := newFleet(t, seed, counts, "f", fullSessions, fullClientsPerSession)
	clients.rejoin(srv, data, always(mustKeep))
	time.Sleep(randomDuration(random, fullLoadMin, fullLoadMax))

	reconnecting := clients.keepConnected(srv, data)
	watch := watchHealth(srv)
	filler := d.fill()
	filled := time.Now()
	t.Logf("seed %d: the disk is full (%d bytes free)", seed, d.freeBytes())
	time.Sleep(fullDuration)
	if told := reconnecting.toldSince(filled); told == 0 {
		t.Errorf("seed %d: the disk was full for %s and no client was closed with 4003 or refused with 503\n%s", seed, fullDuration, srv.logTail())
	}
	unhealthy := watch.stop()
	if unhealthy == "" {
		t.Errorf("seed %d: /healthz answered 200 all the time the disk was full", seed)
	} else {
		t.Logf("seed %d: /healthz while full: %s", seed, unhealthy)
	}

	before := reconnecting.ownSnapshot()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := time.Now()
	reconnecting.waitResumed(before, resumeTimeout)
	t.Logf("seed %d: every client resumed %s after the space was freed", seed, time.Since(freed).Round(10*time.Millisecond))
	if err := srv.waitHealthy(); err != nil {
		t.Errorf("seed %d: /healthz after the space was freed and the sessions resumed: %v", seed, err)
	}
	reconnecting.stop()

	// Everything is still there after a clean restart.
	srv.terminate()
	clients.waitEnded()
	srv = startServer(t, binary, data, filepath.Join(logs, "server-1.log"))
	clients.rejoin(srv, data, always(mustKeep))
	clients.waitLive(srv)
	clients.stop()
	srv.terminate()
}

// reconnector keeps every client of a fleet connected, as a real client
// would: when the server closes a connection or refuses a join, it tries
// again after rejoinRetryInterval. Every SYNC it gets must keep the
// session's timeline and messages (mustKeep).
type reconnector struct {
	f       *fleet
	stopped chan struct{}
	wait    sync.WaitGroup

	mu sync.Mutex
	// told are the times the server closed a connection with 4003 or
	// refused an upgrade with 503.
	told []time.Time
}

// closeReconnect is the close code that asks clients to come back
// (docs/protocol.md §5).
const closeReconnect = 4003

func (f *fleet) keepConnected(srv *server, dataDirectory string) *reconnector {
	r := &reconnector{f: f, stopped: make(chan struct{})}
	for _, c := range f.clients {
		r.wait.Go(func() { r.run(c, srv, dataDirectory) })
	}
	return r
}

// run keeps one client connected until stop.
func (r *reconnector) run(c *client, srv *server, dataDirectory string) {
	for {
		select {
		case <-c.ended:
		case <-r.stopped:
			return
		}
		code, _ := c.status()
		r.f.tally.closed(int(code))
		if code != closeReconnect {
			r.f.t.Errorf("seed %d, client %s: the connection ended with code %d, want %d (a clear close asking to reconnect)", r.f.seed, c.view, int(code), closeReconnect)
		}
		r.noteTold()
		c.stop()
		r.f.reportLive(c)
		if !r.rejoin(c, srv, dataDirectory) {
			return
		}
	}
}

// rejoin tries to join until it succeeds (true) or the reconnector stops.
func (r *reconnector) rejoin(c *client, srv *server, dataDirectory string) bool {
	for {
		select {
		case <-r.stopped:
			return false
		case <-time.After(rejoinRetryInterval):
		}
		sync, err := c.join(srv.url(c.session))
		if err != nil {
			r.f.tally.failedJoin(err)
			if askedToComeBack(err) {
				r.noteTold()
			} else {
				r.f.t.Errorf("seed %d, client %s: join failed with %v, want a 4003 close or a 503 refusal while the disk is full", r.f.seed, c.view, err)
			}
			continue
		}
		_, problems := r.f.judgeSync(c, sync, srv, dataDirectory, mustKeep)
		for _, problem := range problems {
			r.f.t.Errorf("seed %d, session %s, client %s: %s", r.f.seed, c.session, c.view, problem)
		}
		c.run(sendInterval)
		return true
	}
}

// askedToComeBack reports whether a failed join is the server's clear
// answer while its storage fails: a 4003 close or a 503 refusal.
func askedToComeBack(err error) bool {
	var refused refusedError
	var closed closeError
	return (errors.As(err, &refused) && refused.status == http.StatusServiceUnavailable) ||
		(errors.As(err, &closed) && closed.code == closeReconnect)
}

func (r *reconnector) noteTold() {
	r.mu.Lock()
	r.told = append(r.told, time.Now())
	r.mu.Unlock()
}

// toldSince counts the closes and refusals since t.
func (r *reconnector) toldSince(t time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	count := 0
	for _, when := range r.told {
		if !when.Before(t) {
			count++
		}
	}
	return count
}

// ownSnapshot returns each client's count of own messages received.
func (r *reconnector) ownSnapshot() map[*client]int {
	counts := map[*client]int{}
	for _, c := range r.f.clients {
		counts[c] = c.ownMessages()
	}
	return counts
}

// waitResumed waits until every client got liveMessages of its own
// messages back after before was taken: its session works again.
func (r *reconnector) waitResumed(before map[*client]int, timeout time.Duration) {
	r.f.t.Helper()
	deadline := time.Now().Add(timeout)
	for _, c := range r.f.clients {
		for c.ownMessages()-before[c] < liveMessages {
			if time.Now().After(deadline) {
				r.f.t.Errorf("seed %d, client %s: not working again %s after the space was freed (%d own messages back since)",
					r.f.seed, c.view, timeout, c.ownMessages()-before[c])
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// stop ends the reconnecting; the clients stay connected.
func (r *reconnector) stop() {
	close(r.stopped)
	r.wait.Wait()
}

// healthWatch asks /healthz periodically and remembers the first answer
// that was not 200.
type healthWatch struct {
	stopped   chan struct{}
	done      chan struct{}
	unhealthy string
}

func watchHealth(srv *server) *healthWatch {
	w := &healthWatch{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		client := http.Client{Timeout: time.Second}
		ticker := time.NewTicker(healthPollPeriod)
		defer ticker.Stop()
		for {
			select {
			case <-w.stopped:
				return
			case <-ticker.C:
			}
			status, body, err := health(&client, srv.addr)
			if err == nil && status != http.StatusOK && w.unhealthy == "" {
				w.unhealthy = fmt.Sprintf("%d %q", status, body)
			}
		}
	}()
	return w
}

// stop ends the watch and returns the first unhealthy answer ("" if
// there was none).
func (w *healthWatch) stop() string {
	close(w.stopped)
	<-w.done
	return w.unhealthy
}
