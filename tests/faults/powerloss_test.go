package faults

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Power loss: chains of cuts under load, each chain on its own image.
const (
	cutsPerChain           = 10
	powerSessions          = 5
	powerClientsPerSession = 3
	// A cut comes cutDelayMin to cutDelayMax after the clients rejoined,
	// or, in earlyCutPercent of the cuts, within earlyCutDelayMax: while
	// the restarted server prepares its next journal file.
	cutDelayMin      = 100 * time.Millisecond
	cutDelayMax      = 1500 * time.Millisecond
	earlyCutPercent  = 15
	earlyCutDelayMax = 50 * time.Millisecond
)

// TestPowerLoss cuts the power at seeded random points while 5 sessions ×
// 3 clients send 20 messages per second each, and one new session is
// created at a random moment of every round (its files are the newest on
// the disk). After every cut the server must start on what the disk held,
// and every client must find, on its session's timeline, every message it
// was sent (docs/protocol.md §18.3: a message is durable before anyone
// receives it); a session on a new timeline needs an ERROR line.
func TestPowerLoss(t *testing.T) {
	binary := requireEnvironment(t)
	base, cuts := baseSeed(t), cutsWanted(t)
	counts := &tally{}
	started := time.Now()
	for chain := 0; chain*cutsPerChain < cuts; chain++ {
		seed := base*1000 + int64(chain)
		chainCuts := min(cutsPerChain, cuts-chain*cutsPerChain)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			powerLossChain(t, binary, seed, chainCuts, counts)
		})
	}
	t.Logf("power loss, base seed %d (%s=%d replays it): %s; in %s",
		base, seedVariable, base, counts, time.Since(started).Round(time.Second))
}

// powerLossChain runs cuts power cuts on one image.
func powerLossChain(t *testing.T, binary string, seed int64, cuts int, counts *tally) {
	random := rand.New(rand.NewPCG(uint64(seed), 0x5eed))
	d := newDisk(t, imageBytes)
	logs := logDirectory(t)
	logPath := func(run int) string { return filepath.Join(logs, fmt.Sprintf("server-%02d.log", run)) }
	srv := startServer(t, binary, d.dataDirectory(), logPath(0))
	residents := newFleet(t, seed, counts, "p", powerSessions, powerClientsPerSession)
	residents.rejoin(srv, d.dataDirectory(), always(mustKeep))
	for cut := 1; cut <= cuts && !t.Failed(); cut++ {
		delay := cutDelay(random)
		newcomer := newFleet(t, seed, counts, fmt.Sprintf("n%02d", cut), 1, 1)
		joined := newcomer.joinLater(srv, randomDuration(random, 0, delay))
		time.Sleep(delay)

		srv.freeze()
		image := d.powerCut()
		pristine := d.pristineCopy(image)
		srv.kill()
		<-joined
		counts.add(&counts.cuts, 1)
		residents.waitEnded()
		newcomer.waitEnded()
		d.switchTo(image)

		srv = startServer(t, binary, d.dataDirectory(), logPath(cut))
		residents.rejoin(srv, d.dataDirectory(), always(mayRestart))
		newcomer.rejoin(srv, d.dataDirectory(), always(mayRestart))
		newcomer.stop()
		t.Logf("cut %d after %s: server restarted; %s", cut, delay.Round(time.Millisecond), replayNote(srv))
		if t.Failed() {
			d.keep(pristine, fmt.Sprintf("the disk as cut %d left it", cut))
		} else {
			os.Remove(pristine)
		}
	}
	// The sessions work after the last cut, and survive a clean restart.
	residents.waitLive(srv)
	residents.stop()
	srv.terminate()
	srv = startServer(t, binary, d.dataDirectory(), logPath(cuts+1))
	residents.rejoin(srv, d.dataDirectory(), always(mustKeep))
	residents.waitLive(srv)
	residents.stop()
	srv.terminate()
}

// joinLater joins the fleet's clients once, after delay, in the
// background; a join that the cut interrupts is given up. The channel
// closes when it is done.
func (f *fleet) joinLater(srv *server, delay time.Duration) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(delay)
		for _, c := range f.clients {
			if sync, err := c.join(srv.url(c.session)); err == nil {
				c.mu.Lock()
				c.seen.restart(sync)
				c.mu.Unlock()
				c.run(sendInterval)
			}
		}
	}()
	return done
}

// cutDelay draws the time from rejoin to cut.
func cutDelay(random *rand.Rand) time.Duration {
	if random.IntN(100) < earlyCutPercent {
		return randomDuration(random, 0, earlyCutDelayMax)
	}
	return randomDuration(random, cutDelayMin, cutDelayMax)
}

func randomDuration(random *rand.Rand, low, high time.Duration) time.Duration {
	if high <= low {
		return low
	}
	return low + time.Duration(random.Int64N(int64(high-low)))
}

// always returns a rule that is policy for every session.
func always(rule policy) func(string) policy { return func(string) policy { return rule } }

// replayNote returns what the server log says about the journal's
// replay at start-up.
func replayNote(srv *server) string {
	lines := linesWith(srv.readLog(), "level=WARN", "journal")
	if len(lines) == 0 {
		return "no journal replay logged"
	}
	for _, field := range strings.Fields(lines[0]) {
		if strings.HasPrefix(field, "entries=") {
			return "replayed " + strings.TrimPrefix(field, "entries=") + " journal entries"
		}
	}
	return lines[0]
}
