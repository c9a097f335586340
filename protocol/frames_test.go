package protocol_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

// sampleFrames returns the sample client frames in testdata/frames, keyed by
// file name. Other packages' tests use the same files.
func sampleFrames(tb testing.TB) map[string][]byte {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", "frames", "*.json"))
	if err != nil {
		tb.Fatal(err)
	}
	frames := make(map[string][]byte, len(paths))
	for _, path := range paths {
		data, err := os.ReadFile(path)
		if err != nil {
			tb.Fatal(err)
		}
		frames[filepath.Base(path)] = data
	}
	return frames
}

// sortedNames returns the keys of frames in order, so seeds and subtests
// run in the same order every time.
func sortedNames(frames map[string][]byte) []string {
	names := make([]string, 0, len(frames))
	for name := range frames {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// decodeArgs decodes the args of a frame with the decoder for its action.
// Actions without a decoder (PING, PULSE, LOG, unknown) return nil.
func decodeArgs(frame protocol.ClientFrame) (any, error) {
	switch frame.Action {
	case protocol.ActionJoin:
		return protocol.DecodeJoin(frame.Args)
	case protocol.ActionSend:
		return protocol.DecodeMessage("args", frame.Args)
	case protocol.ActionTutti:
		return protocol.DecodeTutti(frame.Args)
	case protocol.ActionSnap:
		return protocol.DecodeSnap(frame.Args)
	case protocol.ActionSave:
		return protocol.DecodeSave(frame.Args)
	case protocol.ActionTicks:
		return protocol.DecodeTicks(frame.Args)
	case protocol.ActionEphemeral:
		return protocol.DecodeEphemeral(frame.Args)
	}
	return nil, nil
}

func TestSampleFramesDecode(t *testing.T) {
	frames := sampleFrames(t)
	wantActions := map[string]string{
		"join.json":                protocol.ActionJoin,
		"join-viewdata.json":       protocol.ActionJoin,
		"send.json":                protocol.ActionSend,
		"send-debounce.json":       protocol.ActionSend,
		"tutti-snapshot-vote.json": protocol.ActionTutti,
		"tutti-first-message.json": protocol.ActionTutti,
		"snap.json":                protocol.ActionSnap,
		"save.json":                protocol.ActionSave,
		"ticks.json":               protocol.ActionTicks,
		"ping.json":                protocol.ActionPing,
		"pulse.json":               protocol.ActionPulse,
		"log.json":                 protocol.ActionLog,
		"ephemeral.json":           protocol.ActionEphemeral,
	}
	for name, action := range wantActions {
		if _, ok := frames[name]; !ok {
			t.Errorf("testdata/frames/%s (%s) is missing", name, action)
		}
	}
	for _, name := range sortedNames(frames) {
		t.Run(name, func(t *testing.T) {
			frame, err := protocol.DecodeClientFrame(frames[name])
			if err != nil {
				t.Fatalf("DecodeClientFrame: %v", err)
			}
			if want, ok := wantActions[name]; ok && frame.Action != want {
				t.Errorf("action %q, want %q", frame.Action, want)
			}
			args, err := decodeArgs(frame)
			if err != nil {
				t.Fatalf("decoding %s args: %v", frame.Action, err)
			}
			check(t, name, frame, args)
		})
	}
}

// check verifies a few fields of the known samples, so a sample cannot
// silently lose what it is there to show.
func check(t *testing.T, name string, frame protocol.ClientFrame, args any) {
	t.Helper()
	switch name {
	case "join.json":
		join := args.(protocol.Join)
		if join.SDK != "2.0.4" || string(join.User) != `"k2j4h5g6f7"` || !join.HasTicks || join.TickMs != 50 || join.LeaveDelayMs != 1250 || join.Tove == "" {
			t.Errorf("join: %+v", join)
		}
	case "join-viewdata.json":
		join := args.(protocol.Join)
		if join.User[0] != '{' || join.DelayMs != 34 || !join.Flags.Microverse {
			t.Errorf("join with viewData: %+v", join)
		}
	case "send.json":
		message := args.(protocol.Message)
		if latency, ok := message.LatencyMs(); !ok || latency != 42 {
			t.Errorf("send latency %v, %v; want 42", latency, ok)
		}
	case "send-debounce.json":
		if frame.Tags != (protocol.Tags{DebounceMs: 5000, MsgID: "pollForSnapshot"}) {
			t.Errorf("send tags %+v", frame.Tags)
		}
	case "tutti-snapshot-vote.json":
		tutti := args.(protocol.Tutti)
		if tutti.FirstMessage != nil || !tutti.WantsVote || tutti.Key != "snapshot@18615" || string(tutti.TallyTarget) != `["handleSnapshotVote"]` {
			t.Errorf("snapshot vote: %+v", tutti)
		}
	case "tutti-first-message.json":
		tutti := args.(protocol.Tutti)
		if tutti.FirstMessage == nil || tutti.WantsVote || tutti.Key != "persist@31250" {
			t.Errorf("tutti with first message: %+v", tutti)
		}
	case "snap.json":
		snap := args.(protocol.Snap)
		if snap.Time != 18628 || snap.Seq != 4294967283 || snap.URL == "" || snap.Dissident {
			t.Errorf("snap: %+v", snap)
		}
	case "save.json":
		save := args.(protocol.Save)
		if save.PersistTime != 31262 || save.URL == "" || save.Dissident {
			t.Errorf("save: %+v", save)
		}
	case "ticks.json":
		if ticks := args.(protocol.Ticks); ticks != (protocol.Ticks{TickMs: 100, Scale: 2}) {
			t.Errorf("ticks: %+v", ticks)
		}
	case "ephemeral.json":
		if payload := args.(json.RawMessage); string(payload) != string(frame.Args) || payload[0] != '"' {
			t.Errorf("ephemeral payload %s, want the args string %s", payload, frame.Args)
		}
	case "pulse.json":
		if frame.Args != nil {
			t.Errorf("pulse args %s, want none", frame.Args)
		}
	}
}
