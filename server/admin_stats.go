package server

import (
	"encoding/json"
	"time"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// Per-session statistics for the admin listener's inspector (admin.go).
//
// The session actor owns the session's state; handlers never touch it.
// Instead the actor publishes an immutable sessionStats value into
// sessionActor.stats (an atomic pointer) after a flush: at once when a
// connection came or went, a close was recorded or a tally completed,
// otherwise at most every statsPublishInterval and only when something
// shown changed. Nothing is added per message: the values are read from
// the core when publishing. Values that change with time alone (session
// time, rates, ages) are extrapolated by the reader.

// Limits of the statistics.
const (
	// statsPublishInterval is the shortest time between two publications
	// of a session's statistics, apart from those that connections,
	// closes and tallies cause.
	statsPublishInterval = 250 * time.Millisecond
	// statsRateWindow is the shortest window over which inputs per
	// second are computed.
	statsRateWindow = time.Second
	// statsMembersMax is the number of members listed per session (all
	// are counted).
	statsMembersMax = 256
	// statsClosesKept is the number of recent closes kept per session.
	statsClosesKept = 16
	// statsTallyHashesMax is the number of distinct state hashes kept of
	// a diverged tally, statsTallyViewsMax the views listed per hash.
	statsTallyHashesMax = 16
	statsTallyViewsMax  = 8
)

// sessionStats is one publication of a session's statistics. It is never
// modified once published: its slices and pointers are shared by readers.
type sessionStats struct {
	id          string
	publishedAt time.Time
	// storageFailure is the error that stopped the session ("" if none).
	storageFailure string
	// started: a JOIN created the island (or it was restored).
	started bool
	record  reflector.Record
	// sessionTime is the session time at publishedAt (ms).
	sessionTime int64

	connections, synced int
	members             []memberStats // at most statsMembersMax

	stamped          uint32 // messages stamped on this timeline
	buffered         int
	bufferedBytes    int
	snapshotAccepted time.Time // zero: not accepted since the session was loaded
	openTallies      int
	pointerKey       string
	saves            int
	lastSave         time.Time

	divergence divergenceStats
	closes     []closeRecord // oldest first

	// rateFrom, rateFromStamped: the start of the window over which the
	// reader computes inputs per second (up to publishedAt, or now).
	rateFrom        time.Time
	rateFromStamped uint32
}

// memberStats is one member: the core's view of it and its address.
type memberStats struct {
	view   reflector.MemberView
	remote string // "" while it waits out its leave delay
}

// closeRecord is a connection of the session that ended, with the close
// the server sent it: the core's decision, a server limit (4001 for a
// slow client), or the echo of the client's own close (then without a
// reason). Code 0: no close was sent, the connection was lost.
type closeRecord struct {
	at     time.Time
	conn   reflector.ConnID
	remote string
	code   int
	reason string
}

// divergenceStats counts the completed tallies whose votes carry state
// hashes (the snapshot and persistence votes of docs/protocol.md §9) and
// those among them in which the replicas disagreed.
type divergenceStats struct {
	checked  int // tallies with hashed votes
	diverged int // ... with more than one distinct hash
	// unchecked counts tallies that completed faster than they could be
	// looked at (more than reflector.TallyOutcomesKept in one flush).
	unchecked int
	last      *divergedTally // the most recent diverged tally; nil if none
}

// divergedTally is a tally whose voters reported different state hashes.
type divergedTally struct {
	at       time.Time
	key      string
	sendTime int64
	time     int64
	missing  int
	hashes   []hashVotes // at most statsTallyHashesMax, in the order the votes came
	// cut: more hashes, views or votes existed than are listed here.
	cut bool
}

// hashVotes is one state hash of a tally: the votes that named it and
// some of their views.
type hashVotes struct {
	hash  string
	votes int
	views []string // at most statsTallyViewsMax
}

// statsPublisher is the actor's side of the statistics: what it needs
// between publications. Owned by the actor goroutine.
type statsPublisher struct {
	// lookedAt is when the actor last compared the session with its last
	// publication (last).
	lookedAt time.Time
	last     *sessionStats
	// pending: a flush happened since lookedAt, which may have changed
	// what is shown; urgent: publish at the next flush.
	pending, urgent bool

	talliesSeen uint64
	divergence  divergenceStats
	closes      []closeRecord // ring of statsClosesKept
	closesTotal int
	saves       int
	lastSave    time.Time
	snapshotAt  time.Time
	// rateMark is the start of the current rate window, ratePrevious that
	// of the last complete one.
	rateMark, ratePrevious ratePoint
}

type ratePoint struct {
	at      time.Time
	stamped uint32
}

// stampedOf returns the number of messages stamped on a timeline whose
// last stamped message has seq (sequence numbers start after SeqInitial
// and wrap around).
func stampedOf(seq uint32) uint32 { return seq - protocol.SeqInitial }

// noteClose records the end of a connection (on the actor goroutine, when
// its Disconnect is stepped).
func (p *statsPublisher) noteClose(c *conn, now time.Time) {
	c.mu.Lock()
	code, reason := c.closeCode, c.closeReason
	c.mu.Unlock()
	record := closeRecord{at: now, conn: c.id, remote: c.remote, code: code, reason: reason}
	if len(p.closes) < statsClosesKept {
		p.closes = append(p.closes, record)
	} else {
		p.closes[p.closesTotal%statsClosesKept] = record
	}
	p.closesTotal++
	p.urgent = true
}

// recentCloses returns a copy of the kept closes, oldest first.
func (p *statsPublisher) recentCloses() []closeRecord {
	if len(p.closes) < statsClosesKept {
		return append([]closeRecord(nil), p.closes...)
	}
	start := p.closesTotal % statsClosesKept
	return append(append(make([]closeRecord, 0, statsClosesKept), p.closes[start:]...), p.closes[:start]...)
}

// noteEffects counts what the notes of a flush tell: snapshots accepted
// and SAVEs stored.
func (p *statsPublisher) noteEffects(notes []reflector.Note, now time.Time) {
	for _, note := range notes {
		switch note.Kind {
		case reflector.NoteSnapshot:
			p.snapshotAt = now
		case reflector.NoteSave:
			p.saves++
			p.lastSave = now
		}
	}
}

// checkTallies looks at the tallies the core completed since the last
// look, for divergence.
func (p *statsPublisher) checkTallies(core *reflector.Session, now time.Time) {
	completed := core.TalliesCompleted()
	outcomes := core.RecentTallies(nil, p.talliesSeen)
	p.divergence.unchecked += int(completed-p.talliesSeen) - len(outcomes)
	p.talliesSeen = completed
	for i := range outcomes {
		hashes, cut, hashed := hashesOf(&outcomes[i])
		if !hashed {
			continue
		}
		p.divergence.checked++
		if len(hashes) > 1 {
			p.divergence.diverged++
			outcome := &outcomes[i]
			p.divergence.last = &divergedTally{at: now, key: outcome.Key, sendTime: outcome.SendTime,
				time: outcome.Time, missing: outcome.Missing, hashes: hashes, cut: cut}
		}
	}
	p.urgent = true
}

// hashesOf groups a tally's votes by the state hash they carry: the
// snapshot and persistence votes are JSON objects with a "hash" (and the
// voter's "viewId"), docs/protocol.md §9. hashed is false when no vote
// has one: the tally is about something else, and its votes may differ
// by design.
func hashesOf(outcome *reflector.TallyOutcome) (hashes []hashVotes, cut, hashed bool) {
	cut = outcome.Cut
	for _, vote := range outcome.Votes {
		var fields struct {
			Hash   *string `json:"hash"`
			ViewID string  `json:"viewId"`
		}
		if json.Unmarshal([]byte(vote.Vote), &fields) != nil || fields.Hash == nil {
			continue
		}
		hashed = true
		i := 0
		for i < len(hashes) && hashes[i].hash != *fields.Hash {
			i++
		}
		if i == len(hashes) {
			if len(hashes) == statsTallyHashesMax {
				cut = true
				continue
			}
			hashes = append(hashes, hashVotes{hash: *fields.Hash})
		}
		hashes[i].votes += vote.Count
		switch {
		case fields.ViewID == "":
		case len(hashes[i].views) < statsTallyViewsMax:
			hashes[i].views = append(hashes[i].views, fields.ViewID)
		default:
			cut = true
		}
	}
	return hashes, cut, hashed
}

// publishStats publishes the session's statistics if something shown
// changed (urgent: always). now is the wall time, monotonic the actor's
// monotonic time (ms), for the session time.
func (a *sessionActor) publishStats(now time.Time, monotonic int64) {
	p := &a.statsPublisher
	p.pending, p.lookedAt = false, now
	stats := &sessionStats{id: a.id, publishedAt: now, closes: p.last.closesOrNil(), divergence: p.divergence,
		saves: p.saves, lastSave: p.lastSave, snapshotAccepted: p.snapshotAt}
	if p.urgent { // a close sets urgent: the list may have changed
		stats.closes = p.recentCloses()
	}
	if err := a.host.Failed(); err != nil {
		stats.storageFailure = err.Error()
	}
	if core := a.host.Core(); core != nil {
		stats.record = core.Record()
		stats.record.CompletedTallies = nil // shared with the core, which reuses its array
		stats.sessionTime, stats.started = core.SessionTime(monotonic)
		stats.connections, stats.synced = core.Members()
		stats.stamped = stampedOf(stats.record.Seq)
		stats.buffered, stats.bufferedBytes = core.BufferedMessages(), core.BufferedBytes()
		stats.openTallies = core.OpenTallies()
		stats.pointerKey = core.PointerKey()
		if !p.urgent && p.last.sameAs(stats) {
			return // nothing shown changed: the reader extrapolates time
		}
		stats.members = a.memberStats(core, p.last)
	}
	if p.rateMark.at.IsZero() {
		p.rateMark = ratePoint{at: now, stamped: stats.stamped}
		p.ratePrevious = p.rateMark
	} else if now.Sub(p.rateMark.at) >= statsRateWindow {
		p.ratePrevious, p.rateMark = p.rateMark, ratePoint{at: now, stamped: stats.stamped}
	}
	stats.rateFrom, stats.rateFromStamped = p.ratePrevious.at, p.ratePrevious.stamped
	p.urgent = false
	p.last = stats
	a.stats.Store(stats)
}

// closesOrNil returns the closes of a publication (nil for none).
func (s *sessionStats) closesOrNil() []closeRecord {
	if s == nil {
		return nil
	}
	return s.closes
}

// sameAs reports whether a new publication would show what s shows,
// apart from what the reader extrapolates.
func (s *sessionStats) sameAs(next *sessionStats) bool {
	return s != nil && s.storageFailure == next.storageFailure && s.started == next.started &&
		s.record.Seq == next.record.Seq && s.record.SnapshotSeq == next.record.SnapshotSeq &&
		s.record.SnapshotTime == next.record.SnapshotTime && s.record.PersistentURL == next.record.PersistentURL &&
		s.record.Scale == next.record.Scale && s.connections == next.connections && s.synced == next.synced &&
		s.buffered == next.buffered && s.bufferedBytes == next.bufferedBytes && s.openTallies == next.openTallies &&
		s.saves == next.saves
}

// memberStats lists the core's members with their addresses; the list of
// the last publication is reused if the members are the same.
func (a *sessionActor) memberStats(core *reflector.Session, last *sessionStats) []memberStats {
	views := core.MemberViews(make([]reflector.MemberView, 0, min(len(a.conns), statsMembersMax)), statsMembersMax)
	if last != nil && len(last.members) == len(views) {
		same := true
		for i, view := range views {
			previous := last.members[i].view
			if previous.Conn != view.Conn || previous.Joined != view.Joined || previous.Synced != view.Synced || previous.Connected != view.Connected {
				same = false
				break
			}
		}
		if same {
			return last.members
		}
	}
	members := make([]memberStats, len(views))
	for i, view := range views {
		members[i].view = view
		if c := a.conns[view.Conn]; c != nil {
			members[i].remote = c.remote
		}
	}
	return members
}

// untilStatsDue returns how long until the pending statistics must be
// published (idleTimerWait when none are pending).
func (p *statsPublisher) untilStatsDue(now time.Time) time.Duration {
	if !p.pending {
		return idleTimerWait
	}
	return max(statsPublishInterval-now.Sub(p.lookedAt), 0)
}

// updateStats runs after every flush of the actor: it looks at completed
// tallies, and publishes now when something urgent happened or the
// interval has passed; otherwise it leaves the publication pending (the
// actor's timer comes back for it).
func (a *sessionActor) updateStats(now time.Time) {
	p := &a.statsPublisher
	if core := a.host.Core(); core != nil && core.TalliesCompleted() != p.talliesSeen {
		p.checkTallies(core, now)
	}
	if p.urgent || now.Sub(p.lookedAt) >= statsPublishInterval {
		a.publishStats(now, a.now())
		return
	}
	p.pending = true
}
