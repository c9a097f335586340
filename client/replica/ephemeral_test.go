package replica_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// ephemeralShell is a shell that takes the other views' broadcasts.
type ephemeralShell struct {
	shell
	received []string
}

func (s *ephemeralShell) Ephemeral(from string, payload json.RawMessage) {
	s.received = append(s.received, from+" "+string(payload))
}

// TestEphemeralBypassesTheModel: a broadcast goes out as an EPHM, one that
// arrives goes to the EphemeralObserver; neither is an input, a message or
// a change of the model.
func TestEphemeralBypassesTheModel(t *testing.T) {
	s := &ephemeralShell{}
	r, err := replica.New(replica.Options[counter]{App: app,
		Link:      link.Config{SessionID: "S", ViewID: "v1", Seed: 1, Join: protocol.JoinRequest{Ephemeral: true}},
		Transport: s, Files: s, Codec: plainCodec{}, Observer: s})
	if err != nil {
		t.Fatal(err)
	}
	r.Step(0, link.Start{})
	r.Step(0, link.Opened{Conn: 1})
	r.Step(10, link.Received{Conn: 1, Data: protocol.AppendSync(nil, "S", &protocol.Sync{Time: 10, Seq: 4294967280, Timeline: "tl"})})
	users := protocol.UsersPayload(1, 1, []json.RawMessage{json.RawMessage(`"v1"`)}, nil)
	r.Step(20, link.Received{Conn: 1, Data: protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, 20, 4294967281, users, nil))})
	if !r.Link().Joined() {
		t.Fatal("not joined")
	}
	hash := r.Island().Hash()

	if err := r.Broadcast(30, "pointer", json.RawMessage(`"sealed"`)); err != nil {
		t.Fatal(err)
	}
	last := string(s.frames[len(s.frames)-1])
	if !strings.Contains(last, `"action":"EPHM","args":"sealed"`) {
		t.Fatalf("last frame %s, want the EPHM", last)
	}
	if err := r.Broadcast(31, "pointer", json.RawMessage(`{}`)); err == nil {
		t.Fatal("a payload that is not a string was accepted")
	}
	r.Step(40, link.Received{Conn: 1, Data: protocol.AppendEphemeral(nil, "S", "v2", json.RawMessage(`"theirs"`))})
	if strings.Join(s.received, "|") != `v2 "theirs"` {
		t.Fatalf("received %q", s.received)
	}
	if r.Island().Hash() != hash || r.Link().PendingInputs() != 0 {
		t.Fatal("a broadcast changed the model or became an input")
	}
	if seq, _ := r.Island().Seq(); seq != 4294967281 {
		t.Fatalf("seq %d after broadcasts, want 4294967281", seq)
	}
}
