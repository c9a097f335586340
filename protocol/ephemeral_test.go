package protocol_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

func TestDecodeEphemeral(t *testing.T) {
	for _, input := range []string{`"p"`, `""`, `"a\u0041\"b"`, `"` + strings.Repeat("x", protocol.EphemeralPayloadBytesMax-2) + `"`} {
		payload, err := protocol.DecodeEphemeral(json.RawMessage(input))
		if err != nil || string(payload) != input {
			t.Errorf("DecodeEphemeral(%.40q) = %.40q, %v; want the string as sent", input, payload, err)
		}
	}
}

func TestDecodeEphemeralRejects(t *testing.T) {
	checkErrorCases(t, []errorCase{
		{"absent", ``, protocol.CloseMalformed, "args", "payload string"},
		{"not a string", `["p"]`, protocol.CloseMalformed, "args", "payload string"},
		{"object", `{"name":"p"}`, protocol.CloseMalformed, "args", ""},
		{"two strings", `"a"b"`, protocol.CloseMalformed, "args", ""},
		{"trailing space", `"a" `, protocol.CloseMalformed, "args", ""},
		{"over the limit", `"` + strings.Repeat("x", protocol.EphemeralPayloadBytesMax-1) + `"`, protocol.CloseMalformed, "args", "EphemeralPayloadBytesMax"},
	}, func(input []byte) error {
		_, err := protocol.DecodeEphemeral(input)
		return err
	})
}

func TestEphemeralFrames(t *testing.T) {
	// A client's EPHM decodes as the reflector decodes it.
	frame, err := protocol.DecodeClientFrame(protocol.AppendEphemeralFrame(nil, "S", json.RawMessage(`"sealed"`)))
	if err != nil || frame.Action != protocol.ActionEphemeral {
		t.Fatalf("EPHM: %+v, %v", frame, err)
	}
	if payload, err := protocol.DecodeEphemeral(frame.Args); err != nil || string(payload) != `"sealed"` {
		t.Fatalf("EPHM args: %s, %v", payload, err)
	}

	// The relayed frame carries the sender's view id (null for none).
	relayed := protocol.AppendEphemeral(nil, "S", "v1", json.RawMessage(`"sealed"`))
	if string(relayed) != `{"id":"S","action":"EPHM","args":["v1","sealed"]}` {
		t.Fatalf("relayed EPHM %s", relayed)
	}
	server, err := protocol.DecodeServerFrame(relayed)
	if err != nil || server.Action != protocol.ActionEphemeral || server.Ephemeral.From != "v1" || string(server.Ephemeral.Payload) != `"sealed"` {
		t.Fatalf("relayed EPHM decodes as %+v, %v", server, err)
	}
	anonymous := protocol.AppendEphemeral(nil, "S", "", json.RawMessage(`"x"`))
	if server, err = protocol.DecodeServerFrame(anonymous); err != nil || server.Ephemeral.From != "" {
		t.Fatalf("EPHM %s decodes as %+v, %v", anonymous, server, err)
	}
	for _, bad := range []string{
		`{"action":"EPHM","args":"x"}`, `{"action":"EPHM","args":["v1"]}`,
		`{"action":"EPHM","args":[1,"x"]}`, `{"action":"EPHM","args":["v1",{}]}`,
	} {
		if _, err := protocol.DecodeServerFrame([]byte(bad)); err == nil {
			t.Errorf("DecodeServerFrame(%s) succeeded", bad)
		}
	}
}

func TestJoinAnnouncesTheEphemeralChannel(t *testing.T) {
	frame, err := protocol.DecodeClientFrame(protocol.AppendJoinFrame(nil, "S", &protocol.JoinRequest{Name: "a/s", TickMs: 50, Ephemeral: true}))
	if err != nil {
		t.Fatal(err)
	}
	if join, err := protocol.DecodeJoin(frame.Args); err != nil || !join.Ephemeral {
		t.Fatalf("JOIN with Ephemeral: %+v, %v", join, err)
	}
	frame, _ = protocol.DecodeClientFrame(protocol.AppendJoinFrame(nil, "S", &protocol.JoinRequest{Name: "a/s", TickMs: 50}))
	if strings.Contains(string(frame.Args), "ephemeral") {
		t.Fatalf("a JOIN without Ephemeral mentions it: %s", frame.Args)
	}
	for input, want := range map[string]bool{
		`{"version":1,"apiKey":"none"}`:                    false,
		`{"version":1,"apiKey":"none","ephemeral":false}`:  false,
		`{"version":1,"apiKey":"none","ephemeral":null}`:   false,
		`{"version":1,"apiKey":"none","ephemeral":true}`:   true,
		`{"version":1,"apiKey":"none","ephemeral":1}`:      true,
		`{"version":1,"apiKey":"none","ephemeral":"sure"}`: true,
	} {
		if join, err := protocol.DecodeJoin(json.RawMessage(input)); err != nil || join.Ephemeral != want {
			t.Errorf("DecodeJoin(%s): Ephemeral %v, %v; want %v", input, join.Ephemeral, err, want)
		}
	}
}

func TestUserViewID(t *testing.T) {
	for user, want := range map[string]string{
		`"k2j4h5g6f7"`:                   "k2j4h5g6f7",
		`["k2j4h5g6f7"]`:                 "k2j4h5g6f7",
		`{"id":"k2j4h5g6f7","data":"x"}`: "k2j4h5g6f7",
		`"a\"b"`:                         `a"b`,
		``:                               "",
		`42`:                             "",
		`[]`:                             "",
		`[7]`:                            "",
		`{"data":"x"}`:                   "",
		`{"id":7}`:                       "",
	} {
		if got := protocol.UserViewID(json.RawMessage(user)); got != want {
			t.Errorf("UserViewID(%s) = %q, want %q", user, got, want)
		}
	}
}
