package replica_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// newSeq is the last seq of a brand-new session (docs/protocol.md §8.1).
const newSeq = uint32(4294967280)

// reflected drives one replica (view v1) with a reflected history.
type reflected struct {
	t      *testing.T
	shell  *shell
	r      *replica.Replica[counter]
	seq    uint32
	time   int64
	times  map[uint32]int64
	inputs map[string]uint64
}

// joinNew joins v1 to a brand-new session.
func joinNew(t *testing.T) *reflected {
	t.Helper()
	s := &shell{}
	h := &reflected{t: t, shell: s, r: newReplica(t, s), seq: newSeq, times: map[uint32]int64{}, inputs: map[string]uint64{}}
	h.r.Step(h.time, link.Received{Conn: 1, Data: protocol.AppendSync(nil, "S", &protocol.Sync{Seq: newSeq, Timeline: "tl"})})
	h.recv(json.RawMessage(`{"what":"users","joined":["v1"],"active":1,"total":1}`), "")
	return h
}

// recv reflects one message (an input of view, if view is not empty) and
// returns its seq.
func (h *reflected) recv(payload json.RawMessage, view string) uint32 {
	h.t.Helper()
	h.seq++
	h.time += 100
	h.times[h.seq] = h.time
	var extra []json.RawMessage
	if view != "" {
		h.inputs[view]++
		extra = []json.RawMessage{json.RawMessage(fmt.Sprintf(`"%s:%d"`, view, h.inputs[view])), json.RawMessage("0")}
	}
	h.r.Step(h.time, link.Received{Conn: 1, Data: protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, h.time, h.seq, payload, extra))})
	if err := h.r.Failed(); err != nil {
		h.t.Fatalf("the replica failed at seq %d: %v", h.seq, err)
	}
	return h.seq
}

func (h *reflected) add(view string) uint32 { return h.recv(mustSeal(h.t), view) }

// tally reflects the tally of a snapshot vote; each vote is
// "view=hash=cpuTime".
func (h *reflected) tally(votes ...string) uint32 {
	h.t.Helper()
	counted := map[string]int{}
	for _, v := range votes {
		parts := strings.Split(v, "=")
		counted[fmt.Sprintf(`{"cpuTime":%s,"hash":%q,"viewId":%q}`, parts[2], parts[1], parts[0])] = 1
	}
	sendTime := h.time + 1
	payload, err := json.Marshal(map[string]any{"what": "tally", "sendTime": sendTime, "tally": counted,
		"tallyTarget": []string{"handleSnapshotVote"}, "tuttiKey": fmt.Sprintf("snapshot@%d", sendTime), "missingClients": 0})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.recv(payload, "")
}

// announce reflects view's announcement of a snapshot.
func (h *reflected) announce(view string, announced island.SnapshotAnnouncement) uint32 {
	h.t.Helper()
	data, err := island.Encode(announced)
	if err != nil {
		h.t.Fatal(err)
	}
	payload, err := plainCodec{}.Seal(island.Envelope{Kind: island.KindSnapshot, Data: data})
	if err != nil {
		h.t.Fatal(err)
	}
	return h.recv(payload, view)
}

// majority returns a majority's snapshot of the state after the tally at
// seq: a counter at n, so that it differs from the replica's.
func (h *reflected) majority(n int, seq uint32) (island.SnapshotAnnouncement, []byte) {
	h.t.Helper()
	var out island.Effects
	i := island.New(app, "a", &out)
	envelope := island.Envelope{Kind: island.KindEvent, Name: "add"}
	for k := range n {
		i.Apply(island.Message{Time: h.times[seq], Seq: seq - uint32(n) + uint32(k) + 1, Envelope: &envelope}, &out)
	}
	data, hash := i.Snapshot()
	return island.SnapshotAnnouncement{Time: h.times[seq], Seq: seq, Hash: hash, URL: fmt.Sprintf("files/majority-%d", seq)}, data
}

func (h *reflected) model() int { return h.r.Island().Model().N }

func (h *reflected) lastDivergence() island.Divergence {
	h.t.Helper()
	if len(h.shell.divergences) == 0 {
		h.t.Fatal("no divergence reported")
	}
	return h.shell.divergences[len(h.shell.divergences)-1]
}

// minority is a vote that v1 loses to a and b.
var minority = []string{"a=h1=1", "b=h1=2", "v1=h2=3"}

// TestMinorityReplicaReloadsTheMajoritySnapshot: a replica outside the
// majority of a vote keeps the messages after the tally, loads the
// snapshot its uploader announces, replays them on it, applies those that
// came during the download, and only then reports the divergence,
// recovered. Every message takes effect once.
func TestMinorityReplicaReloadsTheMajoritySnapshot(t *testing.T) {
	h := joinNew(t)
	h.add("b")
	h.add("b")
	tallied := h.tally(minority...)
	if len(h.shell.divergences) != 0 {
		t.Fatalf("a divergence being repaired was reported before the outcome: %+v", h.shell.divergences)
	}
	afterTally := h.add("b")
	announced, data := h.majority(10, tallied)
	announcement := h.announce("a", announced)
	if got := h.shell.downloads; len(got) != 1 || got[0] != announced.URL {
		t.Fatalf("downloads %q, want the announced %s", got, announced.URL)
	}
	duringDownload := h.add("b")
	if h.model() != 3 {
		t.Fatalf("model %d while the snapshot loads, want the diverged 3 (the message during the download held)", h.model())
	}
	logged := len(h.shell.log)
	votes := h.shell.votes
	h.r.Step(h.time, replica.SnapshotLoaded{URL: announced.URL, Data: data})

	if h.model() != 12 {
		t.Fatalf("model %d after the reload, want 10 from the snapshot + the add kept after the tally + the add held during the download", h.model())
	}
	want := []string{fmt.Sprintf("reset %q restored=true", announced.URL),
		fmt.Sprintf("applied %d", afterTally), fmt.Sprintf("applied %d", announcement), fmt.Sprintf("applied %d", duringDownload)}
	if got := h.shell.log[logged:]; strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after the load:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	d := h.lastDivergence()
	if len(h.shell.divergences) != 1 || !d.Local || !d.Majority || !d.Recovered || d.Repeated || d.Reason != "" || d.Seq != tallied ||
		d.LocalHash != "h2" || d.Groups[0].Hash != "h1" {
		t.Fatalf("divergences %+v, want one: local, majority, recovered at seq %d", h.shell.divergences, tallied)
	}
	if !strings.Contains(d.Error(), "recovered") {
		t.Errorf("the report %q does not say it recovered", d.Error())
	}
	if h.r.Recoveries() != 1 || !h.r.FromSnapshot() || h.shell.votes != votes || len(h.shell.uploads) != 0 {
		t.Errorf("recoveries %d, from snapshot %v, votes %d → %d, uploads %d", h.r.Recoveries(), h.r.FromSnapshot(), votes, h.shell.votes, len(h.shell.uploads))
	}
	// A second announcement of the same snapshot (a re-sent input) is ignored.
	h.announce("a", announced)
	if len(h.shell.downloads) != 1 {
		t.Errorf("downloads %q after a repeated announcement", h.shell.downloads)
	}
}

// TestMajorityUploaderAnnouncesItsSnapshot: the majority's uploader of a
// split vote, once its snapshot is stored, tells the session where it is
// (a KindSnapshot input) besides telling the reflector (SNAP). After a
// vote that agrees, it only sends SNAP.
func TestMajorityUploaderAnnouncesItsSnapshot(t *testing.T) {
	h := joinNew(t)
	h.add("b")
	tallied := h.tally("v1=h1=0.1", "b=h1=0.5", "c=h2=0.01")
	if len(h.shell.uploads) != 1 || !h.shell.uploads[0].Announce || h.shell.uploads[0].Seq != tallied {
		t.Fatalf("uploads %+v, want this replica's of seq %d, to announce", h.shell.uploads, tallied)
	}
	if d := h.lastDivergence(); d.Local || d.Recovered {
		t.Fatalf("divergence %+v: this replica is in the majority", d)
	}
	upload := h.shell.uploads[0]
	sent := len(h.shell.frames)
	h.r.Step(h.time, replica.SnapshotStored{Time: upload.Time, Seq: upload.Seq, Hash: upload.Hash, URL: "files/u"})
	frames := h.shell.frames[sent:]
	if len(frames) != 2 || !strings.Contains(string(frames[0]), `"SNAP"`) {
		t.Fatalf("frames %q, want SNAP and the announcement", frames)
	}
	var send struct {
		Action string
		Args   []json.RawMessage
	}
	if err := json.Unmarshal(frames[1], &send); err != nil || send.Action != "SEND" || len(send.Args) < 3 {
		t.Fatalf("frame %s: %v, want a SEND", frames[1], err)
	}
	envelope, err := plainCodec{}.Open(send.Args[2])
	var announced island.SnapshotAnnouncement
	if err == nil {
		err = island.Decode(envelope.Data, &announced)
	}
	if err != nil || envelope.Kind != island.KindSnapshot ||
		announced != (island.SnapshotAnnouncement{Time: upload.Time, Seq: upload.Seq, Hash: upload.Hash, URL: "files/u"}) {
		t.Fatalf("announcement %+v %+v: %v", envelope, announced, err)
	}

	h.tally("v1=h3=0.1", "b=h3=0.5")
	upload = h.shell.uploads[1]
	sent = len(h.shell.frames)
	h.r.Step(h.time, replica.SnapshotStored{Time: upload.Time, Seq: upload.Seq, Hash: upload.Hash, URL: "files/v"})
	if frames := h.shell.frames[sent:]; upload.Announce || len(frames) != 1 {
		t.Fatalf("after an agreeing vote: announce %v, frames %q, want SNAP only", upload.Announce, frames)
	}
}

// TestAReplicaThatKeepsDivergingStopsReloading: after a recovery, a
// divergence within RecoveryRepeatTallies votes is Repeated and names the
// first message after the snapshot; after RecoveriesInARowMax recoveries
// in a row the replica reports without reloading.
func TestAReplicaThatKeepsDivergingStopsReloading(t *testing.T) {
	h := joinNew(t)
	var previous uint32
	for k := 0; k <= replica.RecoveriesInARowMax; k++ {
		h.add("b")
		tallied := h.tally(minority...)
		if k == replica.RecoveriesInARowMax {
			d := h.lastDivergence()
			if len(h.shell.divergences) != k+1 || d.Recovered || !d.Repeated || !strings.Contains(d.Reason, "RecoveriesInARowMax") {
				t.Fatalf("divergence %d: %+v, want a report without a reload, repeated, naming RecoveriesInARowMax", k, d)
			}
			if d.Suspect == nil || d.Suspect.Seq != previous+1 || d.Suspect.What != `event "add" from view b` {
				t.Fatalf("suspect %v, want the add at seq %d, the first message after the snapshot of seq %d", d.Suspect, previous+1, previous)
			}
			if !strings.Contains(d.Error(), "keeps diverging") || !strings.Contains(d.Error(), fmt.Sprintf("seq %d", previous+1)) {
				t.Errorf("report %q", d.Error())
			}
			break
		}
		h.add("b")
		announced, data := h.majority(100*(k+1), tallied)
		h.announce("a", announced)
		h.r.Step(h.time, replica.SnapshotLoaded{URL: announced.URL, Data: data})
		d := h.lastDivergence()
		if len(h.shell.divergences) != k+1 || !d.Recovered || d.Repeated != (k > 0) {
			t.Fatalf("divergence %d: %+v, want recovered, repeated %v", k, d, k > 0)
		}
		if k > 0 && (d.Suspect == nil || d.Suspect.Seq != previous+1) {
			t.Fatalf("divergence %d: suspect %v, want seq %d", k, d.Suspect, previous+1)
		}
		if h.model() != 100*(k+1)+1 {
			t.Fatalf("model %d after recovery %d, want %d", h.model(), k, 100*(k+1)+1)
		}
		previous = tallied
	}
	downloads := len(h.shell.downloads)
	h.tally(minority...)
	if d := h.lastDivergence(); d.Recovered || !strings.Contains(d.Reason, "not reloading again") {
		t.Fatalf("after giving up: %+v", d)
	}
	if len(h.shell.downloads) != downloads || h.r.Recoveries() != replica.RecoveriesInARowMax {
		t.Fatalf("downloads %d → %d, recoveries %d, want no more reloads after %d", downloads, len(h.shell.downloads), h.r.Recoveries(), replica.RecoveriesInARowMax)
	}
}

// TestRecoveryWithoutAnAnnouncementOrAMajority: without the majority's
// snapshot within RecoveryWaitMs the divergence is reported, not
// recovered; a late announcement is ignored. A split without a strict
// majority is reported at once.
func TestRecoveryWithoutAnAnnouncementOrAMajority(t *testing.T) {
	h := joinNew(t)
	h.add("b")
	tallied := h.tally(minority...)
	for end := h.time + replica.RecoveryWaitMs + 1; h.time < end; { // ticks, as the reflector sends them
		h.time = min(h.time+1000, end)
		h.r.Step(h.time, link.Received{Conn: 1, Data: protocol.AppendTick(nil, "S", h.time)})
	}
	d := h.lastDivergence()
	if d.Recovered || !strings.Contains(d.Reason, "RecoveryWaitMs") {
		t.Fatalf("divergence %+v, want not recovered, naming RecoveryWaitMs", d)
	}
	announced, _ := h.majority(5, tallied)
	h.announce("a", announced)
	if len(h.shell.downloads) != 0 {
		t.Fatalf("downloads %q after the wait ended", h.shell.downloads)
	}

	h.tally("a=h1=1", "v1=h2=2")
	if d := h.lastDivergence(); !d.Local || d.Majority || d.Recovered || !strings.Contains(d.Reason, "more than half") {
		t.Fatalf("a one-to-one split: %+v, want reported at once without a majority", d)
	}
}
