package link

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
)

// newEphemeralHarness is a harness whose link asks for the ephemeral
// channel when ask is set.
func newEphemeralHarness(t *testing.T, ask bool) *harness {
	t.Helper()
	l, err := New(Config{SessionID: "S", ViewID: "view1", Seed: 7, Join: protocol.JoinRequest{Ephemeral: ask}})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, link: l}
}

// ephemeralPayloads returns the payloads of the EPHM frames in out.
func ephemeralPayloads(t *testing.T, out *Effects) []string {
	t.Helper()
	var payloads []string
	for _, frame := range out.Frames {
		decoded, err := protocol.DecodeClientFrame(frame.Data)
		if err != nil {
			t.Fatalf("frame %s: %v", frame.Data, err)
		}
		if decoded.Action != protocol.ActionEphemeral {
			continue
		}
		payload, err := protocol.DecodeEphemeral(decoded.Args)
		if err != nil {
			t.Fatalf("EPHM %s: %v", frame.Data, err)
		}
		payloads = append(payloads, string(payload))
	}
	return payloads
}

func broadcast(name, payload string) Broadcast {
	return Broadcast{Name: name, Payload: json.RawMessage(`"` + payload + `"`)}
}

func TestBroadcastsAreDroppedUntilJoined(t *testing.T) {
	h := newEphemeralHarness(t, true)
	if out := h.step(broadcast("pointer", "p0")); len(out.Frames) != 0 || len(out.Rejected) != 0 {
		t.Fatalf("a broadcast before joining: frames %v, rejected %v", out.Frames, out.Rejected)
	}
	h.step(Start{})
	out := h.step(Opened{Conn: 1})
	if len(out.Frames) != 1 || !strings.Contains(string(out.Frames[0].Data), `"ephemeral":true`) {
		t.Fatalf("the JOIN of a link that asks for the channel: %q", out.Frames)
	}
	if got := h.link.Stats().EphemeralDropped; got != 1 {
		t.Fatalf("EphemeralDropped = %d, want 1", got)
	}
}

// TestBroadcastsArePacedAndCoalesced: a burst goes out at once, then one
// frame per 1/EphemeralSendRatePerSecond; meanwhile a newer broadcast
// under a waiting name replaces the older, so the latest goes out.
func TestBroadcastsArePacedAndCoalesced(t *testing.T) {
	h := newEphemeralHarness(t, true)
	h.join()
	h.now = 1000
	var sent []string
	for i := range 20 {
		sent = append(sent, ephemeralPayloads(t, h.step(broadcast("pointer", fmt.Sprintf("p%d", i))))...)
	}
	if want := []string{`"p0"`, `"p1"`, `"p2"`, `"p3"`, `"p4"`}; strings.Join(sent, " ") != strings.Join(want, " ") {
		t.Fatalf("sent at once %v, want the burst of %d: %v", sent, EphemeralSendBurstMaxDefault, want)
	}
	// Another name waits behind the first.
	h.step(broadcast("drag", "d0"))
	wake := h.link.NextWake()
	if wantWake := h.now + (1000+EphemeralSendRatePerSecondDefault-1)/EphemeralSendRatePerSecondDefault; wake != wantWake {
		t.Fatalf("NextWake %d, want %d (one token at %d/s)", wake, wantWake, EphemeralSendRatePerSecondDefault)
	}
	h.now = wake
	if got := ephemeralPayloads(t, h.step(Wake{})); strings.Join(got, " ") != `"p19"` {
		t.Fatalf("after one token: %v, want the latest pointer p19", got)
	}
	h.now = h.link.NextWake()
	if got := ephemeralPayloads(t, h.step(Wake{})); strings.Join(got, " ") != `"d0"` {
		t.Fatalf("after the next token: %v, want the drag d0", got)
	}
	if wake := h.link.NextWake(); wake < h.now+1000 {
		t.Fatalf("NextWake %d with nothing waiting, want no ephemeral wake", wake)
	}
	stats := h.link.Stats()
	if stats.EphemeralSent != 7 || stats.EphemeralCoalesced != 14 || stats.EphemeralDropped != 0 {
		t.Fatalf("stats %+v, want 7 sent, 14 coalesced", stats)
	}
	if h.link.PendingInputs() != 0 {
		t.Fatal("broadcasts counted as inputs")
	}
}

func TestWaitingBroadcastsAreDroppedWithTheConnection(t *testing.T) {
	h := newEphemeralHarness(t, true)
	h.join()
	for i := range EphemeralSendBurstMaxDefault + 2 {
		h.step(broadcast(fmt.Sprintf("n%d", i), "x"))
	}
	h.step(Closed{Conn: h.link.conn, Code: 1006})
	if stats := h.link.Stats(); stats.EphemeralSent != EphemeralSendBurstMaxDefault || stats.EphemeralDropped != 2 {
		t.Fatalf("stats %+v, want the burst sent and 2 dropped", stats)
	}
	if wake := h.link.NextWake(); wake != h.link.reconnectAt {
		t.Fatalf("NextWake %d, want only the reconnect at %d", wake, h.link.reconnectAt)
	}
}

func TestBroadcastRejections(t *testing.T) {
	h := newEphemeralHarness(t, true)
	h.join()
	if out := h.step(Broadcast{Name: "x", Payload: json.RawMessage(`{}`)}); len(out.Rejected) != 1 {
		t.Fatalf("an object payload: rejected %v", out.Rejected)
	}
	for i := range EphemeralSendBurstMaxDefault + EphemeralPendingNamesMax {
		if out := h.step(broadcast(fmt.Sprintf("n%d", i), "x")); len(out.Rejected) != 0 {
			t.Fatalf("broadcast %d: %v", i, out.Rejected)
		}
	}
	out := h.step(broadcast("one more", "x"))
	if len(out.Rejected) != 1 || !strings.Contains(out.Rejected[0].Error(), "EphemeralPendingNamesMax") {
		t.Fatalf("a name beyond EphemeralPendingNamesMax: rejected %v", out.Rejected)
	}
	if out := h.step(broadcast("n100", "newer")); len(out.Rejected) != 0 {
		t.Fatalf("a waiting name is still replaced: %v", out.Rejected)
	}
}

func TestReceivedBroadcasts(t *testing.T) {
	relayed := protocol.AppendEphemeral(nil, "S", "view2", json.RawMessage(`"sealed"`))

	h := newEphemeralHarness(t, true)
	h.join()
	out := h.frame(relayed)
	if len(out.Ephemeral) != 1 || out.Ephemeral[0].From != "view2" || string(out.Ephemeral[0].Payload) != `"sealed"` {
		t.Fatalf("EPHM: %+v", out.Ephemeral)
	}
	if len(out.Deliveries) != 0 || out.Close != nil {
		t.Fatalf("an EPHM delivered %+v to the model, close %v", out.Deliveries, out.Close)
	}

	// A link that did not ask never hands one on (the reflector never
	// sends it one), and keeps its connection.
	h = newEphemeralHarness(t, false)
	h.join()
	out = h.frame(relayed)
	if len(out.Ephemeral) != 0 || out.Close != nil || len(out.Notes) != 1 {
		t.Fatalf("EPHM to a link that did not ask: ephemeral %+v, close %v, notes %q", out.Ephemeral, out.Close, out.Notes)
	}
	if got := h.link.Stats().EphemeralReceived; got != 1 {
		t.Fatalf("EphemeralReceived = %d, want 1 (counted, ignored)", got)
	}
}
