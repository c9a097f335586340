package reflector

import (
	"encoding/json"

	"github.com/metronome-sync/metronome/protocol"
)

// tally is an open TUTTI vote (docs/protocol.md §6.3).
type tally struct {
	key         string
	sendTime    int64
	expecting   int
	votes       []protocol.VoteCount // in order of first arrival
	wantsVote   bool
	tallyTarget json.RawMessage
	deadline    int64
}

func (s *Session) tutti(now int64, m *member, frame protocol.ClientFrame, out *Effects) {
	if !s.requireIsland(m, protocol.ActionTutti, out) {
		return
	}
	vote, err := protocol.DecodeTutti(frame.Args)
	if err != nil {
		s.reject(m, err, out)
		return
	}
	open := s.tallies[vote.Key]
	if open == nil {
		if vote.SendTime < s.tallyHistoryLimit() || s.tallyCompleted(vote.Key) {
			return // a late vote for a finished or forgotten tally
		}
		if len(s.tallies) >= s.config.TalliesOpenMax {
			out.note(NoteRejected, m.id, "TUTTI ignored: too many open tallies (TalliesOpenMax)")
			return
		}
		if vote.FirstMessage != nil {
			s.submit(now, *vote.FirstMessage, m.id, roomSnapshot, out)
		}
		_, synced := s.Members()
		open = &tally{
			key:         vote.Key,
			sendTime:    vote.SendTime,
			expecting:   synced,
			wantsVote:   vote.WantsVote,
			tallyTarget: vote.TallyTarget,
			deadline:    now + s.config.TallyTimeoutMs,
		}
		s.tallies[vote.Key] = open
		s.tallyOrder = append(s.tallyOrder, vote.Key)
	}
	counted := false
	for i := range open.votes {
		if open.votes[i].Vote == vote.Vote {
			open.votes[i].Count++
			counted = true
			break
		}
	}
	if !counted {
		open.votes = append(open.votes, protocol.VoteCount{Vote: vote.Vote, Count: 1})
	}
	open.expecting--
	if open.expecting <= 0 {
		s.completeTally(now, open, out)
	}
}

func (s *Session) tallyCompleted(key string) bool {
	for _, completed := range s.record.CompletedTallies {
		if completed.Key == key {
			return true
		}
	}
	return false
}

// tallyHistoryLimit is the oldest sendTime a new tally may have: votes
// older than the completed-tally memory could be for a forgotten key.
func (s *Session) tallyHistoryLimit() int64 {
	limit := max(0, s.record.Time-s.config.TallyHistoryMs+1)
	// Keys forgotten to keep the list short must stay rejected: refuse
	// every sendTime up to the newest one forgotten.
	return max(limit, s.record.TalliesForgottenSendTime+1)
}

func (s *Session) completeTally(now int64, done *tally, out *Effects) {
	delete(s.tallies, done.key)
	for i, key := range s.tallyOrder {
		if key == done.key {
			s.tallyOrder = append(s.tallyOrder[:i], s.tallyOrder[i+1:]...)
			break
		}
	}
	if done.wantsVote || len(done.votes) > 1 {
		payload := protocol.TallyPayload(done.sendTime, done.votes, done.tallyTarget, done.key, max(0, done.expecting))
		t := s.advanceTimeAndLease(now, out)
		s.stamp(now, t, payload, nil, 0, roomSnapshot, out)
	}
	s.tallyLog.add(done, s.record.Time)
	completed := append(s.record.CompletedTallies, CompletedTally{Key: done.key, SendTime: done.sendTime})
	oldest := max(0, s.record.Time-s.config.TallyHistoryMs+1)
	kept := completed[:0]
	for _, entry := range completed {
		if entry.SendTime >= oldest {
			kept = append(kept, entry)
		}
	}
	if excess := len(kept) - s.config.TalliesCompletedMax; excess > 0 {
		for _, forgotten := range kept[:excess] {
			s.record.TalliesForgottenSendTime = max(s.record.TalliesForgottenSendTime, forgotten.SendTime)
		}
		kept = kept[excess:]
	}
	s.record.CompletedTallies = append([]CompletedTally(nil), kept...)
	s.writeRecord(out)
}
