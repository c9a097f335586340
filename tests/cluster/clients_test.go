package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/client"
	"github.com/metronome-sync/metronome/client/island"
)

// eventLog is the test model: the events of every view, in the order the
// reflector stamped them.
type eventLog struct {
	Events []string
}

// logApp appends each "add" event's text ("<view>:<i>") to the model and
// emits it to the local views, which time its arrival. Snapshots every 5
// s of session time: the replicas vote their state hashes (a divergence is
// reported) and upload snapshots through the cluster.
var logApp = client.App[eventLog]{
	ID: "io.metronome.tests.cluster", Version: "1", SnapshotIntervalMs: client.SnapshotIntervalMsMin,
	Events: map[string]client.Handler[eventLog]{
		"add": func(m *eventLog, ctx *client.Context, e client.Event) {
			var text string
			if e.Decode(&text) != nil {
				return
			}
			m.Events = append(m.Events, text)
			ctx.Emit("added", text)
		},
	},
}

// publication is one event a client published.
type publication struct {
	session, view string
	at            time.Time
	// err is what Publish returned (the event is not expected then).
	err error
}

// world tracks the clients of a test: what they published and when each
// event was first applied by any replica.
type world struct {
	t      *testing.T
	logger *slog.Logger

	mu          sync.Mutex
	members     []*member
	published   map[string]publication
	firstSeen   map[string]time.Time
	divergences []string
}

// member is one SDK client (a view) of a session.
type member struct {
	w       *world
	session string // the session's name
	view    string
	via     string // the node or proxy it connects to, for messages
	s       *client.Session[eventLog]

	mu    sync.Mutex
	votes map[int64]string
}

// newWorld returns the tracker; the clients log to clients.log in the
// test's temporary directory (printed in part if the test fails).
func newWorld(t *testing.T) *world {
	path := filepath.Join(t.TempDir(), "clients.log")
	file, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, logger: slog.New(slog.NewTextHandler(file, &slog.HandlerOptions{Level: slog.LevelInfo})),
		published: map[string]publication{}, firstSeen: map[string]time.Time{}}
	t.Cleanup(func() {
		w.leaveAll()
		file.Close()
		if t.Failed() || os.Getenv(keepVariable) != "" {
			content, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimRight(string(content), "\n"), "\n")
			shown := lines[max(0, len(lines)-tailLines):]
			t.Logf("---- clients: last %d of %d log lines ----\n%s", len(shown), len(lines), strings.Join(shown, "\n"))
		}
	})
	return w
}

// join joins session as view through the reflector URL.
func (w *world) join(ctx context.Context, reflector, via, session, view string) (*member, error) {
	m := &member{w: w, session: session, view: view, via: via, votes: map[int64]string{}}
	options := client.Options{Reflector: reflector, Name: session, Password: "cluster test " + session, ViewID: view,
		Logger: w.logger.With("via", via),
		OnVote: func(time int64, hash string) {
			m.mu.Lock()
			m.votes[time] = hash
			m.mu.Unlock()
		},
		OnDivergence: func(d client.Divergence) {
			w.mu.Lock()
			w.divergences = append(w.divergences, fmt.Sprintf("%s/%s: %v", session, view, d.Error()))
			w.mu.Unlock()
		},
	}
	s, err := client.Join(ctx, logApp, options)
	if err != nil {
		return nil, fmt.Errorf("%s/%s via %s: %w", session, view, via, err)
	}
	m.s = s
	s.Subscribe("added", func(data []byte) {
		var text string
		if island.Decode(data, &text) == nil {
			w.seen(text, time.Now())
		}
	})
	w.mu.Lock()
	w.members = append(w.members, m)
	w.mu.Unlock()
	return m, nil
}

// joinAll joins every (session, view, reflector) at once and fails the
// test unless all joined within 60 s.
func (w *world) joinAll(t *testing.T, specs []joinSpec) []*member {
	t.Helper()
	ctx, cancel := context.WithDeadline(context.Background(), testDeadline(t, 60*time.Second))
	defer cancel()
	members := make([]*member, len(specs))
	errs := make([]error, len(specs))
	var group sync.WaitGroup
	for i, spec := range specs {
		group.Add(1)
		go func() {
			defer group.Done()
			members[i], errs[i] = w.join(ctx, spec.reflector, spec.via, spec.session, spec.view)
		}()
	}
	group.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("join: %v", err)
		}
	}
	return members
}

// joinSpec is one client to join.
type joinSpec struct {
	reflector, via, session, view string
}

func (w *world) leaveAll() {
	w.mu.Lock()
	members := slices.Clone(w.members)
	w.mu.Unlock()
	var group sync.WaitGroup
	for _, m := range members {
		group.Add(1)
		go func() {
			defer group.Done()
			m.s.Leave()
		}()
	}
	group.Wait()
}

func (w *world) seen(text string, at time.Time) {
	w.mu.Lock()
	if _, ok := w.firstSeen[text]; !ok {
		w.firstSeen[text] = at
	}
	w.mu.Unlock()
}

// publish publishes the member's i-th event, "<view>:<i>", and records it.
func (m *member) publish(i int) {
	text := fmt.Sprintf("%s:%d", m.view, i)
	at := time.Now()
	err := m.s.Publish("add", text)
	m.w.mu.Lock()
	m.w.published[text] = publication{session: m.session, view: m.view, at: at, err: err}
	m.w.mu.Unlock()
}

// publishLoop publishes an event every interval (the first after offset)
// until count events are out (count 0: no limit) or stop is closed.
func (m *member) publishLoop(offset, interval time.Duration, count int, stop <-chan struct{}) {
	select {
	case <-time.After(offset):
	case <-stop:
		return
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for i := 0; count == 0 || i < count; i++ {
		m.publish(i)
		select {
		case <-ticker.C:
		case <-stop:
			return
		}
	}
}

// events returns a copy of the member's model.
func (m *member) events() []string {
	var events []string
	m.s.Read(func(model *eventLog, _ int64) { events = slices.Clone(model.Events) })
	return events
}

// expected returns the events of session that were published without an
// error by a client that is still running (one whose SDK session ended
// for good cannot re-send what was not stamped; checkReplicas reports
// it), sorted.
func (w *world) expected(session string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	ended := map[string]bool{}
	for _, m := range w.members {
		if m.session == session && m.s.Err() != nil {
			ended[m.view] = true
		}
	}
	var texts []string
	for text, p := range w.published {
		if p.session == session && p.err == nil && !ended[p.view] {
			texts = append(texts, text)
		}
	}
	sort.Strings(texts)
	return texts
}

// publishErrors counts Publish calls that failed.
func (w *world) publishErrors() (int, []string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	var examples []string
	for text, p := range w.published {
		if p.err != nil {
			n++
			if len(examples) < 3 {
				examples = append(examples, text+": "+p.err.Error())
			}
		}
	}
	return n, examples
}

// bySession groups members by session name, in the order given.
func bySession(members []*member) (names []string, groups map[string][]*member) {
	groups = map[string][]*member{}
	for _, m := range members {
		if _, ok := groups[m.session]; !ok {
			names = append(names, m.session)
		}
		groups[m.session] = append(groups[m.session], m)
	}
	return names, groups
}

// waitQuiet waits until every live member of the session holds every
// event published for it by a live member (true), or until wait has
// passed (false), and returns a description of the state. There is no
// shortcut for models that stopped changing: a client may be in its
// reconnect back-off (up to 30 s), and it re-sends what was not stamped.
func (w *world) waitQuiet(t *testing.T, session string, members []*member, wait time.Duration) (bool, string) {
	t.Helper()
	return waitUntil(t, wait, func() (bool, string) {
		expected := w.expected(session)
		var parts []string
		complete := true
		for _, m := range members {
			if m.s.Err() != nil {
				parts = append(parts, fmt.Sprintf("%s ended: %v", m.view, m.s.Err()))
				continue // checkReplicas reports it
			}
			events := m.events()
			missing := countMissing(events, expected)
			if missing > 0 {
				complete = false
			}
			parts = append(parts, fmt.Sprintf("%s has %d (missing %d)", m.view, len(events), missing))
		}
		return complete, fmt.Sprintf("%d events expected; %s", len(expected), strings.Join(parts, ", "))
	})
}

// countMissing counts the expected events that events lacks.
func countMissing(events, expected []string) int {
	have := make(map[string]bool, len(events))
	for _, e := range events {
		have[e] = true
	}
	missing := 0
	for _, e := range expected {
		if !have[e] {
			missing++
		}
	}
	return missing
}

// checkReplicas checks the replica invariants of one session's members:
// every model is the same list, no event appears twice, each view's
// events are in the order it published them, and every event is one of
// this session's. It returns the (first member's) list.
func checkReplicas(t *testing.T, session string, members []*member) []string {
	t.Helper()
	views := map[string]bool{}
	for _, m := range members {
		views[m.view] = true
	}
	members = liveMembers(t, session, members)
	if len(members) == 0 {
		return nil
	}
	reference := members[0].events()
	for _, m := range members[1:] {
		events := m.events()
		if !slices.Equal(events, reference) {
			i := 0
			for i < min(len(events), len(reference)) && events[i] == reference[i] {
				i++
			}
			t.Errorf("session %s: %s (via %s) has %d events, %s (via %s) %d; they differ from index %d: %q vs %q",
				session, m.view, m.via, len(events), members[0].view, members[0].via, len(reference), i,
				window(events, i), window(reference, i))
		}
	}
	counts := map[string]int{}
	lastIndex := map[string]int{}
	for position, text := range reference {
		counts[text]++
		if counts[text] == 2 {
			t.Errorf("session %s: event %q appears twice (again at index %d)", session, text, position)
		}
		view, number, ok := strings.Cut(text, ":")
		index, err := strconv.Atoi(number)
		if !ok || err != nil || !views[view] {
			t.Errorf("session %s: event %q at index %d is not one of this session's views' events", session, text, position)
			continue
		}
		if previous, ok := lastIndex[view]; ok && index <= previous {
			t.Errorf("session %s: view %s's event %d comes after its event %d (index %d)", session, view, index, previous, position)
		}
		lastIndex[view] = index
	}
	return reference
}

// liveMembers reports the members whose client session ended for good
// (Session.Err: the SDK gave up) and returns the others.
func liveMembers(t *testing.T, session string, members []*member) []*member {
	t.Helper()
	var live []*member
	for _, m := range members {
		if err := m.s.Err(); err != nil {
			t.Errorf("session %s: client %s (via %s) ended for good: %v", session, m.view, m.via, err)
			continue
		}
		live = append(live, m)
	}
	return live
}

// window is a few elements of events from i on, for messages.
func window(events []string, i int) []string {
	return events[min(i, len(events)):min(i+3, len(events))]
}

// checkStates waits until all members report the same confirmed state
// (session time, seq, hash) at one moment (ticks move it on, so a read may
// fall between two), and compares their snapshot votes.
func checkStates(t *testing.T, session string, members []*member, wait time.Duration) {
	t.Helper()
	var live []*member
	for _, m := range members {
		if m.s.Err() == nil {
			live = append(live, m)
		}
	}
	members = live
	if len(members) == 0 {
		return
	}
	ok, last := waitUntil(t, wait, func() (bool, string) {
		var states []string
		for _, m := range members {
			now, seq, hash, err := m.s.State()
			if err != nil {
				return false, err.Error()
			}
			states = append(states, fmt.Sprintf("%s: time %d seq %d hash %s", m.view, now, seq, short(hash)))
		}
		for _, s := range states[1:] {
			if s[strings.IndexByte(s, ':'):] != states[0][strings.IndexByte(states[0], ':'):] {
				return false, strings.Join(states, "; ")
			}
		}
		return true, strings.Join(states, "; ")
	})
	if !ok {
		t.Errorf("session %s: the replicas' states never matched: %s", session, last)
	}
	// Votes at the same session time must carry the same hash.
	hashes := map[int64]map[string][]string{}
	for _, m := range members {
		m.mu.Lock()
		for time, hash := range m.votes {
			if hashes[time] == nil {
				hashes[time] = map[string][]string{}
			}
			hashes[time][hash] = append(hashes[time][hash], m.view)
		}
		m.mu.Unlock()
	}
	for time, byHash := range hashes {
		if len(byHash) > 1 {
			t.Errorf("session %s: snapshot votes at session time %d disagree: %v", session, time, byHash)
		}
	}
}

// clientStats sums the members' connection counters.
func clientStats(members []*member) string {
	var reconnects, syncs, seamless, resets, resent, duplicates, gaps int
	for _, m := range members {
		s := m.s.Stats()
		reconnects += s.Connects - 1
		syncs += s.Syncs
		seamless += s.SeamlessRejoins
		resets += s.Resets
		resent += s.InputsResent
		duplicates += s.Duplicates
		gaps += s.Gaps
	}
	return fmt.Sprintf("%d clients: %d reconnect attempts, %d SYNCs (%d seamless rejoins, %d resets), %d inputs re-sent, %d duplicate messages dropped, %d gaps",
		len(members), reconnects, syncs, seamless, resets, resent, duplicates, gaps)
}

// checkNoDivergence fails the test if a replica reported a divergence.
func (w *world) checkNoDivergence(t *testing.T) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, d := range w.divergences {
		t.Errorf("divergence reported: %s", d)
	}
}

// sessionIDs returns the session id of each session name (from one of
// its members).
func sessionIDs(names []string, groups map[string][]*member) (ids []string, nameOf map[string]string) {
	nameOf = map[string]string{}
	for _, name := range names {
		id := groups[name][0].s.ID()
		ids = append(ids, id)
		nameOf[id] = name
	}
	return ids, nameOf
}

// durations summarizes a distribution: min, median, max.
func durations(values []time.Duration) string {
	if len(values) == 0 {
		return "none"
	}
	sorted := slices.Clone(values)
	slices.Sort(sorted)
	return fmt.Sprintf("min %v, median %v, max %v (n=%d)", sorted[0].Round(time.Millisecond),
		sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)-1].Round(time.Millisecond), len(sorted))
}
