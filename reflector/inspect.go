package reflector

import (
	"encoding/json"
	"math"
	"strings"

	"github.com/metronome-sync/metronome/protocol"
)

// Inspection: read-only views of a session for an operator's tools (the
// server's session inspector). Nothing here changes what a session does or
// emits; the only state kept for it is the short list of recently
// completed tallies (tallyLog), which is not persisted.

// MemberView is one member of the session as the core knows it.
type MemberView struct {
	Conn ConnID
	// Joined: the connection sent a valid JOIN. Synced: it received its
	// SYNC and is part of the island. Connected is false while a synced
	// member that went away waits out its leave delay.
	Joined, Synced, Connected bool
	// Ephemeral: the member asked for the ephemeral channel (docs/protocol.md §22).
	Ephemeral bool
	// User is the JOIN's user value (nil: none), as the users messages
	// announce it. Shared with the session: never modify it.
	User json.RawMessage
}

// MemberViews appends to dst the members in connection order, at most
// limit of them, and returns it.
func (s *Session) MemberViews(dst []MemberView, limit int) []MemberView {
	for _, id := range s.order {
		if len(dst) >= limit {
			break
		}
		m := s.members[id]
		dst = append(dst, MemberView{Conn: id, Joined: m.joined, Synced: m.synced, Connected: m.connected, Ephemeral: m.ephemeral, User: m.user})
	}
	return dst
}

// BufferedBytes returns the size of the messages since the last snapshot
// as a SYNC carries them: their encodings with commas between them.
func (s *Session) BufferedBytes() int {
	b := &s.buffer
	if len(b.messages) == 0 {
		return 0
	}
	first := &b.messages[0]
	size := 0
	for i, chunk := range b.chunks[first.chunk-b.chunkBase:] {
		if i == 0 {
			chunk = chunk[first.offset:]
		}
		if len(chunk) > 0 {
			if size > 0 {
				size++ // the comma between two runs
			}
			size += len(chunk)
		}
	}
	return size
}

// SessionTime returns the session time at monotonic time now without
// advancing the session's clock; started is false before a JOIN created
// the island (there is no session time yet).
func (s *Session) SessionTime(now int64) (t int64, started bool) {
	if !s.island {
		return 0, false
	}
	//metronome:allow in range: Scale is clamped to [1/64, 64] at JOIN, the times are ms since the session was loaded
	t = int64(math.Floor((float64(now) - s.scaledStart) * s.record.Scale))
	return max(t, s.record.Time), true
}

// PointerKey returns the key under which the session's persisted data
// pointer is stored ("appId/persistentId"), or "" when the session has no
// persistentId (SAVE is then refused).
func (s *Session) PointerKey() string {
	if s.record.AppID == "" || s.record.PersistentID == "" {
		return ""
	}
	return pointerKey(s.record.AppID, s.record.PersistentID)
}

// OpenTallies returns the number of TUTTI tallies waiting for votes.
func (s *Session) OpenTallies() int { return len(s.tallies) }

// Bounds of what the session keeps of its completed tallies for
// inspection (RecentTallies): votes are opaque strings of up to
// protocol.VotePayloadBytesMax, one per member, so a session keeps only
// this much of each tally's votes.
const (
	// TallyOutcomesKept is the number of most recent completed tallies kept.
	TallyOutcomesKept = 4
	// TallyOutcomeVotesMax is the number of distinct votes kept per tally.
	TallyOutcomeVotesMax = 32
	// TallyOutcomeVoteBytesMax is the longest vote kept whole; a longer
	// one is kept cut to this many bytes.
	TallyOutcomeVoteBytesMax = 512
)

// TallyOutcome is a completed TUTTI tally (docs/protocol.md §6.3).
type TallyOutcome struct {
	Key      string
	SendTime int64
	// Time is the session time at completion, as far as the session had
	// advanced it (the time of its last message, tick or SYNC).
	Time int64
	// Votes are the distinct votes with their counts, in the order they
	// first arrived; at most TallyOutcomeVotesMax of them. Shared: never
	// modify them.
	Votes []protocol.VoteCount
	// Distinct is the number of distinct votes; Cut reports that Votes
	// leaves some out, or holds some cut to TallyOutcomeVoteBytesMax.
	Distinct int
	Cut      bool
	// Missing is the number of expected votes that did not come.
	Missing int
}

// tallyLog keeps the most recent completed tallies for inspection.
type tallyLog struct {
	completed uint64
	recent    []TallyOutcome // ring of TallyOutcomesKept, allocated at the first tally
}

// add records a completed tally. It runs once per tally, not per message.
func (l *tallyLog) add(done *tally, time int64) {
	outcome := TallyOutcome{Key: done.key, SendTime: done.sendTime, Time: time,
		Votes: done.votes, Distinct: len(done.votes), Missing: max(0, done.expecting)}
	if len(outcome.Votes) > TallyOutcomeVotesMax {
		outcome.Votes, outcome.Cut = outcome.Votes[:TallyOutcomeVotesMax:TallyOutcomeVotesMax], true
	}
	copied := false
	for i, vote := range outcome.Votes {
		if len(vote.Vote) <= TallyOutcomeVoteBytesMax {
			continue
		}
		if !copied {
			outcome.Votes, copied = append([]protocol.VoteCount(nil), outcome.Votes...), true
		}
		// Cloned, so that the long vote itself is not kept alive.
		outcome.Votes[i].Vote = strings.Clone(vote.Vote[:TallyOutcomeVoteBytesMax])
		outcome.Cut = true
	}
	if l.recent == nil {
		l.recent = make([]TallyOutcome, TallyOutcomesKept)
	}
	l.recent[l.completed%TallyOutcomesKept] = outcome
	l.completed++
}

// TalliesCompleted returns the number of tallies this session completed
// since it was created or restored (not persisted).
func (s *Session) TalliesCompleted() uint64 { return s.tallyLog.completed }

// RecentTallies appends to dst the completed tallies numbered from (as
// counted by TalliesCompleted, from 0) on, oldest first, as far as they
// are still kept (the last TallyOutcomesKept), and returns it.
func (s *Session) RecentTallies(dst []TallyOutcome, from uint64) []TallyOutcome {
	log := &s.tallyLog
	if log.completed > TallyOutcomesKept {
		from = max(from, log.completed-TallyOutcomesKept)
	}
	for n := from; n < log.completed; n++ {
		dst = append(dst, log.recent[n%TallyOutcomesKept])
	}
	return dst
}
