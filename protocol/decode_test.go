package protocol_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/metronome-sync/metronome/protocol"
)

// requireError checks that err is an *Error with the given close code whose
// Field is field and whose Error() names it, and that its close reason fits
// a WebSocket close frame.
func requireError(t *testing.T, err error, code int, field string) *protocol.Error {
	t.Helper()
	var protocolError *protocol.Error
	if !errors.As(err, &protocolError) {
		t.Fatalf("error = %v (%T), want *protocol.Error with code %d naming %q", err, err, code, field)
	}
	if protocolError.Code != code {
		t.Errorf("Code = %d, want %d (error: %v)", protocolError.Code, code, err)
	}
	if protocolError.Field != field {
		t.Errorf("Field = %q, want %q (error: %v)", protocolError.Field, field, err)
	}
	if !strings.Contains(protocolError.Error(), field) {
		t.Errorf("Error() = %q does not name %q", protocolError.Error(), field)
	}
	reason := protocolError.CloseReason()
	if len(reason) > protocol.CloseReasonBytesMax || !utf8.ValidString(reason) {
		t.Errorf("CloseReason() = %q: %d bytes, valid UTF-8 %v; want at most %d bytes of valid UTF-8",
			reason, len(reason), utf8.ValidString(reason), protocol.CloseReasonBytesMax)
	}
	return protocolError
}

// errorCase is an input that must fail with code, naming field; when
// mentions is set, Error() must also contain it (the name of a limit).
type errorCase struct {
	name     string
	input    string
	code     int
	field    string
	mentions string
}

func checkErrorCases(t *testing.T, cases []errorCase, decode func([]byte) error) {
	t.Helper()
	for _, test := range cases {
		t.Run(test.name, func(t *testing.T) {
			err := decode([]byte(test.input))
			if err == nil {
				t.Fatalf("decoding %.200q succeeded, want close %d naming %q", test.input, test.code, test.field)
			}
			protocolError := requireError(t, err, test.code, test.field)
			if test.mentions != "" && !strings.Contains(protocolError.Error(), test.mentions) {
				t.Errorf("Error() = %q does not mention %q", protocolError.Error(), test.mentions)
			}
		})
	}
}

func raw(text string) json.RawMessage {
	if text == "" {
		return nil
	}
	return json.RawMessage(text)
}

func TestDecodeClientFrameAcceptsEveryAction(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  protocol.ClientFrame
	}{
		{"join", `{"id":"S","action":"JOIN","args":{"version":1,"apiKey":"none"}}`,
			protocol.ClientFrame{Action: protocol.ActionJoin, Args: raw(`{"version":1,"apiKey":"none"}`)}},
		{"send", `{"id":"S","action":"SEND","args":[2600,0,"<cipher>",0]}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Args: raw(`[2600,0,"<cipher>",0]`)}},
		{"send with debounce tags", `{"id":"S","action":"SEND","args":[17563,0,"c",42],"tags":{"debounce":5000,"msgID":"pollForSnapshot"}}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Args: raw(`[17563,0,"c",42]`),
				Tags: protocol.Tags{DebounceMs: 5000, MsgID: "pollForSnapshot"}}},
		{"tutti", `{"id":"S","action":"TUTTI","args":[9000,0,"{vote1}",null,true,["handleSnapshotVote"],"snapshot@9000"]}`,
			protocol.ClientFrame{Action: protocol.ActionTutti, Args: raw(`[9000,0,"{vote1}",null,true,["handleSnapshotVote"],"snapshot@9000"]`)}},
		{"ticks", `{"id":"S","action":"TICKS","args":{"tick":100}}`,
			protocol.ClientFrame{Action: protocol.ActionTicks, Args: raw(`{"tick":100}`)}},
		{"snap", `{"id":"S","action":"SNAP","args":{"time":9013,"seq":4294967285,"hash":"H","url":"http://h/s.snap","dissident":null}}`,
			protocol.ClientFrame{Action: protocol.ActionSnap, Args: raw(`{"time":9013,"seq":4294967285,"hash":"H","url":"http://h/s.snap","dissident":null}`)}},
		{"save", `{"id":"S","action":"SAVE","args":{"persistTime":3000,"url":"http://h/p","dissident":null}}`,
			protocol.ClientFrame{Action: protocol.ActionSave, Args: raw(`{"persistTime":3000,"url":"http://h/p","dissident":null}`)}},
		{"ping", `{"action":"PING","args":1700000000000}`,
			protocol.ClientFrame{Action: protocol.ActionPing, Args: raw(`1700000000000`)}},
		{"pulse", `{"action":"PULSE"}`, protocol.ClientFrame{Action: protocol.ActionPulse}},
		{"log string", `{"action":"LOG","args":"view count mismatch"}`,
			protocol.ClientFrame{Action: protocol.ActionLog, Args: raw(`"view count mismatch"`)}},
		{"log array", `{"action":"LOG","args":["a",1]}`,
			protocol.ClientFrame{Action: protocol.ActionLog, Args: raw(`["a",1]`)}},
		// Unknown actions are decoded; the reflector ignores them (§6).
		{"unknown action", `{"id":"S","action":"RECONNECT"}`, protocol.ClientFrame{Action: "RECONNECT"}},
		{"args null", `{"action":"PING","args":null}`, protocol.ClientFrame{Action: protocol.ActionPing}},
		{"tags null", `{"action":"SEND","args":[0,0,"p"],"tags":null}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Args: raw(`[0,0,"p"]`)}},
		{"unknown tags ignored", `{"action":"SEND","args":[0,0,"p"],"tags":{"color":"red"}}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Args: raw(`[0,0,"p"]`)}},
		{"debounce zero", `{"action":"SEND","args":[0,0,"p"],"tags":{"debounce":0,"msgID":"m"}}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Args: raw(`[0,0,"p"]`), Tags: protocol.Tags{MsgID: "m"}}},
		{"debounce at DebounceMsMax", `{"action":"SEND","args":[0,0,"p"],"tags":{"debounce":3600000}}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Args: raw(`[0,0,"p"]`), Tags: protocol.Tags{DebounceMs: protocol.DebounceMsMax}}},
		{"msgID at MsgIDBytesMax", `{"action":"SEND","tags":{"msgID":"` + strings.Repeat("m", protocol.MsgIDBytesMax) + `"}}`,
			protocol.ClientFrame{Action: protocol.ActionSend, Tags: protocol.Tags{MsgID: strings.Repeat("m", protocol.MsgIDBytesMax)}}},
		{"whitespace around values", " \n{ \"action\" : \"PING\" , \"args\" : [ 1 , 2 ] }\n",
			protocol.ClientFrame{Action: protocol.ActionPing, Args: raw(`[ 1 , 2 ]`)}},
		{"non-ASCII text", `{"action":"LOG","args":"grüße 😀"}`,
			protocol.ClientFrame{Action: protocol.ActionLog, Args: raw(`"grüße 😀"`)}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			frame, err := protocol.DecodeClientFrame([]byte(test.frame))
			if err != nil {
				t.Fatalf("DecodeClientFrame(%s): %v", test.frame, err)
			}
			if !reflect.DeepEqual(frame, test.want) {
				t.Errorf("DecodeClientFrame(%s)\n got %+v (args %s)\nwant %+v (args %s)",
					test.frame, frame, frame.Args, test.want, test.want.Args)
			}
		})
	}
}

// logFrameOfSize returns a valid LOG frame of exactly size bytes.
func logFrameOfSize(size int) string {
	const prefix, suffix = `{"action":"LOG","args":"`, `"}`
	return prefix + strings.Repeat("x", size-len(prefix)-len(suffix)) + suffix
}

func TestDecodeClientFrameAcceptsFrameOfFrameBytesMax(t *testing.T) {
	frame := logFrameOfSize(protocol.FrameBytesMax)
	if _, err := protocol.DecodeClientFrame([]byte(frame)); err != nil {
		t.Fatalf("frame of FrameBytesMax bytes: %v", err)
	}
}

func TestDecodeClientFrameRejects(t *testing.T) {
	cases := []errorCase{
		{"empty", ``, protocol.CloseMalformed, "frame", ""},
		{"whitespace", " \n", protocol.CloseMalformed, "frame", ""},
		{"not JSON", `hello`, protocol.CloseMalformed, "frame", ""},
		{"truncated object", `{"action":"PING"`, protocol.CloseMalformed, "frame", ""},
		{"trailing garbage", `{"action":"PING"} x`, protocol.CloseMalformed, "frame", ""},
		{"two objects", `{"action":"PING"}{"action":"PING"}`, protocol.CloseMalformed, "frame", ""},
		{"number", `42`, protocol.CloseMalformed, "frame", ""},
		// The reference answers null with 4109 (quirk Q3); Metronome does not copy it.
		{"null", `null`, protocol.CloseMalformed, "frame", ""},
		{"array", `[]`, protocol.CloseMalformed, "frame", ""},
		{"string", `"x"`, protocol.CloseMalformed, "frame", ""},
		{"true", `true`, protocol.CloseMalformed, "frame", ""},
		{"byte order mark", "\uFEFF{\"action\":\"PING\"}", protocol.CloseMalformed, "frame", ""},
		{"invalid UTF-8 in string", "{\"action\":\"SEND\",\"args\":[0,0,\"\xff\",0]}", protocol.CloseMalformed, "frame", "UTF-8"},
		{"truncated UTF-8 sequence", "{\"action\":\"LOG\",\"args\":\"\xe2\x82\"}", protocol.CloseMalformed, "frame", "UTF-8"},
		{"UTF-8 encoded surrogate", "{\"action\":\"LOG\",\"args\":\"\xed\xa0\x80\"}", protocol.CloseMalformed, "frame", "UTF-8"},
		{"oversize", logFrameOfSize(protocol.FrameBytesMax + 1), protocol.CloseMalformed, "frame", "FrameBytesMax"},
		{"oversize garbage", strings.Repeat("\xff", protocol.FrameBytesMax+1), protocol.CloseMalformed, "frame", "FrameBytesMax"},
		{"action missing", `{"id":"S","args":1}`, protocol.CloseMalformed, "action", ""},
		{"action number", `{"action":5}`, protocol.CloseMalformed, "action", ""},
		{"action null", `{"action":null}`, protocol.CloseMalformed, "action", ""},
		{"action array", `{"action":["SEND"]}`, protocol.CloseMalformed, "action", ""},
		{"action object", `{"action":{"name":"SEND"}}`, protocol.CloseMalformed, "action", ""},
		{"action too long", `{"action":"` + strings.Repeat("A", 65) + `"}`, protocol.CloseMalformed, "action", ""},
		{"tags string", `{"action":"SEND","tags":"debounce"}`, protocol.CloseMalformed, "tags", ""},
		{"tags array", `{"action":"SEND","tags":[5000]}`, protocol.CloseMalformed, "tags", ""},
		{"debounce string", `{"action":"SEND","tags":{"debounce":"5000","msgID":"m"}}`, protocol.CloseMalformed, "tags.debounce", ""},
		{"debounce negative", `{"action":"SEND","tags":{"debounce":-1,"msgID":"m"}}`, protocol.CloseMalformed, "tags.debounce", ""},
		{"debounce above DebounceMsMax", `{"action":"SEND","tags":{"debounce":3600001,"msgID":"m"}}`, protocol.CloseMalformed, "tags.debounce", ""},
		{"debounce huge", `{"action":"SEND","tags":{"debounce":1e400}}`, protocol.CloseMalformed, "tags.debounce", ""},
		{"debounce boolean", `{"action":"SEND","tags":{"debounce":true}}`, protocol.CloseMalformed, "tags.debounce", ""},
		{"msgID number", `{"action":"SEND","tags":{"debounce":5000,"msgID":7}}`, protocol.CloseMalformed, "tags.msgID", ""},
		{"msgID object", `{"action":"SEND","tags":{"msgID":{}}}`, protocol.CloseMalformed, "tags.msgID", ""},
		{"msgID above MsgIDBytesMax", `{"action":"SEND","tags":{"msgID":"` + strings.Repeat("m", protocol.MsgIDBytesMax+1) + `"}}`, protocol.CloseMalformed, "tags.msgID", ""},
	}
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeClientFrame(data)
		return err
	})
}

// join2 is the JOIN of a 2.0.4 client from docs/protocol.md §6.1.
const join2 = `{
    "name": "com.example.app/room1",
    "apiKey": "none",
    "appId": "com.example.app",
    "url": "http://localhost:8888/app/",
    "persistentId": "Pq...43chars",
    "sdk": "2.0.4",
    "developerId": "unknown_dev_id",
    "version": 1,
    "user": "k2j4h5g6f7",
    "ticks": { "tick": 50, "delay": 0 },
    "dormantDelay": 10,
    "tove": "<encrypted session id>",
    "codeHash": "Ab...43chars",
    "leaveDelay": 1250
}`

func TestDecodeJoinSpecExample(t *testing.T) {
	join, err := protocol.DecodeJoin(json.RawMessage(join2))
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Join{
		Name:         "com.example.app/room1",
		AppID:        "com.example.app",
		PersistentID: "Pq...43chars",
		URL:          "http://localhost:8888/app/",
		SDK:          "2.0.4",
		DeveloperID:  "unknown_dev_id",
		CodeHash:     "Ab...43chars",
		Tove:         "<encrypted session id>",
		User:         raw(`"k2j4h5g6f7"`),
		HasTicks:     true,
		TickMs:       50,
		DelayMs:      0,
		LeaveDelayMs: 1250,
	}
	if !reflect.DeepEqual(join, want) {
		t.Errorf("DecodeJoin(docs/protocol.md §6.1)\n got %+v\nwant %+v", join, want)
	}
}

func TestDecodeJoin(t *testing.T) {
	const base = `"version":1,"apiKey":"none"`
	tests := []struct {
		name  string
		args  string
		check func(t *testing.T, join protocol.Join)
	}{
		{"minimal", `{` + base + `}`, func(t *testing.T, join protocol.Join) {
			if !reflect.DeepEqual(join, protocol.Join{}) {
				t.Errorf("got %+v, want the zero Join", join)
			}
		}},
		// The reference only checks apiKey === undefined (§6.1 step 2).
		{"apiKey null", `{"version":1,"apiKey":null}`, nil},
		{"apiKey empty", `{"version":1,"apiKey":""}`, nil},
		{"apiKey number", `{"version":1,"apiKey":0}`, nil},
		{"version string", `{"version":"1","apiKey":"none"}`, nil},
		{"version string zero is truthy", `{"version":"0","apiKey":"none"}`, nil},
		{"version true", `{"version":true,"apiKey":"none"}`, nil},
		{"version negative", `{"version":-1,"apiKey":"none"}`, nil},
		{"version small", `{"version":1e-300,"apiKey":"none"}`, nil},
		{"version array", `{"version":[],"apiKey":"none"}`, nil},
		{"version object", `{"version":{},"apiKey":"none"}`, nil},
		{"unknown fields ignored", `{` + base + `,"dormantDelay":10,"heraldUrl":"https://h/","computedCodeHash":"X","future":[1]}`, nil},
		{"string fields null", `{` + base + `,"name":null,"appId":null,"persistentId":null,"url":null,"sdk":null,"developerId":null,"codeHash":null,"tove":null}`,
			func(t *testing.T, join protocol.Join) {
				if !reflect.DeepEqual(join, protocol.Join{}) {
					t.Errorf("got %+v, want the zero Join", join)
				}
			}},
		{"string field at StringFieldBytesMax", `{` + base + `,"name":"` + strings.Repeat("n", protocol.StringFieldBytesMax) + `"}`,
			func(t *testing.T, join protocol.Join) {
				if len(join.Name) != protocol.StringFieldBytesMax {
					t.Errorf("len(Name) = %d, want %d", len(join.Name), protocol.StringFieldBytesMax)
				}
			}},
		{"string escapes decoded", `{` + base + `,"name":"a\"b\\c\u00e9\ud83d\ude00"}`, func(t *testing.T, join protocol.Join) {
			if join.Name != "a\"b\\cé😀" {
				t.Errorf("Name = %q", join.Name)
			}
		}},
		{"user string", `{` + base + `,"user":"v1"}`, wantUser(`"v1"`)},
		{"user array (location)", `{` + base + `,"user":[ "v1" ]}`, wantUser(`["v1"]`)},
		{"user object (viewData) compacted", `{` + base + `,"user":{ "id" : "v1",
			"data" : "a b\tc" }}`, wantUser(`{"id":"v1","data":"a b\tc"}`)},
		{"user object kept verbatim", `{` + base + `,"user":{"data":"\u00e9","id":"v1","n":1.50}}`, wantUser(`{"data":"\u00e9","id":"v1","n":1.50}`)},
		{"user truthy number", `{` + base + `,"user":7}`, wantUser(`7`)},
		{"user empty string", `{` + base + `,"user":""}`, wantUser(``)},
		{"user zero", `{` + base + `,"user":0}`, wantUser(``)},
		{"user false", `{` + base + `,"user":false}`, wantUser(``)},
		{"user null", `{` + base + `,"user":null}`, wantUser(``)},
		{"user at UserBytesMax", `{` + base + `,"user":"` + strings.Repeat("u", protocol.UserBytesMax-2) + `"}`, func(t *testing.T, join protocol.Join) {
			if len(join.User) != protocol.UserBytesMax {
				t.Errorf("len(User) = %d, want %d", len(join.User), protocol.UserBytesMax)
			}
		}},
		{"ticks missing", `{` + base + `}`, wantTicks(false, 0, 0)},
		{"ticks null", `{` + base + `,"ticks":null}`, wantTicks(false, 0, 0)},
		// Quirk Q1: the reference crashes without ticks.tick; Metronome defaults.
		{"ticks empty", `{` + base + `,"ticks":{}}`, wantTicks(true, protocol.TickMsDefault, 0)},
		{"ticks tick null", `{` + base + `,"ticks":{"tick":null,"delay":5}}`, wantTicks(true, protocol.TickMsDefault, 5)},
		{"ticks fractional", `{` + base + `,"ticks":{"tick":16.666666666666668,"delay":0}}`, wantTicks(true, 1000.0/60, 0)},
		{"ticks multiplier", `{` + base + `,"ticks":{"tick":50,"delay":34}}`, wantTicks(true, 50, 34)},
		{"ticks at TickMsMin", `{` + base + `,"ticks":{"tick":1}}`, wantTicks(true, protocol.TickMsMin, 0)},
		{"ticks at TickMsMax and DelayMsMax", `{` + base + `,"ticks":{"tick":60000,"delay":60000}}`, wantTicks(true, protocol.TickMsMax, protocol.DelayMsMax)},
		{"leaveDelay zero", `{` + base + `,"leaveDelay":0}`, wantLeaveDelay(0)},
		{"leaveDelay default client", `{` + base + `,"leaveDelay":1250}`, wantLeaveDelay(1250)},
		{"leaveDelay fractional truncated", `{` + base + `,"leaveDelay":1250.9}`, wantLeaveDelay(1250)},
		{"leaveDelay at LeaveDelayMsMax", `{` + base + `,"leaveDelay":60250}`, wantLeaveDelay(protocol.LeaveDelayMsMax)},
		{"leaveDelay null", `{` + base + `,"leaveDelay":null}`, wantLeaveDelay(0)},
		{"location and microverse", `{` + base + `,"location":true,"flags":{"microverse":true,"rawtime":true}}`, func(t *testing.T, join protocol.Join) {
			if !join.Location || !join.Flags.Microverse {
				t.Errorf("Location %v, Microverse %v; want both true", join.Location, join.Flags.Microverse)
			}
		}},
		{"falsy location and flags", `{` + base + `,"location":0,"flags":{"microverse":false}}`, func(t *testing.T, join protocol.Join) {
			if join.Location || join.Flags.Microverse {
				t.Errorf("Location %v, Microverse %v; want both false", join.Location, join.Flags.Microverse)
			}
		}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			join, err := protocol.DecodeJoin(json.RawMessage(test.args))
			if err != nil {
				t.Fatalf("DecodeJoin(%.200s): %v", test.args, err)
			}
			if test.check != nil {
				test.check(t, join)
			}
		})
	}
}

func wantUser(want string) func(*testing.T, protocol.Join) {
	return func(t *testing.T, join protocol.Join) {
		t.Helper()
		if !reflect.DeepEqual(join.User, raw(want)) {
			t.Errorf("User = %q, want %q", join.User, want)
		}
	}
}

func wantTicks(has bool, tickMs, delayMs float64) func(*testing.T, protocol.Join) {
	return func(t *testing.T, join protocol.Join) {
		t.Helper()
		if join.HasTicks != has || join.TickMs != tickMs || join.DelayMs != delayMs {
			t.Errorf("HasTicks %v, TickMs %v, DelayMs %v; want %v, %v, %v",
				join.HasTicks, join.TickMs, join.DelayMs, has, tickMs, delayMs)
		}
	}
}

func wantLeaveDelay(want int64) func(*testing.T, protocol.Join) {
	return func(t *testing.T, join protocol.Join) {
		t.Helper()
		if join.LeaveDelayMs != want {
			t.Errorf("LeaveDelayMs = %d, want %d", join.LeaveDelayMs, want)
		}
	}
}

func TestDecodeJoinRejects(t *testing.T) {
	const base = `"version":1,"apiKey":"none"`
	cases := []errorCase{
		{"args missing", ``, protocol.CloseOutdatedProtocol, "args", ""},
		{"args null", `null`, protocol.CloseOutdatedProtocol, "args", ""},
		{"args number", `1`, protocol.CloseOutdatedProtocol, "args", ""},
		{"args array", `[{"version":1,"apiKey":"none"}]`, protocol.CloseOutdatedProtocol, "args", ""},
		{"args string", `"x"`, protocol.CloseOutdatedProtocol, "args", ""},
		{"args not JSON", `{"version":1`, protocol.CloseOutdatedProtocol, "args", ""},
		{"version missing", `{"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version 0", `{"version":0,"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version -0", `{"version":-0,"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version 0.0e5", `{"version":0.0e5,"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version underflows to 0", `{"version":1e-400,"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version empty string", `{"version":"","apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version false", `{"version":false,"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"version null", `{"version":null,"apiKey":"none"}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		// version is checked before apiKey (§6.1 steps 1 and 2).
		{"version and apiKey missing", `{}`, protocol.CloseOutdatedProtocol, "args.version", ""},
		{"apiKey missing", `{"version":1,"name":"a/b"}`, protocol.CloseBadAPIKey, "args.apiKey", ""},
	}
	for _, field := range []string{"name", "appId", "persistentId", "url", "sdk", "developerId", "codeHash", "tove"} {
		for _, value := range []string{`5`, `true`, `["x"]`, `{"x":1}`} {
			cases = append(cases, errorCase{field + " " + value, `{` + base + `,"` + field + `":` + value + `}`,
				protocol.CloseMalformed, "args." + field, ""})
		}
		cases = append(cases, errorCase{field + " above StringFieldBytesMax",
			`{` + base + `,"` + field + `":"` + strings.Repeat("s", protocol.StringFieldBytesMax+1) + `"}`,
			protocol.CloseMalformed, "args." + field, "4096"})
	}
	cases = append(cases, []errorCase{
		{"user above UserBytesMax", `{` + base + `,"user":"` + strings.Repeat("u", protocol.UserBytesMax-1) + `"}`,
			protocol.CloseMalformed, "args.user", "UserBytesMax"},
		{"user object above UserBytesMax", `{` + base + `,"user":{"id":"v1","data":"` + strings.Repeat("d", protocol.UserBytesMax) + `"}}`,
			protocol.CloseMalformed, "args.user", "UserBytesMax"},
		{"ticks number", `{` + base + `,"ticks":50}`, protocol.CloseMalformed, "args.ticks", ""},
		{"ticks string", `{` + base + `,"ticks":"50"}`, protocol.CloseMalformed, "args.ticks", ""},
		{"ticks array", `{` + base + `,"ticks":[50,0]}`, protocol.CloseMalformed, "args.ticks", ""},
		{"tick huge", `{` + base + `,"ticks":{"tick":1e12,"delay":0}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick overflows", `{` + base + `,"ticks":{"tick":1e400}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick above TickMsMax", `{` + base + `,"ticks":{"tick":60001}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick negative", `{` + base + `,"ticks":{"tick":-50,"delay":0}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick zero", `{` + base + `,"ticks":{"tick":0,"delay":0}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick below TickMsMin", `{` + base + `,"ticks":{"tick":0.5}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick string NaN", `{` + base + `,"ticks":{"tick":"NaN","delay":0}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick numeric string", `{` + base + `,"ticks":{"tick":"50"}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"tick boolean", `{` + base + `,"ticks":{"tick":true}}`, protocol.CloseMalformed, "args.ticks.tick", ""},
		{"delay negative", `{` + base + `,"ticks":{"tick":50,"delay":-1}}`, protocol.CloseMalformed, "args.ticks.delay", ""},
		{"delay above DelayMsMax", `{` + base + `,"ticks":{"tick":50,"delay":60001}}`, protocol.CloseMalformed, "args.ticks.delay", ""},
		{"delay string", `{` + base + `,"ticks":{"tick":50,"delay":"0"}}`, protocol.CloseMalformed, "args.ticks.delay", ""},
		{"leaveDelay negative", `{` + base + `,"leaveDelay":-1}`, protocol.CloseMalformed, "args.leaveDelay", ""},
		{"leaveDelay above LeaveDelayMsMax", `{` + base + `,"leaveDelay":60251}`, protocol.CloseMalformed, "args.leaveDelay", "60250"},
		{"leaveDelay string", `{` + base + `,"leaveDelay":"1250"}`, protocol.CloseMalformed, "args.leaveDelay", ""},
		{"flags string", `{` + base + `,"flags":"rawtime"}`, protocol.CloseMalformed, "args.flags", ""},
		{"flags array", `{` + base + `,"flags":["rawtime"]}`, protocol.CloseMalformed, "args.flags", ""},
	}...)
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeJoin(raw(string(data)))
		return err
	})
}

func TestDecodeMessage(t *testing.T) {
	tests := []struct {
		name    string
		message string
		want    protocol.Message
	}{
		{"three elements", `[0,0,"p"]`, protocol.Message{Payload: raw(`"p"`)}},
		{"standard client", `[2600,0,"<cipher>",0]`, protocol.Message{Payload: raw(`"<cipher>"`), Extra: []json.RawMessage{raw(`0`)}}},
		{"time and seq ignored", `["x",{"y":1},""]`, protocol.Message{Payload: raw(`""`)}},
		{"payload verbatim", `[1,2,"a\u0041\"b\\ \/ é😀"]`, protocol.Message{Payload: raw(`"a\u0041\"b\\ \/ é😀"`)}},
		{"whitespace", "[ 1 ,\n 2 , \"p\" , 42 ]", protocol.Message{Payload: raw(`"p"`), Extra: []json.RawMessage{raw(`42`)}}},
		{"extras verbatim and compacted", `[0,0,"p",{ "a" : [1, 2] },"x y",1.50,null,true]`, protocol.Message{Payload: raw(`"p"`),
			Extra: []json.RawMessage{raw(`{"a":[1,2]}`), raw(`"x y"`), raw(`1.50`), raw(`null`), raw(`true`)}}},
		{"MessageElementsMax elements", `[0,0,"p",3,4,5,6,7,8,9,10,11,12,13,14,15]`, protocol.Message{Payload: raw(`"p"`),
			Extra: []json.RawMessage{raw(`3`), raw(`4`), raw(`5`), raw(`6`), raw(`7`), raw(`8`), raw(`9`), raw(`10`),
				raw(`11`), raw(`12`), raw(`13`), raw(`14`), raw(`15`)}}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			message, err := protocol.DecodeMessage("args", json.RawMessage(test.message))
			if err != nil {
				t.Fatalf("DecodeMessage(%s): %v", test.message, err)
			}
			if !reflect.DeepEqual(message, test.want) {
				t.Errorf("DecodeMessage(%s)\n got %q %q\nwant %q %q", test.message, message.Payload, message.Extra, test.want.Payload, test.want.Extra)
			}
		})
	}
}

func TestDecodeMessageAcceptsPayloadOfPayloadBytesMax(t *testing.T) {
	payload := `"` + strings.Repeat("p", protocol.PayloadBytesMax-2) + `"`
	message, err := protocol.DecodeMessage("args", json.RawMessage(`[0,0,`+payload+`,5]`))
	if err != nil {
		t.Fatal(err)
	}
	if string(message.Payload) != payload {
		t.Errorf("payload of %d bytes changed to %d bytes", len(payload), len(message.Payload))
	}
}

func TestDecodeMessageRejects(t *testing.T) {
	cases := []errorCase{
		{"missing", ``, protocol.CloseMalformed, "args", ""},
		{"object", `{"0":0,"1":0,"2":"p"}`, protocol.CloseMalformed, "args", ""},
		{"string", `"p"`, protocol.CloseMalformed, "args", ""},
		{"number", `5`, protocol.CloseMalformed, "args", ""},
		{"not JSON", `[0,0,"p"`, protocol.CloseMalformed, "args", ""},
		{"empty array", `[]`, protocol.CloseMalformed, "args", "MessageElementsMax"},
		{"two elements", `[0,0]`, protocol.CloseMalformed, "args", "MessageElementsMax"},
		{"17 elements", `[0,0,"p",3,4,5,6,7,8,9,10,11,12,13,14,15,16]`, protocol.CloseMalformed, "args", "MessageElementsMax"},
		{"object payload", `[0,0,{"what":"users","active":1,"total":1,"joined":["forged"]},0]`, protocol.CloseMalformed, "args[2]", ""},
		{"number payload", `[0,0,5,0]`, protocol.CloseMalformed, "args[2]", ""},
		{"null payload", `[0,0,null]`, protocol.CloseMalformed, "args[2]", ""},
		{"array payload", `[0,0,["p"]]`, protocol.CloseMalformed, "args[2]", ""},
		{"payload above PayloadBytesMax", `[0,0,"` + strings.Repeat("p", protocol.PayloadBytesMax-1) + `",0]`, protocol.CloseMalformed, "args[2]", "PayloadBytesMax"},
	}
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeMessage("args", raw(string(data)))
		return err
	})
}

func TestDecodeMessageNamesTheGivenField(t *testing.T) {
	_, err := protocol.DecodeMessage("args[3]", json.RawMessage(`[0,0,{}]`))
	requireError(t, err, protocol.CloseMalformed, "args[3][2]")
	_, err = protocol.DecodeMessage("args[3]", json.RawMessage(`[0,0]`))
	requireError(t, err, protocol.CloseMalformed, "args[3]")
}

func TestMessageLatencyMs(t *testing.T) {
	tests := []struct {
		message string
		want    float64
		ok      bool
	}{
		{`[0,0,"p"]`, 0, false},
		{`[0,0,"p",42]`, 42, true},
		{`[0,0,"p",12.5]`, 12.5, true},
		{`[0,0,"p",59999.9]`, 59999.9, true},
		{`[0,0,"p",0]`, 0, false},
		{`[0,0,"p",-5]`, 0, false},
		{`[0,0,"p",60000]`, 0, false},
		{`[0,0,"p",1e400]`, 0, false},
		{`[0,0,"p","42"]`, 0, false},
		{`[0,0,"p",null]`, 0, false},
		{`[0,0,"p",[42]]`, 0, false},
		// The latency is the last element (§6.2).
		{`[0,0,"p","extra",17]`, 17, true},
		{`[0,0,"p",17,"extra"]`, 0, false},
	}
	for _, test := range tests {
		message, err := protocol.DecodeMessage("args", json.RawMessage(test.message))
		if err != nil {
			t.Fatalf("DecodeMessage(%s): %v", test.message, err)
		}
		got, ok := message.LatencyMs()
		if got != test.want || ok != test.ok {
			t.Errorf("LatencyMs of %s = %v, %v; want %v, %v", test.message, got, ok, test.want, test.ok)
		}
	}
}

// tuttiVote is the TUTTI of docs/protocol.md §6.3.
const tuttiVote = `[18615, 0, "{\"cpuTime\":0.7,\"hash\":\"...\",\"viewId\":\"k2j4h5g6f7\"}", null, true,
           ["handleSnapshotVote"], "snapshot@18615"]`

func TestDecodeTuttiSpecExample(t *testing.T) {
	tutti, err := protocol.DecodeTutti(json.RawMessage(tuttiVote))
	if err != nil {
		t.Fatal(err)
	}
	want := protocol.Tutti{
		SendTime:    18615,
		Vote:        `{"cpuTime":0.7,"hash":"...","viewId":"k2j4h5g6f7"}`,
		WantsVote:   true,
		TallyTarget: raw(`["handleSnapshotVote"]`),
		Key:         "snapshot@18615",
	}
	if !reflect.DeepEqual(tutti, want) {
		t.Errorf("DecodeTutti(docs/protocol.md §6.3)\n got %+v\nwant %+v", tutti, want)
	}
}

func TestDecodeTutti(t *testing.T) {
	tests := []struct {
		name string
		args string
		want protocol.Tutti
	}{
		{"first message", `[9000,0,"{vote}",[9000,0,"<cipher>"],false,["handlePersistVote"],"persist@9000"]`, protocol.Tutti{
			SendTime: 9000, Vote: "{vote}", FirstMessage: &protocol.Message{Payload: raw(`"<cipher>"`)},
			TallyTarget: raw(`["handlePersistVote"]`), Key: "persist@9000"}},
		{"first message with latency", `[9000,0,"v",[9000,0,"c",12],true,null,"k@9000"]`, protocol.Tutti{
			SendTime: 9000, Vote: "v", FirstMessage: &protocol.Message{Payload: raw(`"c"`), Extra: []json.RawMessage{raw(`12`)}},
			WantsVote: true, TallyTarget: raw(`null`), Key: "k@9000"}},
		{"empty vote", `[0,0,"",null,0,null,"k@0"]`, protocol.Tutti{Vote: "", TallyTarget: raw(`null`), Key: "k@0"}},
		{"vote escapes decoded", `[1,0,"\u00e9\ud83d\ude00\n",null,1,null,"k@1"]`, protocol.Tutti{
			SendTime: 1, Vote: "é😀\n", WantsVote: true, TallyTarget: raw(`null`), Key: "k@1"}},
		{"tallyTarget compacted", `[1,"ignored","v",null,"yes",[ "handle" , { "a" : 1 } ],"k@1"]`, protocol.Tutti{
			SendTime: 1, Vote: "v", WantsVote: true, TallyTarget: raw(`["handle",{"a":1}]`), Key: "k@1"}},
		{"fractional sendTime truncated", `[9000.7,0,"v",null,false,null,"k@9000"]`, protocol.Tutti{
			SendTime: 9000, Vote: "v", TallyTarget: raw(`null`), Key: "k@9000"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			tutti, err := protocol.DecodeTutti(json.RawMessage(test.args))
			if err != nil {
				t.Fatalf("DecodeTutti(%s): %v", test.args, err)
			}
			if !reflect.DeepEqual(tutti, test.want) {
				t.Errorf("DecodeTutti(%s)\n got %+v\nwant %+v", test.args, tutti, test.want)
			}
		})
	}
}

func TestDecodeTuttiRejects(t *testing.T) {
	cases := []errorCase{
		{"missing", ``, protocol.CloseMalformed, "args", ""},
		{"object", `{"sendTime":1}`, protocol.CloseMalformed, "args", ""},
		{"not JSON", `[1,0,"v"`, protocol.CloseMalformed, "args", ""},
		{"six elements", `[9000,0,"v",null,true,null]`, protocol.CloseMalformed, "args", "7"},
		{"eight elements", `[9000,0,"v",null,true,null,"k@9000",0]`, protocol.CloseMalformed, "args", "7"},
		{"sendTime string", `["9000",0,"v",null,true,null,"k@9000"]`, protocol.CloseMalformed, "args[0]", ""},
		{"sendTime negative", `[-1,0,"v",null,true,null,"k@-1"]`, protocol.CloseMalformed, "args[0]", ""},
		{"sendTime huge", `[1e300,0,"v",null,true,null,"k@1"]`, protocol.CloseMalformed, "args[0]", ""},
		{"vote object", `[9000,0,{"hash":"h"},null,true,null,"k@9000"]`, protocol.CloseMalformed, "args[2]", ""},
		{"vote null", `[9000,0,null,null,true,null,"k@9000"]`, protocol.CloseMalformed, "args[2]", ""},
		{"vote above VotePayloadBytesMax", `[9000,0,"` + strings.Repeat("v", protocol.VotePayloadBytesMax+1) + `",null,true,null,"k@9000"]`,
			protocol.CloseMalformed, "args[2]", ""},
		{"firstMsg false", `[9000,0,"v",false,true,null,"k@9000"]`, protocol.CloseMalformed, "args[3]", ""},
		{"firstMsg string", `[9000,0,"v","c",true,null,"k@9000"]`, protocol.CloseMalformed, "args[3]", ""},
		{"firstMsg too short", `[9000,0,"v",[9000,0],true,null,"k@9000"]`, protocol.CloseMalformed, "args[3]", ""},
		{"firstMsg object payload", `[9000,0,"v",[9000,0,{"what":"tally"}],true,null,"k@9000"]`, protocol.CloseMalformed, "args[3][2]", ""},
		{"tallyTarget above StringFieldBytesMax", `[9000,0,"v",null,true,["` + strings.Repeat("t", protocol.StringFieldBytesMax) + `"],"k@9000"]`,
			protocol.CloseMalformed, "args[5]", "StringFieldBytesMax"},
		{"key empty", `[9000,0,"v",null,true,null,""]`, protocol.CloseMalformed, "args[6]", ""},
		{"key null", `[9000,0,"v",null,true,null,null]`, protocol.CloseMalformed, "args[6]", ""},
		{"key number", `[9000,0,"v",null,true,null,9000]`, protocol.CloseMalformed, "args[6]", ""},
		{"key above TuttiKeyBytesMax", `[9000,0,"v",null,true,null,"` + strings.Repeat("k", protocol.TuttiKeyBytesMax+1) + `"]`,
			protocol.CloseMalformed, "args[6]", ""},
	}
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeTutti(raw(string(data)))
		return err
	})
}

// snapExample is the SNAP of docs/protocol.md §6.5.
const snapExample = `{
    "time": 6218, "seq": 4294967283, "hash": "kzR8...43chars",
    "url": "http://localhost:8888/files/snapshots/<sid>/0000006218_4294967283-kzR8....snap",
    "auditStats": { "lastUsers": -1, "minUsers": -1, "maxUsers": -1, "payloadTally": 0 },
    "dissident": null }`

func TestDecodeSnap(t *testing.T) {
	tests := []struct {
		name string
		args string
		want protocol.Snap
	}{
		{"spec example", snapExample, protocol.Snap{Time: 6218, Seq: 4294967283, Hash: "kzR8...43chars",
			URL: "http://localhost:8888/files/snapshots/<sid>/0000006218_4294967283-kzR8....snap"}},
		{"dissident", `{"time":1,"seq":2,"url":"u","dissident":{"groupVotes":1,"allVotes":3}}`,
			protocol.Snap{Time: 1, Seq: 2, URL: "u", Dissident: true}},
		{"hash null", `{"time":1,"seq":2,"hash":null,"url":"u"}`, protocol.Snap{Time: 1, Seq: 2, URL: "u"}},
		{"seq bounds", `{"time":0,"seq":4294967295,"url":"u"}`, protocol.Snap{Seq: 4294967295, URL: "u"}},
		{"seq exponent", `{"time":0,"seq":1e3,"url":"u"}`, protocol.Snap{Seq: 1000, URL: "u"}},
		{"fractional time rounded up", `{"time":6218.2,"seq":0,"url":"u"}`, protocol.Snap{Time: 6219, URL: "u"}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			snap, err := protocol.DecodeSnap(json.RawMessage(test.args))
			if err != nil {
				t.Fatalf("DecodeSnap(%s): %v", test.args, err)
			}
			if snap != test.want {
				t.Errorf("DecodeSnap(%s)\n got %+v\nwant %+v", test.args, snap, test.want)
			}
		})
	}
}

func TestDecodeSnapRejects(t *testing.T) {
	cases := []errorCase{
		{"missing", ``, protocol.CloseMalformed, "args", ""},
		{"array", `[6218,4294967283]`, protocol.CloseMalformed, "args", ""},
		{"time missing", `{"seq":1,"url":"u"}`, protocol.CloseMalformed, "args.time", ""},
		{"time negative", `{"time":-1,"seq":1,"url":"u"}`, protocol.CloseMalformed, "args.time", ""},
		{"time string", `{"time":"6218","seq":1,"url":"u"}`, protocol.CloseMalformed, "args.time", ""},
		{"time huge", `{"time":1e300,"seq":1,"url":"u"}`, protocol.CloseMalformed, "args.time", ""},
		{"seq missing", `{"time":1,"url":"u"}`, protocol.CloseMalformed, "args.seq", ""},
		{"seq above uint32", `{"time":1,"seq":4294967296,"url":"u"}`, protocol.CloseMalformed, "args.seq", ""},
		{"seq negative", `{"time":1,"seq":-1,"url":"u"}`, protocol.CloseMalformed, "args.seq", ""},
		{"seq fractional", `{"time":1,"seq":4294967283.5,"url":"u"}`, protocol.CloseMalformed, "args.seq", ""},
		{"seq string", `{"time":1,"seq":"4294967283","url":"u"}`, protocol.CloseMalformed, "args.seq", ""},
		{"hash number", `{"time":1,"seq":1,"hash":5,"url":"u"}`, protocol.CloseMalformed, "args.hash", ""},
		{"url missing", `{"time":1,"seq":1,"hash":"h"}`, protocol.CloseMalformed, "args.url", ""},
		{"url null", `{"time":1,"seq":1,"url":null}`, protocol.CloseMalformed, "args.url", ""},
		{"url empty", `{"time":1,"seq":1,"url":""}`, protocol.CloseMalformed, "args.url", ""},
		{"url number", `{"time":1,"seq":1,"url":5}`, protocol.CloseMalformed, "args.url", ""},
		{"url above StringFieldBytesMax", `{"time":1,"seq":1,"url":"` + strings.Repeat("u", protocol.StringFieldBytesMax+1) + `"}`,
			protocol.CloseMalformed, "args.url", ""},
	}
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeSnap(raw(string(data)))
		return err
	})
}

func TestDecodeSave(t *testing.T) {
	tests := []struct {
		name string
		args string
		want protocol.Save
	}{
		{"spec example", `{
    "persistTime": 3000,
    "url": "http://localhost:8888/files/apps/com.example.app/<persistentId>/save/<hash43>",
    "dissident": null }`, protocol.Save{PersistTime: 3000, URL: "http://localhost:8888/files/apps/com.example.app/<persistentId>/save/<hash43>"}},
		{"persistTime missing", `{"url":"u"}`, protocol.Save{URL: "u"}},
		{"dissident", `{"persistTime":1,"url":"u","dissident":{"groupVotes":1}}`, protocol.Save{PersistTime: 1, URL: "u", Dissident: true}},
	}
	for _, test := range tests {
		t.Run(test.name, func(t *testing.T) {
			save, err := protocol.DecodeSave(json.RawMessage(test.args))
			if err != nil {
				t.Fatalf("DecodeSave(%s): %v", test.args, err)
			}
			if save != test.want {
				t.Errorf("DecodeSave(%s)\n got %+v\nwant %+v", test.args, save, test.want)
			}
		})
	}
}

func TestDecodeSaveRejects(t *testing.T) {
	cases := []errorCase{
		{"missing", ``, protocol.CloseMalformed, "args", ""},
		{"string", `"u"`, protocol.CloseMalformed, "args", ""},
		{"persistTime negative", `{"persistTime":-1,"url":"u"}`, protocol.CloseMalformed, "args.persistTime", ""},
		{"persistTime string", `{"persistTime":"3000","url":"u"}`, protocol.CloseMalformed, "args.persistTime", ""},
		{"url missing", `{"persistTime":1}`, protocol.CloseMalformed, "args.url", ""},
		{"url empty", `{"persistTime":1,"url":""}`, protocol.CloseMalformed, "args.url", ""},
		{"url array", `{"persistTime":1,"url":["u"]}`, protocol.CloseMalformed, "args.url", ""},
	}
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeSave(raw(string(data)))
		return err
	})
}

func TestDecodeTicks(t *testing.T) {
	tests := []struct {
		args string
		want protocol.Ticks
	}{
		{`{}`, protocol.Ticks{}},
		{`{"tick":null,"delay":null,"scale":null}`, protocol.Ticks{}},
		{`{"tick":100,"delay":20,"scale":2}`, protocol.Ticks{TickMs: 100, DelayMs: 20, Scale: 2}},
		{`{"tick":1,"delay":0,"scale":0}`, protocol.Ticks{TickMs: 1}},
		{`{"tick":60000,"delay":60000,"scale":1000}`, protocol.Ticks{TickMs: 60000, DelayMs: 60000, Scale: 1000}},
		{`{"scale":0.015625}`, protocol.Ticks{Scale: protocol.ScaleMin}},
	}
	for _, test := range tests {
		ticks, err := protocol.DecodeTicks(json.RawMessage(test.args))
		if err != nil {
			t.Fatalf("DecodeTicks(%s): %v", test.args, err)
		}
		if ticks != test.want {
			t.Errorf("DecodeTicks(%s) = %+v, want %+v", test.args, ticks, test.want)
		}
	}
}

func TestDecodeTicksRejects(t *testing.T) {
	cases := []errorCase{
		{"missing", ``, protocol.CloseMalformed, "args", ""},
		{"number", `50`, protocol.CloseMalformed, "args", ""},
		{"tick zero", `{"tick":0}`, protocol.CloseMalformed, "args.tick", ""},
		{"tick above TickMsMax", `{"tick":1e12}`, protocol.CloseMalformed, "args.tick", ""},
		{"tick string", `{"tick":"NaN"}`, protocol.CloseMalformed, "args.tick", ""},
		{"delay negative", `{"delay":-1}`, protocol.CloseMalformed, "args.delay", ""},
		{"delay above DelayMsMax", `{"delay":60001}`, protocol.CloseMalformed, "args.delay", ""},
		{"scale negative", `{"scale":-2}`, protocol.CloseMalformed, "args.scale", ""},
		{"scale string", `{"scale":"2"}`, protocol.CloseMalformed, "args.scale", ""},
		{"scale overflows", `{"scale":1e400}`, protocol.CloseMalformed, "args.scale", ""},
	}
	checkErrorCases(t, cases, func(data []byte) error {
		_, err := protocol.DecodeTicks(raw(string(data)))
		return err
	})
}

func TestErrorCloseReasonFitsCloseFrame(t *testing.T) {
	// A long multi-byte value must be cut on a rune boundary.
	_, err := protocol.DecodeJoin(json.RawMessage(`{"version":1,"apiKey":"none","name":["` + strings.Repeat("日本語", 100) + `"]}`))
	requireError(t, err, protocol.CloseMalformed, "args.name")
	long := &protocol.Error{Code: protocol.CloseMalformed, Field: "args.name", Rule: strings.Repeat("é", 200), Value: "😀"}
	reason := long.CloseReason()
	if len(reason) > protocol.CloseReasonBytesMax || !utf8.ValidString(reason) || !strings.HasSuffix(reason, "...") {
		t.Errorf("CloseReason() = %q (%d bytes), want at most %d bytes of valid UTF-8 ending in ...", reason, len(reason), protocol.CloseReasonBytesMax)
	}
	for size := 0; size <= 2*protocol.CloseReasonBytesMax; size++ {
		text := strings.Repeat("😀", size/4) + strings.Repeat("x", size%4)
		got := protocol.TruncateReason(text)
		if len(got) > protocol.CloseReasonBytesMax || !utf8.ValidString(got) {
			t.Fatalf("TruncateReason(%d bytes) = %d bytes, valid UTF-8 %v", len(text), len(got), utf8.ValidString(got))
		}
		if len(text) <= protocol.CloseReasonBytesMax && got != text {
			t.Fatalf("TruncateReason changed a %d-byte reason", len(text))
		}
	}
}
