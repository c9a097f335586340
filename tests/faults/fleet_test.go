package faults

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// fleet is the clients of a test, S sessions × C clients, and how their
// rejoins are judged.
type fleet struct {
	t       *testing.T
	seed    int64
	tally   *tally
	clients []*client
}

// Load and patience.
const (
	// sendInterval is each client's pace: 20 messages per second.
	sendInterval = 50 * time.Millisecond
	// rejoinTimeout bounds the time a client keeps trying to rejoin a
	// server that runs.
	rejoinTimeout = 15 * time.Second
	// rejoinRetryInterval is the pause between two attempts.
	rejoinRetryInterval = 200 * time.Millisecond
	// liveTimeout bounds the wait for messages to flow again.
	liveTimeout = 20 * time.Second
	// liveMessages is how many of its own messages each client must get
	// back to count as live.
	liveMessages = 3
	// endedTimeout bounds the wait for connections to end after the
	// server died or closed them.
	endedTimeout = 10 * time.Second
)

// sessionName returns the id of session index of a test with seed; ids
// have fixed width, so that none is a prefix of another.
func sessionName(prefix string, seed int64, index int) string {
	return fmt.Sprintf("faults-%s-%d-%03d", prefix, seed, index)
}

// newFleet makes sessions × perSession clients (not connected).
func newFleet(t *testing.T, seed int64, counts *tally, prefix string, sessions, perSession int) *fleet {
	f := &fleet{t: t, seed: seed, tally: counts}
	for s := range sessions {
		session := sessionName(prefix, seed, s)
		for c := range perSession {
			f.clients = append(f.clients, newClient(session, fmt.Sprintf("%s-v%d", session, c)))
		}
	}
	return f
}

// sessions returns the fleet's session ids, each once, in order.
func (f *fleet) sessions() []string {
	var sessions []string
	for _, c := range f.clients {
		if len(sessions) == 0 || sessions[len(sessions)-1] != c.session {
			sessions = append(sessions, c.session)
		}
	}
	return sessions
}

// policy says what a rejoin may find in a session.
type policy int

const (
	// mustKeep: the same timeline with every message (nothing damaged it).
	mustKeep policy = iota
	// mayRestart: the same, or a new timeline announced by an ERROR line
	// that names the session.
	mayRestart
	// mayRestartQuarantined: as mayRestart, and the ERROR line names a
	// quarantine/ path, which exists.
	mayRestartQuarantined
)

// rejoin connects every client to srv at once, checks each SYNC
// (judgeSync) and lets the clients run. It logs each session that came
// back on a new timeline with what its clients had been sent.
func (f *fleet) rejoin(srv *server, dataDirectory string, rule func(session string) policy) {
	f.t.Helper()
	var wait sync.WaitGroup
	var mu sync.Mutex
	restarted := map[string]*history{} // the longest history lost
	for _, c := range f.clients {
		wait.Go(func() {
			before, problems := f.rejoinOne(c, srv, dataDirectory, rule(c.session))
			mu.Lock()
			defer mu.Unlock()
			if before != nil && (restarted[c.session] == nil || len(before.messages) > len(restarted[c.session].messages)) {
				restarted[c.session] = before
			}
			for _, problem := range problems {
				f.t.Errorf("seed %d, session %s, client %s: %s", f.seed, c.session, c.view, problem)
			}
		})
	}
	wait.Wait()
	for _, session := range slices.Sorted(maps.Keys(restarted)) {
		if lines := srv.errorLines(session); len(lines) > 0 {
			f.t.Logf("seed %d: session %s is on a new timeline; its clients had been sent %s; %s; the server said: %s",
				f.seed, session, restarted[session].describe(), quarantinedLog(dataDirectory, session), lines[0])
		}
	}
}

// quarantinedLog describes the newest quarantined message log of a
// session: which of its messages are intact, and what follows them.
func quarantinedLog(dataDirectory, session string) string {
	directories, _ := filepath.Glob(filepath.Join(dataDirectory, "quarantine", session+"-*"))
	if len(directories) == 0 {
		return "nothing of it is in quarantine/"
	}
	path := filepath.Join(slices.Max(directories), "messages.log")
	content, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("its quarantined log: %v", err)
	}
	return "its quarantined log holds " + summarizeLog(content)
}

// rejoinOne joins one client, retrying while the server refuses, and
// judges its SYNC.
func (f *fleet) rejoinOne(c *client, srv *server, dataDirectory string, rule policy) (before *history, problems []string) {
	deadline := time.Now().Add(rejoinTimeout)
	for {
		sync, err := c.join(srv.url(c.session))
		if err == nil {
			before, problems = f.judgeSync(c, sync, srv, dataDirectory, rule)
			c.run(sendInterval)
			return before, problems
		}
		f.tally.failedJoin(err)
		if time.Now().After(deadline) {
			return nil, []string{fmt.Sprintf("could not rejoin within %s: %v\n%s", rejoinTimeout, err, srv.logTail())}
		}
		time.Sleep(rejoinRetryInterval)
	}
}

// judgeSync checks a rejoin's SYNC against what the client was sent
// before, by the rule, and makes it the client's new history. If the
// session is on a new timeline, it returns what the client had been sent.
func (f *fleet) judgeSync(c *client, sync syncFrame, srv *server, dataDirectory string, rule policy) (before *history, problems []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.seen.timeline == "":
		return nil, c.seen.restart(sync)
	case sync.Timeline == c.seen.timeline:
		found, problems := checkSync(c.seen, sync)
		f.tally.add(&f.tally.syncs, 1)
		f.tally.add(&f.tally.messages, found)
		// checkSync reported every difference; the history keeps what
		// the client was sent first.
		c.seen.addSync(sync)
		return nil, problems
	}
	f.tally.add(&f.tally.timelineChanges, 1)
	problems = f.judgeRestart(c, sync, srv, dataDirectory, rule)
	old := c.seen
	return &old, append(problems, c.seen.restart(sync)...)
}

// judgeRestart checks a session that came back on a new timeline.
func (f *fleet) judgeRestart(c *client, sync syncFrame, srv *server, dataDirectory string, rule policy) []string {
	lost := fmt.Sprintf("timeline %s became %s (%d messages the client was sent are gone)", c.seen.timeline, sync.Timeline, len(c.seen.messages))
	switch rule {
	case mustKeep:
		return []string{"an undamaged session lost its state: " + lost}
	case mayRestart:
		if len(srv.errorLines(c.session)) == 0 {
			return []string{lost + ", and the server log has no ERROR line naming the session"}
		}
	case mayRestartQuarantined:
		if len(srv.errorLines(c.session, "/quarantine/")) == 0 {
			return []string{lost + ", and the server log has no ERROR line naming the session and a quarantine/ path"}
		}
		if matches, _ := filepath.Glob(filepath.Join(dataDirectory, "quarantine", c.session+"-*")); len(matches) == 0 {
			return []string{lost + ", and nothing of it is in quarantine/"}
		}
	}
	return nil
}

// stop ends every connection and reports what the clients noticed while
// connected.
func (f *fleet) stop() {
	f.t.Helper()
	for _, c := range f.clients {
		c.stop()
		f.reportLive(c)
	}
}

// reportLive reports the problems a client noticed while connected (a
// seq sent twice with other contents) and forgets them.
func (f *fleet) reportLive(c *client) {
	f.t.Helper()
	c.mu.Lock()
	problems := c.problems
	c.problems = nil
	c.mu.Unlock()
	for _, problem := range problems {
		f.t.Errorf("seed %d, session %s, client %s: %s", f.seed, c.session, c.view, problem)
	}
}

// waitEnded waits until the server ended every connection (it died or
// closed them), then stops the clients.
func (f *fleet) waitEnded() {
	f.t.Helper()
	for _, c := range f.clients {
		if !c.wait(endedTimeout) {
			f.t.Errorf("seed %d: client %s still connected %s after the server went away", f.seed, c.view, endedTimeout)
		}
		code, _ := c.status()
		if code != -1 {
			f.tally.closed(int(code))
		}
	}
	f.stop()
}

// waitLive waits until every client got liveMessages of its own messages
// back since it last joined: the sessions work again.
func (f *fleet) waitLive(srv *server) {
	f.t.Helper()
	deadline := time.Now().Add(liveTimeout)
	for _, c := range f.clients {
		for {
			_, own := c.status()
			if own >= liveMessages {
				break
			}
			if time.Now().After(deadline) {
				f.t.Errorf("seed %d, session %s, client %s: got %d of its messages back within %s, want %d\n%s",
					f.seed, c.session, c.view, own, liveTimeout, liveMessages, srv.logTail())
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// logDirectory returns a directory for the servers' logs, removed after
// the test unless it failed or keepVariable is set (then the test says
// where it is).
func logDirectory(t *testing.T) string {
	t.Helper()
	directory, err := os.MkdirTemp("", "metronome-faults-logs-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if _, keep := os.LookupEnv(keepVariable); keep || t.Failed() {
			t.Logf("server logs kept in %s", directory)
			return
		}
		os.RemoveAll(directory)
	})
	return directory
}
