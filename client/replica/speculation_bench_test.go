package replica_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/dmath"
	"github.com/metronome-sync/metronome/examples/balls/model"
	"github.com/metronome-sync/metronome/protocol"
)

// Benchmark of speculation on the balls model: two speculative replicas
// push balls concurrently through an in-memory reflector with a round
// trip of 10, 50 or 100 ms of virtual time (half of it each way), which
// stamps every input and ticks every 50 ms. One iteration is one 60 Hz
// frame: every third frame each replica publishes a push, then both
// views read their state (View: a rebuild when the confirmed state moved).
//
// Reported, in wall time on this machine:
//   - effect-ns: Publish plus the View that shows the push (the input →
//     local effect latency; the round trip does not enter it);
//   - rebuild-ns: one rebuild (a copy of the confirmed model and the
//     replay of the unconfirmed pushes);
//   - rollbacks/input, replays/rebuild, pending (speculated inputs per
//     frame, averaged).
//
//	go test ./client/replica -run X -bench Speculation -benchtime 3000x

const (
	benchFrameMs         = 16
	benchTickMs          = 50
	benchPushEveryFrames = 3
)

type benchFrame struct {
	at   int64
	node int
	data []byte
}

type benchWorld struct {
	nodes    []*replica.Replica[model.Model]
	shells   []*shell
	sent     []int
	now      int64
	rttMs    int64
	seq      uint32
	nextTick int64
	// sends are SENDs on their way to the reflector; frames, what it sent,
	// on their way to a node.
	sends  []benchFrame
	frames []benchFrame
}

func newBenchWorld(b *testing.B, rttMs int64) *benchWorld {
	w := &benchWorld{rttMs: rttMs, seq: newSeq, nextTick: benchTickMs}
	sync := protocol.AppendSync(nil, "S", &protocol.Sync{Seq: newSeq, Timeline: "tl"})
	for i := range 2 {
		sh := &shell{}
		r, err := replica.New(replica.Options[model.Model]{App: model.App, Link: link.Config{SessionID: "S", ViewID: fmt.Sprintf("v%d", i+1), Seed: uint64(i + 1)},
			Transport: sh, Files: sh, Codec: plainCodec{}, Observer: sh,
			Speculation: replica.SpeculationOptions{Enabled: true, Clock: func() int64 { return time.Now().UnixNano() }}})
		if err != nil {
			b.Fatal(err)
		}
		r.Step(0, link.Start{})
		r.Step(0, link.Opened{Conn: 1})
		r.Step(0, link.Received{Conn: 1, Data: sync})
		w.nodes, w.shells, w.sent = append(w.nodes, r), append(w.shells, sh), append(w.sent, 0)
	}
	w.stamp(json.RawMessage(`{"what":"users","joined":["v1","v2"],"active":2,"total":2}`), nil)
	w.advance(0)
	return w
}

// stamp sends a message from the reflector to every node, arriving after
// half the round trip.
func (w *benchWorld) stamp(payload json.RawMessage, extra []json.RawMessage) {
	w.seq++
	data := protocol.AppendRecv(nil, "S", protocol.AppendMessage(nil, w.now, w.seq, payload, extra))
	for i := range w.nodes {
		w.frames = append(w.frames, benchFrame{at: w.now + w.rttMs/2, node: i, data: data})
	}
}

// advance moves virtual time forward by ms, one ms at a time.
func (w *benchWorld) advance(ms int64) {
	for range ms {
		w.step()
	}
}

// step moves virtual time forward by 1 ms: the reflector stamps the SENDs
// that reached it and ticks; the nodes receive what is due.
func (w *benchWorld) step() {
	w.now++
	for i, sh := range w.shells {
		for ; w.sent[i] < len(sh.frames); w.sent[i]++ {
			w.sends = append(w.sends, benchFrame{at: w.now + w.rttMs/2, node: i, data: sh.frames[w.sent[i]]})
		}
	}
	kept := w.sends[:0]
	for _, send := range w.sends {
		if send.at > w.now {
			kept = append(kept, send)
			continue
		}
		frame, err := protocol.DecodeClientFrame(send.data)
		if err != nil || frame.Action != protocol.ActionSend {
			continue
		}
		message, err := protocol.DecodeMessage("args", frame.Args)
		if err == nil {
			w.stamp(message.Payload, message.Extra)
		}
	}
	w.sends = kept
	for w.nextTick <= w.now {
		for i := range w.nodes {
			w.frames = append(w.frames, benchFrame{at: w.nextTick + w.rttMs/2, node: i, data: protocol.AppendTick(nil, "S", w.nextTick)})
		}
		w.nextTick += benchTickMs
	}
	due := w.frames[:0]
	var later []benchFrame
	for _, f := range w.frames {
		if f.at <= w.now {
			due = append(due, f)
		} else {
			later = append(later, f)
		}
	}
	for _, f := range due {
		w.nodes[f.node].Step(w.now, link.Received{Conn: 1, Data: f.data})
	}
	w.frames = later
}

func BenchmarkSpeculation(b *testing.B) {
	for _, rttMs := range []int64{10, 50, 100} {
		b.Run(fmt.Sprintf("rtt=%dms", rttMs), func(b *testing.B) {
			w := newBenchWorld(b, rttMs)
			var effectNs, effects, pending, frames int64
			for frame := 0; b.Loop(); frame++ {
				w.advance(benchFrameMs)
				for i, r := range w.nodes {
					if frame%benchPushEveryFrames == 0 {
						before := r.View().Model().Pushes
						push, _ := island.Encode(model.Push{Ball: model.NoBall, At: dmath.Vec2{X: float64(100 + 50*i), Y: 200}})
						start := time.Now()
						if err := r.Publish(w.now, island.Envelope{Kind: island.KindEvent, Name: model.EventPush, Data: push}); err != nil {
							b.Fatal(err)
						}
						shown := r.View().Model().Pushes
						effectNs += time.Since(start).Nanoseconds()
						effects++
						if shown != before+1 {
							b.Fatalf("the push did not show at once: %d pushes before, %d after", before, shown)
						}
					}
					r.View()
					pending += int64(r.SpeculationStats().Pending)
					frames++
				}
			}
			var stats replica.SpeculationStats
			for _, r := range w.nodes {
				s := r.SpeculationStats()
				stats.Speculated += s.Speculated
				stats.Rebuilds += s.Rebuilds
				stats.Rollbacks += s.Rollbacks
				stats.Replays += s.Replays
				stats.RebuildNs += s.RebuildNs
			}
			if a, b2 := w.nodes[0].Island().Hash(), w.nodes[1].Island().Hash(); a != b2 && len(w.frames) == 0 {
				b.Fatalf("confirmed states differ: %s %s", a, b2)
			}
			b.ReportMetric(float64(effectNs)/float64(max(effects, 1)), "effect-ns")
			b.ReportMetric(float64(stats.RebuildNs)/float64(max(stats.Rebuilds, 1)), "rebuild-ns")
			b.ReportMetric(float64(stats.Rollbacks)/float64(max(stats.Speculated, 1)), "rollbacks/input")
			b.ReportMetric(float64(stats.Replays)/float64(max(stats.Rebuilds, 1)), "replays/rebuild")
			b.ReportMetric(float64(pending)/float64(max(frames, 1)), "pending")
		})
	}
}
