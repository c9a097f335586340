package link

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

const firstSeq = 4294967280

// harness steps a link and keeps the effects of the last step.
type harness struct {
	t    *testing.T
	link *Link
	now  int64
	out  Effects
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	l, err := New(Config{SessionID: "S", ViewID: "view1", Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, link: l}
}

func (h *harness) step(event Event) *Effects {
	h.out.Reset()
	h.link.Step(h.now, event, &h.out)
	return &h.out
}

func (h *harness) frame(data []byte) *Effects {
	return h.step(Received{Conn: h.link.conn, Data: data})
}

func message(t int64, seq uint32, payload string, extra ...string) []byte {
	raw := make([]json.RawMessage, len(extra))
	for i, e := range extra {
		raw[i] = json.RawMessage(e)
	}
	return protocol.AppendMessage(nil, t, seq, json.RawMessage(payload), raw)
}

func usersJoined(view string) string {
	return string(protocol.UsersPayload(1, 1, []json.RawMessage{json.RawMessage(`"` + view + `"`)}, nil))
}

// join drives the link from Start to a completed join on timeline "tl".
func (h *harness) join() {
	h.t.Helper()
	if out := h.step(Start{}); out.Dial != 1 {
		h.t.Fatalf("Start: Dial = %d, want 1", out.Dial)
	}
	out := h.step(Opened{Conn: 1})
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"action":"JOIN"`) {
		h.t.Fatalf("Opened: frames %q, want a JOIN", out.Frames)
	}
	out = h.frame(protocol.AppendSync(nil, "S", &protocol.Sync{Time: 10, Seq: firstSeq, Timeline: "tl"}))
	if len(out.Deliveries) != 2 || out.Deliveries[0].Kind != DeliverReset || out.Deliveries[1].Kind != DeliverTime {
		h.t.Fatalf("SYNC: deliveries %+v, want reset and time", out.Deliveries)
	}
	if h.link.Joined() {
		h.t.Fatal("joined before the users message named the view")
	}
	if s := h.link.Stats(); s.Syncs != 1 || s.Resets != 0 {
		h.t.Fatalf("the first join counted as a reset: %+v", s)
	}
	out = h.frame(protocol.AppendRecv(nil, "S", message(200, firstSeq+1, usersJoined("view1"))))
	if !out.Joined || !h.link.Joined() {
		h.t.Fatal("not joined after the users message")
	}
}

func TestJoinSubmitAcknowledge(t *testing.T) {
	h := newHarness(t)
	h.now = 5
	out := h.step(Submit{Payload: json.RawMessage(`"early"`)})
	if len(out.Frames) != 0 || h.link.PendingInputs() != 1 {
		t.Fatalf("an input before joining was sent: %q", out.Frames)
	}
	h.join()
	if len(h.out.Frames) != 1 || !strings.Contains(string(h.out.Frames[0].Data), `"early","view1:1",0]`) {
		t.Fatalf("joining did not flush the early input with its tag: %q", h.out.Frames)
	}
	out = h.step(Submit{Payload: json.RawMessage(`"second"`)})
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"view1:2"`) {
		t.Fatalf("second input: %q", out.Frames)
	}
	out = h.frame(protocol.AppendRecv(nil, "S", message(300, firstSeq+2, `"early"`, `"view1:1"`, `0`)))
	if h.link.PendingInputs() != 1 || len(out.Deliveries) != 1 || !out.Deliveries[0].IsInput || out.Deliveries[0].Input != (InputTag{"view1", 1}) {
		t.Fatalf("after the echo: pending %d, deliveries %+v", h.link.PendingInputs(), out.Deliveries)
	}
	if out := h.frame(protocol.AppendRequ(nil, "S")); !out.SnapshotRequested {
		t.Fatal("REQU not reported")
	}
	h.frame(protocol.AppendTick(nil, "S", 350))
	if _, seq, now, _ := h.link.Position(); seq != firstSeq+2 || now != 350 {
		t.Fatalf("position seq %d time %d", seq, now)
	}
}

func TestGapReconnectsAndSeamlessRejoinResends(t *testing.T) {
	h := newHarness(t)
	h.join()
	h.step(Submit{Payload: json.RawMessage(`"a"`)})
	h.step(Submit{Payload: json.RawMessage(`"b"`)})
	// Input a is stamped as seq +2; seq +3 is lost: +4 is a gap.
	h.frame(protocol.AppendRecv(nil, "S", message(300, firstSeq+2, `"a"`, `"view1:1"`, `0`)))
	out := h.frame(protocol.AppendRecv(nil, "S", message(400, firstSeq+4, `"x"`)))
	if out.Close == nil || out.Close.Code != protocol.CloseClientError || h.link.Phase() != PhaseWaiting {
		t.Fatalf("a gap did not close with %d: %+v, phase %v", protocol.CloseClientError, out.Close, h.link.Phase())
	}
	if h.link.NextWake() != h.now {
		t.Fatalf("first reconnect is not immediate: wake %d at %d", h.link.NextWake(), h.now)
	}
	out = h.step(Wake{})
	if out.Dial != 2 {
		t.Fatalf("no redial: %+v", out)
	}
	h.step(Opened{Conn: 2})
	// The reflector had stamped +3 (b) and +4; the SYNC holds all since
	// the start: seamless, so only +3 and +4 are delivered.
	sync := &protocol.Sync{Time: 500, Seq: firstSeq + 4, Timeline: "tl", Messages: [][]byte{
		message(200, firstSeq+1, usersJoined("view1")),
		message(300, firstSeq+2, `"a"`, `"view1:1"`, `0`),
		message(350, firstSeq+3, `"b"`, `"view1:2"`, `0`),
		message(400, firstSeq+4, `"x"`),
	}}
	out = h.frame(protocol.AppendSync(nil, "S", sync))
	if len(out.Deliveries) != 3 || out.Deliveries[0].Message.Seq != firstSeq+3 || out.Deliveries[2].Kind != DeliverTime {
		t.Fatalf("seamless rejoin deliveries: %+v", out.Deliveries)
	}
	if !h.link.Joined() || h.link.PendingInputs() != 0 || len(out.Frames) != 0 {
		t.Fatalf("after rejoin: joined %v pending %d frames %q", h.link.Joined(), h.link.PendingInputs(), out.Frames)
	}
	if s := h.link.Stats(); s.Gaps != 1 || s.SeamlessRejoins != 1 {
		t.Fatalf("stats %+v", s)
	}
}

func TestRejoinAfterSnapshotResetsAndResendsUnseenInputs(t *testing.T) {
	h := newHarness(t)
	h.join()
	h.step(Submit{Payload: json.RawMessage(`"a"`)})
	h.step(Closed{Conn: 1, Code: 1006})
	h.step(Wake{})
	h.step(Opened{Conn: 2})
	// A snapshot at +5 is newer than our last seq (+1): reset from it; our
	// input may be inside the snapshot, so it is re-sent (models dedup).
	sync := &protocol.Sync{URL: "snap://5", Time: 900, Seq: firstSeq + 6, Timeline: "tl", HasSnapshot: true,
		SnapshotTime: 800, SnapshotSeq: firstSeq + 5, Messages: [][]byte{message(850, firstSeq+6, `"y"`)}}
	out := h.frame(protocol.AppendSync(nil, "S", sync))
	if out.Deliveries[0].Kind != DeliverReset || out.Deliveries[0].Sync.URL != "snap://5" || out.Deliveries[1].Message.Seq != firstSeq+6 {
		t.Fatalf("deliveries %+v", out.Deliveries)
	}
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"view1:1"`) || h.link.Stats().InputsResent != 1 {
		t.Fatalf("input not re-sent: %q, stats %+v", out.Frames, h.link.Stats())
	}
	if s := h.link.Stats(); s.Syncs != 2 || s.Resets != 1 || s.SeamlessRejoins != 0 {
		t.Fatalf("a rejoin from a snapshot: stats %+v, want 2 syncs, 1 reset", s)
	}
}

func TestBackoffGrowsAndFatalCloseStops(t *testing.T) {
	h := newHarness(t)
	h.step(Start{})
	var delays []int64
	for range 30 {
		conn := h.link.conn
		h.step(Closed{Conn: conn, Code: 1006})
		delays = append(delays, h.link.NextWake()-h.now)
		h.now = h.link.NextWake()
		if out := h.step(Wake{}); out.Dial != conn+1 {
			t.Fatalf("no redial after %v", delays)
		}
	}
	if delays[0] != 0 || delays[1] < 100 || delays[29] != ReconnectDelayMaxMsDefault {
		t.Fatalf("delays %v: want 0, then ≥ 100 growing to %d", delays, ReconnectDelayMaxMsDefault)
	}
	out := h.step(Closed{Conn: h.link.conn, Code: protocol.CloseMalformed, Reason: "bad"})
	if out.Failed == nil || h.link.Phase() != PhaseStopped || h.link.NextWake() != never {
		t.Fatalf("fatal close: %+v, phase %v", out, h.link.Phase())
	}
}

func TestSyncTimeoutAndSilence(t *testing.T) {
	h := newHarness(t)
	h.step(Start{})
	h.step(Opened{Conn: 1})
	h.now = SyncTimeoutMsDefault
	out := h.step(Wake{})
	if out.Close == nil || !strings.Contains(out.Close.Reason, "SyncTimeoutMs") {
		t.Fatalf("no close after the SYNC timeout: %+v", out)
	}
	h.step(Wake{})
	h.step(Opened{Conn: 2})
	h.frame(protocol.AppendSync(nil, "S", &protocol.Sync{Time: 10, Seq: firstSeq, Timeline: "tl"}))
	h.now += PulseAfterMsDefault
	if out := h.step(Wake{}); len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), "PULSE") {
		t.Fatalf("no PULSE: %+v", out)
	}
	h.now += SilenceTimeoutMsDefault
	if out := h.step(Wake{}); out.Close == nil || !strings.Contains(out.Close.Reason, "SilenceTimeoutMs") {
		t.Fatalf("no close after silence: %+v", out)
	}
}

func TestConfigValidation(t *testing.T) {
	for _, config := range []Config{{ViewID: "v"}, {SessionID: "S", ViewID: "a:b"}, {SessionID: "S", ViewID: "v", PulseAfterMs: -1}} {
		if _, err := New(config); err == nil {
			t.Errorf("%+v accepted", config)
		}
	}
}

// TestRejectedInputsAreSentAgain: after INFO MESSAGE_REJECTED the link
// sends its unconfirmed inputs again, RejectedResendDelayMs later and not
// before (a submit meanwhile sends only itself); a confirmed input is not
// sent again.
func TestRejectedInputsAreSentAgain(t *testing.T) {
	h := newHarness(t)
	h.join()
	h.step(Submit{Payload: json.RawMessage(`"a"`)})
	h.step(Submit{Payload: json.RawMessage(`"b"`)})
	// "a" is stamped; "b" was rejected.
	h.frame(protocol.AppendRecv(nil, "S", message(300, firstSeq+2, `"a"`, `"view1:1"`, "0")))
	h.frame(protocol.AppendInfo(nil, "S", protocol.InfoMessageRejected, "buffer full", "error"))
	if wake := h.link.NextWake(); wake > h.now+RejectedResendDelayMs {
		t.Fatalf("next wake %d, want the re-send at %d", wake, h.now+RejectedResendDelayMs)
	}
	h.now += RejectedResendDelayMs / 2
	out := h.step(Submit{Payload: json.RawMessage(`"c"`)})
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"c"`) {
		t.Fatalf("a submit right after the rejection sent %q, want only c", out.Frames)
	}
	h.now += RejectedResendDelayMs / 2
	out = h.step(Wake{})
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"b"`) {
		t.Fatalf("the re-send after the delay sent %q, want b again", out.Frames)
	}
	if h.link.Stats().InputsResent != 1 {
		t.Errorf("InputsResent %d, want 1", h.link.Stats().InputsResent)
	}
	// Rejected again: the next re-send waits twice as long.
	h.frame(protocol.AppendInfo(nil, "S", protocol.InfoMessageRejected, "buffer full", "error"))
	h.now += 2*RejectedResendDelayMs - 1
	if out := h.step(Wake{}); len(out.Frames) != 0 {
		t.Fatalf("re-sent before the doubled delay: %q", out.Frames)
	}
	h.now++
	if out := h.step(Wake{}); len(out.Frames) != 2 {
		t.Fatalf("after the doubled delay sent %q, want b and c again", out.Frames)
	}
}

// TestRejectedInputSurvivesAReconnect: a rejected input whose re-send is
// still waiting when the connection breaks is sent on the next connection
// once its delay has passed (the simulator found it waiting forever: a
// reconnect cleared the wake that would have sent it).
func TestRejectedInputSurvivesAReconnect(t *testing.T) {
	h := newHarness(t)
	h.join()
	h.step(Submit{Payload: json.RawMessage(`"a"`)})
	h.frame(protocol.AppendInfo(nil, "S", protocol.InfoMessageRejected, "buffer full", "error"))
	h.step(Closed{Conn: 1, Code: 1006})
	h.step(Wake{})
	h.step(Opened{Conn: 2})
	sync := &protocol.Sync{Time: 20, Seq: firstSeq + 1, Timeline: "tl", Messages: [][]byte{message(200, firstSeq+1, usersJoined("view1"))}}
	h.frame(protocol.AppendSync(nil, "S", sync))
	if wake := h.link.NextWake(); wake > RejectedResendDelayMs {
		t.Fatalf("after the rejoin the next wake is %d, want the re-send at %d", wake, RejectedResendDelayMs)
	}
	h.now = RejectedResendDelayMs
	out := h.step(Wake{})
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"view1:1"`) {
		t.Fatalf("the rejected input was not sent again: %q", out.Frames)
	}
}

// TestStepRefusesUnexecutedCloseOrDial: Close and Dial hold one value, so
// stepping into Effects that still hold one panics instead of losing it.
func TestStepRefusesUnexecutedCloseOrDial(t *testing.T) {
	h := newHarness(t)
	out := &Effects{}
	h.link.Step(0, Start{}, out)
	if out.Dial == 0 {
		t.Fatal("Start did not dial")
	}
	defer func() {
		if recover() == nil {
			t.Error("a Step into Effects holding a Dial did not panic")
		}
	}()
	h.link.Step(1, Wake{}, out)
}
