package protocol_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/metronome-sync/metronome/protocol"
)

// The fuzz targets check the decoders' contract (doc.go): no panic on any
// input; every failure is an *Error with a documented close code, a field
// and a reason that fits a close frame; everything a reflector relays after
// a successful decode re-encodes to valid JSON.
//
// The args decoders (DecodeJoin, DecodeMessage, ...) receive args that
// DecodeClientFrame has already checked to be valid UTF-8, so the properties
// that depend on it are only asserted for valid UTF-8 input: the close
// reason and the re-encoded output are valid UTF-8, and a decoded string
// stays within its byte limit (encoding/json turns each invalid byte into
// the 3-byte U+FFFD, so the limit checked on the raw token can be exceeded
// up to threefold).

// addSeeds seeds f with every sample frame and the args of each, plus extra.
func addSeeds(f *testing.F, extra ...string) {
	frames := sampleFrames(f)
	if len(frames) == 0 {
		f.Fatal("no sample frames in testdata/frames")
	}
	for _, name := range sortedNames(frames) {
		f.Add(frames[name])
		frame, err := protocol.DecodeClientFrame(frames[name])
		if err != nil {
			f.Fatalf("%s: %v", name, err)
		}
		if frame.Args != nil {
			f.Add([]byte(frame.Args))
		}
	}
	for _, seed := range extra {
		f.Add([]byte(seed))
	}
}

// checkFuzzError checks an error against the contract. Its close reason
// must be valid UTF-8 whenever the input was.
func checkFuzzError(t *testing.T, err error, input []byte, codes ...int) {
	t.Helper()
	var protocolError *protocol.Error
	if !errors.As(err, &protocolError) {
		t.Fatalf("error %v is a %T, want *protocol.Error", err, err)
	}
	if !slices.Contains(codes, protocolError.Code) {
		t.Fatalf("close code %d (%v), want one of %v", protocolError.Code, err, codes)
	}
	if protocolError.Field == "" || !strings.Contains(protocolError.Error(), protocolError.Field) {
		t.Fatalf("error %q does not name its field %q", protocolError.Error(), protocolError.Field)
	}
	reason := protocolError.CloseReason()
	if len(reason) > protocol.CloseReasonBytesMax {
		t.Fatalf("close reason of %d bytes: %q", len(reason), reason)
	}
	if utf8.Valid(input) && !utf8.ValidString(reason) {
		t.Fatalf("close reason is not valid UTF-8: %q", reason)
	}
}

// checkStringBytes checks that a decoded string respects its limit.
func checkStringBytes(t *testing.T, value string, bytesMax int, input []byte) {
	t.Helper()
	if utf8.Valid(input) && len(value) > bytesMax {
		t.Fatalf("string of %d bytes accepted, limit %d: %.80q", len(value), bytesMax, value)
	}
}

// checkEncoded checks a frame the reflector would send.
func checkEncoded(t *testing.T, what string, encoded []byte, input []byte) {
	t.Helper()
	if !json.Valid(encoded) {
		t.Fatalf("%s is not valid JSON: %q", what, encoded)
	}
	if utf8.Valid(input) && !utf8.Valid(encoded) {
		t.Fatalf("%s is not valid UTF-8: %q", what, encoded)
	}
}

// checkCompact checks that a relayed raw value is valid, compact JSON.
func checkCompact(t *testing.T, what string, value json.RawMessage) {
	t.Helper()
	var compacted bytes.Buffer
	if err := json.Compact(&compacted, value); err != nil {
		t.Fatalf("%s %q is not valid JSON: %v", what, value, err)
	}
	if !bytes.Equal(compacted.Bytes(), value) {
		t.Fatalf("%s %q is not compact", what, value)
	}
}

// checkMessage re-encodes a decoded message as the reflector relays it and
// checks that decoding the relayed array gives the same message back.
func checkMessage(t *testing.T, field string, message protocol.Message, input []byte) {
	t.Helper()
	if len(message.Payload) > protocol.PayloadBytesMax {
		t.Fatalf("payload of %d bytes accepted", len(message.Payload))
	}
	var payload string
	if err := json.Unmarshal(message.Payload, &payload); err != nil {
		t.Fatalf("payload %q is not a JSON string: %v", message.Payload, err)
	}
	if 3+len(message.Extra) > protocol.MessageElementsMax {
		t.Fatalf("%d extra elements accepted", len(message.Extra))
	}
	for _, extra := range message.Extra {
		checkCompact(t, "extra element", extra)
	}
	stamped := protocol.AppendMessage(nil, 12345, protocol.SeqInitial+1, message.Payload, message.Extra)
	checkEncoded(t, "RECV", protocol.AppendRecv(nil, "S", stamped), input)
	again, err := protocol.DecodeMessage(field, stamped)
	if err != nil {
		t.Fatalf("relayed message %s does not decode: %v", stamped, err)
	}
	if !reflect.DeepEqual(again, message) {
		t.Fatalf("relayed message %s decodes to %+v, want %+v", stamped, again, message)
	}
	if latency, ok := message.LatencyMs(); ok && !(latency > 0 && latency < 60000) {
		t.Fatalf("LatencyMs = %v outside (0, 60000)", latency)
	}
}

func checkJoin(t *testing.T, join protocol.Join, input []byte) {
	t.Helper()
	for _, value := range []string{join.Name, join.AppID, join.PersistentID, join.URL, join.SDK, join.DeveloperID, join.CodeHash, join.Tove} {
		checkStringBytes(t, value, protocol.StringFieldBytesMax, input)
	}
	if join.HasTicks && !(join.TickMs >= protocol.TickMsMin && join.TickMs <= protocol.TickMsMax &&
		join.DelayMs >= 0 && join.DelayMs <= protocol.DelayMsMax) {
		t.Fatalf("ticks out of range: %+v", join)
	}
	if !join.HasTicks && (join.TickMs != 0 || join.DelayMs != 0) {
		t.Fatalf("ticks without HasTicks: %+v", join)
	}
	if join.LeaveDelayMs < 0 || join.LeaveDelayMs > protocol.LeaveDelayMsMax {
		t.Fatalf("LeaveDelayMs %d out of range", join.LeaveDelayMs)
	}
	checkEncoded(t, "SYNC", protocol.AppendSync(nil, "S", &protocol.Sync{Tove: join.Tove, Flags: join.Flags}), input)
	if join.User == nil {
		return
	}
	if len(join.User) > protocol.UserBytesMax {
		t.Fatalf("user of %d bytes accepted", len(join.User))
	}
	checkCompact(t, "user", join.User)
	payload := protocol.UsersPayload(1, 2, []json.RawMessage{join.User}, []json.RawMessage{join.User})
	checkPayloadSize(t, payload)
	checkEncoded(t, "users RECV", protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, 1, 2, payload, nil)), input)
}

func checkTutti(t *testing.T, tutti protocol.Tutti, input []byte) {
	t.Helper()
	if tutti.SendTime < 0 || tutti.Key == "" {
		t.Fatalf("tutti out of range: %+v", tutti)
	}
	checkStringBytes(t, tutti.Key, protocol.TuttiKeyBytesMax, input)
	checkStringBytes(t, tutti.Vote, protocol.VotePayloadBytesMax, input)
	checkCompact(t, "tallyTarget", tutti.TallyTarget)
	if tutti.FirstMessage != nil {
		checkMessage(t, "args[3]", *tutti.FirstMessage, input)
	}
	votes := []protocol.VoteCount{{Vote: tutti.Vote, Count: 1}, {Vote: tutti.Vote + "x", Count: 2}}
	payload := protocol.TallyPayload(tutti.SendTime, votes, tutti.TallyTarget, tutti.Key, 1)
	checkPayloadSize(t, payload)
	checkEncoded(t, "tally RECV", protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, 1, 2, payload, nil)), input)
	var vote string
	if err := json.Unmarshal(protocol.AppendJSString(nil, tutti.Vote), &vote); err != nil || vote != tutti.Vote {
		t.Fatalf("vote %q re-encodes to %q, %v", tutti.Vote, vote, err)
	}
}

func checkSnap(t *testing.T, snap protocol.Snap, input []byte) {
	t.Helper()
	if snap.Time < 0 || snap.URL == "" {
		t.Fatalf("snap out of range: %+v", snap)
	}
	checkStringBytes(t, snap.URL, protocol.StringFieldBytesMax, input)
	checkStringBytes(t, snap.Hash, protocol.StringFieldBytesMax, input)
	checkEncoded(t, "SYNC", protocol.AppendSync(nil, "S", &protocol.Sync{URL: snap.URL, Seq: snap.Seq,
		HasSnapshot: true, SnapshotTime: snap.Time, SnapshotSeq: snap.Seq}), input)
}

// checkFrame decodes the args of an accepted frame as the reflector would
// and checks the result.
func checkFrame(t *testing.T, frame protocol.ClientFrame, input []byte) {
	t.Helper()
	args, err := decodeArgs(frame)
	if err != nil {
		codes := []int{protocol.CloseMalformed}
		if frame.Action == protocol.ActionJoin {
			codes = append(codes, protocol.CloseOutdatedProtocol, protocol.CloseBadAPIKey)
		}
		checkFuzzError(t, err, input, codes...)
		return
	}
	switch frame.Action {
	case protocol.ActionJoin:
		checkJoin(t, args.(protocol.Join), input)
	case protocol.ActionSend:
		checkMessage(t, "args", args.(protocol.Message), input)
	case protocol.ActionTutti:
		checkTutti(t, args.(protocol.Tutti), input)
	case protocol.ActionSnap:
		checkSnap(t, args.(protocol.Snap), input)
	case protocol.ActionSave:
		save := args.(protocol.Save)
		if save.PersistTime < 0 || save.URL == "" {
			t.Fatalf("save out of range: %+v", save)
		}
		checkStringBytes(t, save.URL, protocol.StringFieldBytesMax, input)
		checkEncoded(t, "SYNC", protocol.AppendSync(nil, "S", &protocol.Sync{URL: save.URL, Persisted: true}), input)
	case protocol.ActionTicks:
		ticks := args.(protocol.Ticks)
		if ticks.TickMs < 0 || ticks.TickMs > protocol.TickMsMax || ticks.DelayMs < 0 || ticks.DelayMs > protocol.DelayMsMax || ticks.Scale < 0 {
			t.Fatalf("ticks out of range: %+v", ticks)
		}
	case protocol.ActionPing:
		checkEncoded(t, "PONG", protocol.AppendPong(nil, frame.Args), input)
	case protocol.ActionEphemeral:
		checkEphemeral(t, args.(json.RawMessage), input)
	}
}

// checkEphemeral checks an accepted EPHM payload: a string token within
// the limit, which the relayed frame carries verbatim and a client decodes
// back.
func checkEphemeral(t *testing.T, payload json.RawMessage, input []byte) {
	t.Helper()
	if len(payload) > protocol.EphemeralPayloadBytesMax || len(payload) < 2 || payload[0] != '"' {
		t.Fatalf("ephemeral payload %q accepted", payload)
	}
	relayed := protocol.AppendEphemeral(nil, "S", "v1", payload)
	checkEncoded(t, "EPHM", relayed, input)
	frame, err := protocol.DecodeServerFrame(relayed)
	if err != nil || frame.Ephemeral.From != "v1" || string(frame.Ephemeral.Payload) != string(payload) {
		t.Fatalf("relayed EPHM %s decodes as %+v, %v", relayed, frame.Ephemeral, err)
	}
}

func FuzzDecodeClientFrame(f *testing.F) {
	addSeeds(f,
		``, `42`, `null`, `[]`, `"x"`, `{}`, `{"action":5}`,
		`{"action":"SEND","args":[0,0,"p",1],"tags":{"debounce":-1}}`,
		`{"action":"SEND","args":[0,0,{"what":"users"}]}`,
		"{\"action\":\"LOG\",\"args\":\"\xff\"}",
		`{"action":"JOIN","args":{"version":1e400,"apiKey":null,"ticks":{"tick":"NaN"}}}`,
		`{"action":"TUTTI","args":[1,0,"\ud800",[1,0,"\udc00"],true,{"a" : 1},"k@1"]}`,
		`{"action":"PING","args":{ "a" : [ 1 ] }}`,
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		frame, err := protocol.DecodeClientFrame(data)
		if err != nil {
			// The frame's own bytes are checked before anything is quoted.
			checkFuzzError(t, err, []byte("valid"), protocol.CloseMalformed)
			return
		}
		if len(data) > protocol.FrameBytesMax || !utf8.Valid(data) || !json.Valid(data) {
			t.Fatalf("accepted a frame that is oversize, not UTF-8 or not JSON: %q", data)
		}
		if frame.Args != nil && (!json.Valid(frame.Args) || string(frame.Args) == "null") {
			t.Fatalf("args %q", frame.Args)
		}
		if frame.Tags.DebounceMs < 0 || frame.Tags.DebounceMs > protocol.DebounceMsMax || len(frame.Tags.MsgID) > protocol.MsgIDBytesMax {
			t.Fatalf("tags out of range: %+v", frame.Tags)
		}
		checkFrame(t, frame, data)
	})
}

func FuzzDecodeJoin(f *testing.F) {
	addSeeds(f,
		`{"version":1,"apiKey":"none"}`,
		`{"version":0,"apiKey":"none"}`,
		`{"version":1}`,
		`{"version":1,"apiKey":null,"user":{ "id" : "v1" },"ticks":{},"leaveDelay":60250}`,
		`{"version":"1","apiKey":"none","user":["v1"],"ticks":{"tick":1e12},"flags":{"microverse":1}}`,
		"{\"version\":1,\"apiKey\":\"none\",\"name\":[\"\xff\xfe\"]}",
	)
	f.Fuzz(func(t *testing.T, args []byte) {
		join, err := protocol.DecodeJoin(args)
		if err != nil {
			checkFuzzError(t, err, args, protocol.CloseOutdatedProtocol, protocol.CloseMalformed, protocol.CloseBadAPIKey)
			return
		}
		checkJoin(t, join, args)
	})
}

func FuzzDecodeEphemeral(f *testing.F) {
	addSeeds(f, `"p"`, `""`, `"a\u0041\""`, `["p"]`, `"p" `, `"\ud800"`, "\"\xff\"", `"a"b"`)
	f.Fuzz(func(t *testing.T, args []byte) {
		payload, err := protocol.DecodeEphemeral(args)
		if err != nil {
			checkFuzzError(t, err, args, protocol.CloseMalformed)
			return
		}
		if !json.Valid(payload) {
			t.Fatalf("accepted a payload that is not JSON: %q", payload)
		}
		checkEphemeral(t, payload, args)
	})
}

func FuzzDecodeMessage(f *testing.F) {
	addSeeds(f,
		`[0,0,"p"]`, `[0,0]`, `[0,0,{}]`, `[0,0,"p",3,4,5,6,7,8,9,10,11,12,13,14,15,16]`,
		`[ 1 , 2 , "a\u0041\"" , { "x" : [ 1 ] } , 59999.9 ]`,
		"[0,0,\"\xff\",\"\xfe\"]",
	)
	f.Fuzz(func(t *testing.T, raw []byte) {
		message, err := protocol.DecodeMessage("args", raw)
		if err != nil {
			checkFuzzError(t, err, raw, protocol.CloseMalformed)
			return
		}
		checkMessage(t, "args", message, raw)
	})
}

func FuzzDecodeTutti(f *testing.F) {
	addSeeds(f,
		`[18615,0,"{\"cpuTime\":0.7}",null,true,["handleSnapshotVote"],"snapshot@18615"]`,
		`[9000,0,"v",[9000,0,"c",12],false,null,"persist@9000"]`,
		`[9000,0,"v",null,true,null,""]`,
		`[9000,0,"v",[9000,0,{}],true,null,"k"]`,
		`[1,0,"\ud800",null,1,{ "a" : "\u2028" },"k"]`,
	)
	f.Fuzz(func(t *testing.T, args []byte) {
		tutti, err := protocol.DecodeTutti(args)
		if err != nil {
			checkFuzzError(t, err, args, protocol.CloseMalformed)
			return
		}
		checkTutti(t, tutti, args)
	})
}

func FuzzDecodeSnap(f *testing.F) {
	addSeeds(f,
		`{"time":6218,"seq":4294967283,"hash":"h","url":"u","dissident":null}`,
		`{"time":6218.5,"seq":4294967296,"url":"u"}`,
		`{"time":-1,"seq":1.5,"url":""}`,
		`{"time":1,"seq":1,"url":"u","dissident":{"groupVotes":1}}`,
		"{\"time\":1,\"seq\":1,\"hash\":\"\xff\",\"url\":\"\xc6\xc6\"}",
	)
	f.Fuzz(func(t *testing.T, args []byte) {
		snap, err := protocol.DecodeSnap(args)
		if err != nil {
			checkFuzzError(t, err, args, protocol.CloseMalformed)
			return
		}
		checkSnap(t, snap, args)
	})
}

// FuzzAppendJSString checks that AppendJSString's output decodes back to
// its input for every valid UTF-8 string (the only strings it is given).
func FuzzAppendJSString(f *testing.F) {
	for _, s := range jsStrings() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("AppendJSString is only given valid UTF-8")
		}
		encoded := protocol.AppendJSString(nil, s)
		var decoded string
		if err := json.Unmarshal(encoded, &decoded); err != nil || decoded != s || !utf8.Valid(encoded) {
			t.Fatalf("AppendJSString(%q) = %q decodes to %q, %v", s, encoded, decoded, err)
		}
	})
}
