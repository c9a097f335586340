package reflector_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// inspectSession drives a core directly, for the read-only accessors.
type inspectSession struct {
	t       *testing.T
	session *reflector.Session
	now     int64
	out     reflector.Effects
	// stored are the encodings of the messages stamped so far.
	stored [][]byte
}

func (s *inspectSession) step(event reflector.Event) {
	s.t.Helper()
	s.out.Reset()
	s.session.Step(s.now, event, &s.out)
	for _, message := range s.out.Storage.Append {
		s.stored = append(s.stored, message.Data)
	}
}

func (s *inspectSession) receive(conn reflector.ConnID, text string) {
	s.t.Helper()
	frame, err := protocol.DecodeClientFrame([]byte(text))
	if err != nil {
		s.t.Fatalf("decoding %s: %v", text, err)
	}
	s.step(reflector.Receive{Conn: conn, Frame: frame})
}

func (s *inspectSession) join(conn reflector.ConnID, user string) {
	s.t.Helper()
	s.step(reflector.Connect{Conn: conn})
	s.receive(conn, fmt.Sprintf(`{"id":"S","action":"JOIN","args":{"name":"app.example/room","apiKey":"none","appId":"app.example","persistentId":"P1","sdk":"2.0.4","version":1,"user":%q,"ticks":{"tick":50,"delay":0},"leaveDelay":1250}}`, user))
	for _, note := range s.out.Notes {
		if note.Kind == reflector.NoteRejected {
			s.t.Fatalf("JOIN rejected: %s", note.Text)
		}
	}
}

func (s *inspectSession) vote(conn reflector.ConnID, key, vote string) {
	s.t.Helper()
	s.receive(conn, fmt.Sprintf(`{"id":"S","action":"TUTTI","args":[10,0,%q,null,true,["target"],%q]}`, vote, key))
}

func TestInspectionAccessors(t *testing.T) {
	s := &inspectSession{t: t, session: reflector.New(reflector.DefaultConfig(), "S", "timeline1", 1000), now: 1000}
	if _, started := s.session.SessionTime(s.now); started {
		t.Errorf("SessionTime before any JOIN: started, want not")
	}
	s.join(1, "view-a")
	// The persisted pointer lookup holds the SYNC: answer it.
	s.step(reflector.PointerLoaded{})
	s.join(2, "view-b")
	s.now += 500
	s.step(reflector.Wake{})
	for i := range 3 {
		s.receive(1, fmt.Sprintf(`{"id":"S","action":"SEND","args":[0,0,"input %d"]}`, i))
	}

	members := s.session.MemberViews(nil, 10)
	if len(members) != 2 || members[0].Conn != 1 || members[1].Conn != 2 {
		t.Fatalf("MemberViews = %+v, want connections 1 and 2 in order", members)
	}
	for i, member := range members {
		if !member.Joined || !member.Synced || !member.Connected || string(member.User) != fmt.Sprintf(`"view-%c"`, 'a'+i) {
			t.Errorf("member %d: %+v (user %s), want joined, synced, connected with its user", i, member, member.User)
		}
	}
	if limited := s.session.MemberViews(nil, 1); len(limited) != 1 {
		t.Errorf("MemberViews with limit 1 returned %d members", len(limited))
	}

	wantBytes := len(s.stored) - 1 // commas
	for _, message := range s.stored {
		wantBytes += len(message)
	}
	if got := s.session.BufferedMessages(); got != len(s.stored) {
		t.Errorf("BufferedMessages = %d, want the %d stamped", got, len(s.stored))
	}
	if got := s.session.BufferedBytes(); got != wantBytes {
		t.Errorf("BufferedBytes = %d, want %d (the stamped messages with commas between them)", got, wantBytes)
	}
	if now, started := s.session.SessionTime(s.now); !started || now != 500 {
		t.Errorf("SessionTime = %d, %v; want 500 ms after the JOIN", now, started)
	}
	if key := s.session.PointerKey(); key != "app.example/P1" {
		t.Errorf("PointerKey = %q", key)
	}
}

func TestInspectionKeepsRecentTallies(t *testing.T) {
	s := &inspectSession{t: t, session: reflector.New(reflector.DefaultConfig(), "S", "timeline1", 1000), now: 1000}
	s.join(1, "view-a")
	s.step(reflector.PointerLoaded{})
	s.join(2, "view-b")

	s.vote(1, "snapshot@10", `{"hash":"h1","viewId":"view-a"}`)
	if open := s.session.OpenTallies(); open != 1 {
		t.Errorf("OpenTallies = %d after the first vote, want 1", open)
	}
	long := `{"hash":"` + strings.Repeat("x", reflector.TallyOutcomeVoteBytesMax) + `"}`
	s.vote(2, "snapshot@10", long)
	if completed := s.session.TalliesCompleted(); completed != 1 {
		t.Fatalf("TalliesCompleted = %d, want 1", completed)
	}
	outcomes := s.session.RecentTallies(nil, 0)
	if len(outcomes) != 1 {
		t.Fatalf("RecentTallies = %+v, want one", outcomes)
	}
	outcome := outcomes[0]
	if outcome.Key != "snapshot@10" || outcome.Distinct != 2 || !outcome.Cut || outcome.Missing != 0 ||
		outcome.Votes[0].Vote != `{"hash":"h1","viewId":"view-a"}` || len(outcome.Votes[1].Vote) != reflector.TallyOutcomeVoteBytesMax {
		t.Errorf("outcome %+v, want both votes, the long one cut", outcome)
	}

	// Only the last TallyOutcomesKept are kept; asking from 0 returns them.
	for i := range reflector.TallyOutcomesKept + 2 {
		key := fmt.Sprintf("k@%d", 20+i)
		s.vote(1, key, "yes")
		s.vote(2, key, "yes")
	}
	all := s.session.RecentTallies(nil, 0)
	if completed := s.session.TalliesCompleted(); completed != reflector.TallyOutcomesKept+3 || len(all) != reflector.TallyOutcomesKept {
		t.Fatalf("after %d more tallies: TalliesCompleted %d, RecentTallies %d", reflector.TallyOutcomesKept+2, completed, len(all))
	}
	if last := all[len(all)-1]; last.Key != fmt.Sprintf("k@%d", 20+reflector.TallyOutcomesKept+1) || last.Distinct != 1 {
		t.Errorf("last outcome %+v", last)
	}
	if newest := s.session.RecentTallies(nil, s.session.TalliesCompleted()-1); len(newest) != 1 || newest[0].Key != all[len(all)-1].Key {
		t.Errorf("RecentTallies from the last one: %+v", newest)
	}
}
