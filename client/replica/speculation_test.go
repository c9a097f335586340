package replica_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// journal is a model where order matters: it records every "put" as
// "view:data".
type journal struct{ Log []string }

var journalApp = island.App[journal]{ID: "test.journal", Version: "1", SnapshotIntervalMs: 5000,
	Events: map[string]island.Handler[journal]{
		"put": func(m *journal, _ *island.Context, e island.Event) {
			var text string
			e.Decode(&text)
			m.Log = append(m.Log, e.View+":"+text)
		},
	}}

// node is one replica of a journal session with its shell.
type node struct {
	shell *shell
	r     *replica.Replica[journal]
	sent  int // frames of shell.frames already collected
}

// session is an in-memory reflector for nodes: it collects their SENDs
// and reflects them, in an order the test chooses, to every node.
type session struct {
	t      *testing.T
	nodes  []*node
	seq    uint32
	time   int64
	queued []protocol.Message
}

func newSession(t *testing.T, speculation ...replica.SpeculationOptions) *session {
	t.Helper()
	s := &session{t: t, seq: newSeq}
	var views []string
	for i, options := range speculation {
		view := fmt.Sprintf("v%d", i+1)
		views = append(views, `"`+view+`"`)
		sh := &shell{}
		r, err := replica.New(replica.Options[journal]{App: journalApp, Link: link.Config{SessionID: "S", ViewID: view, Seed: 1},
			Transport: sh, Files: sh, Codec: plainCodec{}, Observer: sh, Speculation: options})
		if err != nil {
			t.Fatal(err)
		}
		r.Step(0, link.Start{})
		r.Step(0, link.Opened{Conn: 1})
		r.Step(0, link.Received{Conn: 1, Data: protocol.AppendSync(nil, "S", &protocol.Sync{Seq: newSeq, Timeline: "tl"})})
		s.nodes = append(s.nodes, &node{shell: sh, r: r})
	}
	s.broadcast(json.RawMessage(`{"what":"users","joined":[`+strings.Join(views, ",")+`],"active":2,"total":2}`), nil)
	return s
}

// publish has node i publish a "put" of text; the SEND is queued.
func (s *session) publish(i int, text string) {
	s.t.Helper()
	data, _ := island.Encode(text)
	if err := s.nodes[i].r.Publish(s.time, island.Envelope{Kind: island.KindEvent, Name: "put", Data: data}); err != nil {
		s.t.Fatal(err)
	}
	n := s.nodes[i]
	for ; n.sent < len(n.shell.frames); n.sent++ {
		frame, err := protocol.DecodeClientFrame(n.shell.frames[n.sent])
		if err != nil || frame.Action != protocol.ActionSend {
			continue
		}
		message, err := protocol.DecodeMessage("args", frame.Args)
		if err != nil {
			s.t.Fatal(err)
		}
		s.queued = append(s.queued, message)
	}
}

// reflect stamps the k-th queued SEND and sends it to every node.
func (s *session) reflect(k int) {
	s.t.Helper()
	message := s.queued[k]
	s.queued = slices.Delete(s.queued, k, k+1)
	s.broadcast(message.Payload, message.Extra)
}

func (s *session) broadcast(payload json.RawMessage, extra []json.RawMessage) {
	s.seq++
	s.time += 10
	frame := protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, s.time, s.seq, payload, extra))
	for _, n := range s.nodes {
		n.r.Step(s.time, link.Received{Conn: 1, Data: frame})
		if err := n.r.Failed(); err != nil {
			s.t.Fatal(err)
		}
	}
}

func (s *session) view(i int) []string      { return s.nodes[i].r.View().Model().Log }
func (s *session) confirmed(i int) []string { return s.nodes[i].r.Island().Model().Log }

func equal(t *testing.T, what string, got []string, want ...string) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Errorf("%s: %q, want %q", what, got, want)
	}
}

// TestSpeculationShowsOwnInputAtOnce: a published input shows in View
// before it is reflected, never in the confirmed state; once reflected in
// the order speculated, it is kept, not rolled back.
func TestSpeculationShowsOwnInputAtOnce(t *testing.T) {
	s := newSession(t, replica.SpeculationOptions{Enabled: true})
	s.view(0) // a frame before the input: nothing pending, the confirmed state
	s.publish(0, "a")
	equal(t, "view after Publish", s.view(0), "v1:a")
	equal(t, "confirmed after Publish", s.confirmed(0))
	s.publish(0, "b")
	equal(t, "view after the second Publish", s.view(0), "v1:a", "v1:b")
	if stats := s.nodes[0].r.SpeculationStats(); stats.Pending != 2 || stats.Rebuilds != 1 || stats.Replays != 1 {
		t.Errorf("stats %+v: want 2 pending; one rebuild replaying the first input, the second applied at once", stats)
	}
	s.reflect(0)
	s.reflect(0)
	equal(t, "confirmed after the round trip", s.confirmed(0), "v1:a", "v1:b")
	if s.nodes[0].r.View() != s.nodes[0].r.Island() {
		t.Error("with nothing pending, View is not the confirmed island")
	}
	if stats := s.nodes[0].r.SpeculationStats(); stats.Kept != 2 || stats.Rollbacks != 0 || stats.Pending != 0 || stats.Speculated != 2 {
		t.Errorf("stats %+v: want both kept, no rollback", stats)
	}
}

// TestSpeculationRollsBackWhenAnotherInputCameFirst: the reflector orders
// another view's input before this view's speculated one; the view is
// rebuilt in the reflector's order, and the confirmed states of the
// speculative and the non-speculative replica are identical.
func TestSpeculationRollsBackWhenAnotherInputCameFirst(t *testing.T) {
	s := newSession(t, replica.SpeculationOptions{Enabled: true}, replica.SpeculationOptions{})
	s.publish(0, "mine")
	s.publish(1, "theirs")
	equal(t, "speculative view", s.view(0), "v1:mine")
	equal(t, "the other replica's view (no speculation)", s.view(1))
	s.reflect(1) // theirs first
	equal(t, "view after the other input", s.view(0), "v2:theirs", "v1:mine")
	stats := s.nodes[0].r.SpeculationStats()
	if stats.Rollbacks != 1 || stats.Rebuilds != 2 {
		t.Errorf("stats %+v: want the second rebuild to be a rollback", stats)
	}
	s.reflect(0)
	equal(t, "confirmed", s.confirmed(0), "v2:theirs", "v1:mine")
	if a, b := s.nodes[0].r.Island().Hash(), s.nodes[1].r.Island().Hash(); a != b {
		t.Errorf("confirmed hashes differ: speculative %s, plain %s", a, b)
	}
	equal(t, "view once confirmed", s.view(0), "v2:theirs", "v1:mine")
}

// TestSpeculationNeverTouchesTheConfirmedState: building and reading the
// speculative state leaves the confirmed state's hash as it was.
func TestSpeculationNeverTouchesTheConfirmedState(t *testing.T) {
	s := newSession(t, replica.SpeculationOptions{Enabled: true}, replica.SpeculationOptions{})
	before := s.nodes[0].r.Island().Hash()
	for k := range 5 {
		s.publish(0, fmt.Sprint(k))
		s.view(0)
	}
	if after := s.nodes[0].r.Island().Hash(); after != before {
		t.Fatalf("the confirmed hash changed from %s to %s while only speculating", before, after)
	}
	if vote := s.nodes[0].shell.votes; vote != 0 {
		t.Fatalf("speculation voted %d times", vote)
	}
}

// TestSpeculationIsBounded: beyond InputsMax unconfirmed inputs, inputs
// are sent but not shown until older ones are confirmed.
func TestSpeculationIsBounded(t *testing.T) {
	s := newSession(t, replica.SpeculationOptions{Enabled: true, InputsMax: 2}, replica.SpeculationOptions{})
	for _, text := range []string{"1", "2", "3"} {
		s.publish(0, text)
	}
	if len(s.queued) != 3 {
		t.Fatalf("%d inputs sent, want all 3", len(s.queued))
	}
	equal(t, "view with 3 pending, at most 2 shown", s.view(0), "v1:1", "v1:2")
	if stats := s.nodes[0].r.SpeculationStats(); stats.Pending != 2 || stats.Deferred != 1 {
		t.Errorf("stats %+v: want 2 pending, 1 deferred", stats)
	}
	s.reflect(0)
	equal(t, "view after the first is confirmed", s.view(0), "v1:1", "v1:2", "v1:3")
	if _, err := replica.New(replica.Options[journal]{App: journalApp, Link: link.Config{SessionID: "S", ViewID: "v"},
		Speculation: replica.SpeculationOptions{Enabled: true, InputsMax: replica.SpeculativeInputsMaxLimit + 1}}); err == nil ||
		!strings.Contains(err.Error(), "InputsMax") {
		t.Errorf("InputsMax beyond the limit: %v, want an error naming the field", err)
	}
}

// TestSpeculationRebuildKeepsToItsBudget: a rebuild that runs out of its
// time budget shows the confirmed state for that call and resumes at the
// next.
func TestSpeculationRebuildKeepsToItsBudget(t *testing.T) {
	var clock int64
	tick := func() int64 { clock += 1_000_000; return clock } // every reading is 1 ms later
	s := newSession(t, replica.SpeculationOptions{Enabled: true, BudgetNs: 2_500_000, Clock: tick}, replica.SpeculationOptions{})
	for _, text := range []string{"1", "2", "3", "4"} {
		s.publish(0, text)
	}
	s.publish(1, "other")
	s.reflect(4) // the other view's input: every speculated input replays
	var frames [][]string
	for range 4 {
		frames = append(frames, s.view(0))
	}
	equal(t, "first frame (over budget)", frames[0], "v2:other")
	equal(t, "a later frame", frames[3], "v2:other", "v1:1", "v1:2", "v1:3", "v1:4")
	stats := s.nodes[0].r.SpeculationStats()
	if stats.OverBudget == 0 || stats.RebuildNs == 0 {
		t.Errorf("stats %+v: want rebuilds over budget, with their time", stats)
	}
}

// TestSpeculationAfterAReset: a SYNC that rebuilds the confirmed state
// (a new timeline) rolls the speculation back onto it; inputs still
// pending in the link stay speculated.
func TestSpeculationAfterAReset(t *testing.T) {
	s := newSession(t, replica.SpeculationOptions{Enabled: true})
	s.publish(0, "a")
	equal(t, "view", s.view(0), "v1:a")
	r := s.nodes[0].r
	r.Step(s.time, link.Closed{Conn: 1, Code: 1006})
	r.Step(s.time+60_000, link.Wake{})
	r.Step(s.time+60_000, link.Opened{Conn: 2})
	r.Step(s.time+60_000, link.Received{Conn: 2, Data: protocol.AppendSync(nil, "S", &protocol.Sync{Seq: newSeq, Timeline: "other"})})
	if r.Island() == nil {
		t.Fatal("no island after the reset")
	}
	equal(t, "view after the reset", r.View().Model().Log, "v1:a")
	if stats := r.SpeculationStats(); stats.Rollbacks != 1 {
		t.Errorf("stats %+v: want the reset counted as a rollback", stats)
	}
}
