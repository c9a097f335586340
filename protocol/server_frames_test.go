package protocol

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

func TestServerFramesRoundTrip(t *testing.T) {
	users := UsersPayload(2, 3, []json.RawMessage{json.RawMessage(`"v1"`)}, nil)
	messages := [][]byte{
		AppendMessage(nil, 201, 4294967281, users, nil),
		AppendMessage(nil, 2611, 4294967282, json.RawMessage(`"cipher"`), []json.RawMessage{json.RawMessage(`"v1/1"`), json.RawMessage(`3`)}),
	}
	sync := &Sync{URL: "http://h/files/s.snap", Messages: messages, Time: 3000, Seq: 4294967282, Tove: "T",
		Reflector: "local", Timeline: "tl", HasSnapshot: true, SnapshotTime: 100, SnapshotSeq: 4294967280}
	frame, err := DecodeServerFrame(AppendSync(nil, "S", sync))
	if err != nil {
		t.Fatal(err)
	}
	got := frame.Sync
	want := &ServerSync{URL: sync.URL, Time: 3000, Seq: 4294967282, Tove: "T", Timeline: "tl",
		HasSnapshot: true, SnapshotTime: 100, SnapshotSeq: 4294967280,
		Messages: []StampedMessage{
			{Time: 201, Seq: 4294967281, Payload: users},
			{Time: 2611, Seq: 4294967282, Payload: json.RawMessage(`"cipher"`), Extra: []json.RawMessage{json.RawMessage(`"v1/1"`), json.RawMessage(`3`)}},
		}}
	if frame.Action != ActionSync || !reflect.DeepEqual(got, want) {
		t.Fatalf("SYNC decoded as %+v, want %+v", got, want)
	}
	change, ok := DecodeUsers(got.Messages[0].Payload)
	if !ok || change.Active != 2 || change.Total != 3 || len(change.Joined) != 1 || string(change.Joined[0]) != `"v1"` {
		t.Fatalf("users decoded as %+v, %v", change, ok)
	}
	if _, ok := DecodeUsers(got.Messages[1].Payload); ok {
		t.Fatal("a string payload decoded as users")
	}

	frame, err = DecodeServerFrame(AppendRecv(nil, "S", messages[1]))
	if err != nil || frame.Action != ActionRecv || !reflect.DeepEqual(frame.Message, want.Messages[1]) {
		t.Fatalf("RECV decoded as %+v, %v", frame, err)
	}
	frame, err = DecodeServerFrame(AppendTick(nil, "S", 777))
	if err != nil || frame.Action != ActionTick || frame.Time != 777 {
		t.Fatalf("TICK decoded as %+v, %v", frame, err)
	}
	frame, err = DecodeServerFrame(AppendInfo(nil, "S", "SNAPSHOT_NEEDED", "take one", "warning"))
	if err != nil || frame.Info.Code != "SNAPSHOT_NEEDED" {
		t.Fatalf("INFO decoded as %+v, %v", frame, err)
	}
	frame, err = DecodeServerFrame(AppendRequ(nil, "S"))
	if err != nil || frame.Action != ActionRequ {
		t.Fatalf("REQU decoded as %+v, %v", frame, err)
	}
}

func TestServerFrameErrors(t *testing.T) {
	for _, input := range []string{
		``, `[]`, `{"action":"NOPE"}`, `{"action":"TICK","args":"x"}`, `{"action":"RECV","args":[1,2]}`,
		`{"action":"RECV","args":[1,-2,"x"]}`, `{"action":"SYNC","args":{"url":""}}`,
		`{"action":"SYNC","args":{"time":1,"seq":2,"messages":[[1]]}}`,
	} {
		_, err := DecodeServerFrame([]byte(input))
		var protocolError *Error
		if !errors.As(err, &protocolError) || protocolError.Code != CloseClientError {
			t.Errorf("%s: got %v, want a *protocol.Error with code %d", input, err, CloseClientError)
		}
	}
}

func TestClientFramesDecodeAsTheReflectorDoes(t *testing.T) {
	join := &JoinRequest{Name: "app/s", AppID: "app", PersistentID: "p", URL: "sim://", SDK: "metronome",
		User: json.RawMessage(`"view1"`), TickMs: 50, Tove: "tv", LeaveDelayMs: 1250}
	frame, err := DecodeClientFrame(AppendJoinFrame(nil, "S", join))
	if err != nil || frame.Action != ActionJoin {
		t.Fatalf("JOIN: %+v, %v", frame, err)
	}
	decoded, err := DecodeJoin(frame.Args)
	if err != nil || decoded.AppID != "app" || decoded.TickMs != 50 || decoded.Tove != "tv" || string(decoded.User) != `"view1"` || decoded.LeaveDelayMs != 1250 {
		t.Fatalf("JOIN args: %+v, %v", decoded, err)
	}

	// A JOIN without a user value (a view that is not announced) omits it.
	frame, err = DecodeClientFrame(AppendJoinFrame(nil, "S", &JoinRequest{Name: "app/s", TickMs: 50}))
	if err != nil || frame.Action != ActionJoin {
		t.Fatalf("JOIN without user: %+v, %v", frame, err)
	}
	if decoded, err = DecodeJoin(frame.Args); err != nil || decoded.User != nil {
		t.Fatalf("JOIN without user args: %+v, %v", decoded, err)
	}

	frame, err = DecodeClientFrame(AppendSendFrame(nil, "S", 5, json.RawMessage(`"p"`), []json.RawMessage{json.RawMessage(`"view1/7"`), json.RawMessage(`0`)}))
	if err != nil || frame.Action != ActionSend {
		t.Fatalf("SEND: %+v, %v", frame, err)
	}
	message, err := DecodeMessage("args", frame.Args)
	if err != nil || string(message.Payload) != `"p"` || len(message.Extra) != 2 || string(message.Extra[0]) != `"view1/7"` {
		t.Fatalf("SEND args: %+v, %v", message, err)
	}

	frame, err = DecodeClientFrame(AppendSnapFrame(nil, "S", 900, 4294967290, "h", "sim://snap/1"))
	if err != nil || frame.Action != ActionSnap {
		t.Fatalf("SNAP: %+v, %v", frame, err)
	}
	snap, err := DecodeSnap(frame.Args)
	if err != nil || snap.Time != 900 || snap.Seq != 4294967290 || snap.Hash != "h" || snap.URL != "sim://snap/1" || snap.Dissident {
		t.Fatalf("SNAP args: %+v, %v", snap, err)
	}

	frame, err = DecodeClientFrame(AppendSaveFrame(nil, "S", 3000, "sim://persisted/\"1\""))
	if err != nil || frame.Action != ActionSave {
		t.Fatalf("SAVE: %+v, %v", frame, err)
	}
	save, err := DecodeSave(frame.Args)
	if err != nil || save.PersistTime != 3000 || save.URL != `sim://persisted/"1"` {
		t.Fatalf("SAVE args: %+v, %v", save, err)
	}

	frame, err = DecodeClientFrame(AppendPulseFrame(nil, "S"))
	if err != nil || frame.Action != ActionPulse {
		t.Fatalf("PULSE: %+v, %v", frame, err)
	}
}

func TestPollAndTuttiFramesDecodeAsTheReflectorDoes(t *testing.T) {
	frame, err := DecodeClientFrame(AppendPollFrame(nil, "S", 9, json.RawMessage(`"poll"`), "pollForSnapshot", 5000))
	if err != nil || frame.Tags.DebounceMs != 5000 || frame.Tags.MsgID != "pollForSnapshot" {
		t.Fatalf("poll: %+v, %v", frame, err)
	}
	frame, err = DecodeClientFrame(AppendTuttiFrame(nil, "S", 9000, `{"hash":"h"}`, true, json.RawMessage(`["handleSnapshotVote"]`), "snapshot@9000"))
	if err != nil || frame.Action != ActionTutti {
		t.Fatalf("TUTTI: %+v, %v", frame, err)
	}
	tutti, err := DecodeTutti(frame.Args)
	if err != nil || tutti.SendTime != 9000 || tutti.Vote != `{"hash":"h"}` || !tutti.WantsVote || tutti.Key != "snapshot@9000" || tutti.FirstMessage != nil {
		t.Fatalf("TUTTI args: %+v, %v", tutti, err)
	}
	payload := TallyPayload(9000, []VoteCount{{Vote: `{"hash":"h"}`, Count: 2}}, json.RawMessage(`["handleSnapshotVote"]`), "snapshot@9000", 1)
	tally, ok := DecodeTally(payload)
	if !ok || tally.Key != "snapshot@9000" || tally.Votes[`{"hash":"h"}`] != 2 || tally.MissingClients != 1 || tally.SendTime != 9000 {
		t.Fatalf("tally %s decoded as %+v, %v", payload, tally, ok)
	}
}
