package reflector_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/protocol"
	"github.com/metronome-sync/metronome/reflector"
)

// Micro-benchmarks of Session.Step. They report time and allocations only;
// nothing is asserted about speed.

const benchSessionID = "Oq7ScyMxXY7c-vcBSAA8rxHz3IXvH8f7KaGtOR4aQx8"

func benchFrame(b *testing.B, data []byte) protocol.ClientFrame {
	b.Helper()
	frame, err := protocol.DecodeClientFrame(data)
	if err != nil {
		b.Fatalf("decoding %s: %v", data, err)
	}
	return frame
}

func benchFile(b *testing.B, name string) []byte {
	b.Helper()
	data, err := os.ReadFile("../protocol/testdata/frames/" + name)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

// benchJoin returns the standard JOIN of protocol/testdata with a user
// value unique to conn.
func benchJoin(b *testing.B, template []byte, conn reflector.ConnID) protocol.ClientFrame {
	b.Helper()
	text := strings.Replace(string(template), `"user":"k2j4h5g6f7"`, fmt.Sprintf(`"user":"view-%d"`, conn), 1)
	return benchFrame(b, []byte(text))
}

// benchSession is a session with synced members, driven at monotonic
// time now.
type benchSession struct {
	session  *reflector.Session
	now      int64
	members  int
	nextConn reflector.ConnID
	join     []byte
	out      reflector.Effects
}

// newBenchSession creates a session and connects and syncs members
// (ids 1..members), then steps a Wake past the users interval so that the
// users announcement is out of the way.
func newBenchSession(b *testing.B, config reflector.Config, members int) *benchSession {
	b.Helper()
	bs := &benchSession{
		session: reflector.New(config, benchSessionID, "timeline-bench", 1000),
		now:     1000,
		members: members,
		join:    benchFile(b, "join.json"),
	}
	for range members {
		bs.addMember(b)
	}
	bs.now += config.UsersIntervalMs + 1
	bs.step(reflector.Wake{})
	if _, synced := bs.session.Members(); synced != members {
		b.Fatalf("%d synced members, want %d", synced, members)
	}
	return bs
}

func (bs *benchSession) step(event reflector.Event) {
	bs.out.Reset()
	bs.session.Step(bs.now, event, &bs.out)
}

// addMember connects a new member and steps its JOIN; the first JOIN's
// pointer lookup is answered (no persisted data).
func (bs *benchSession) addMember(b *testing.B) reflector.ConnID {
	bs.nextConn++
	id := bs.nextConn
	bs.step(reflector.Connect{Conn: id})
	bs.step(reflector.Receive{Conn: id, Frame: benchJoin(b, bs.join, id)})
	if len(bs.out.LookupPointers) > 0 {
		bs.step(reflector.PointerLoaded{})
	}
	return id
}

// benchConfig is the default config with the per-connection rate limit
// raised, so that one connection can send the many SENDs a benchmark
// needs without waiting for tokens at a fixed time.
func benchConfig() reflector.Config {
	config := reflector.DefaultConfig()
	config.FramesPerSecondMax = 1 << 30
	config.FramesBurstMax = 1 << 30
	return config
}

// BenchmarkStepSend measures one Step of a Receive of a decoded SEND in a
// session with n synced members: stamp, buffer, one RECV frame shared by
// all recipients. Senders rotate over the members and time advances 1 ms
// per SEND (so watchdog and time-lease renewals are included, amortized),
// with the default config. Every 50,000 SENDs (below
// MessagesRequestSnapshotFrom) the session is rebuilt with the timer
// stopped, standing in for the snapshot a real session would take.
func BenchmarkStepSend(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			config := reflector.DefaultConfig()
			send := benchFrame(b, benchFile(b, "send.json"))
			bs := newBenchSession(b, config, n)
			sent := 0
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if sent == 50_000 {
					b.StopTimer()
					bs = newBenchSession(b, config, n)
					sent = 0
					b.StartTimer()
				}
				bs.now++
				sender := reflector.ConnID(i%n + 1)
				bs.out.Reset()
				bs.session.Step(bs.now, reflector.Receive{Conn: sender, Frame: send}, &bs.out)
				sent++
			}
			b.StopTimer()
			if bs.out.MessagesStamped != 1 {
				b.Fatalf("last SEND: %d messages stamped, effects %+v", bs.out.MessagesStamped, bs.out.Outbound)
			}
		})
	}
}

// BenchmarkStepJoinSync measures the Step of one JOIN (of a connection
// already connected) that is answered with a SYNC carrying n buffered
// messages. The buffer is built by stepping n SENDs.
func BenchmarkStepJoinSync(b *testing.B) {
	for _, n := range []int{10_000, 50_000} {
		b.Run(fmt.Sprintf("buffered=%d", n), func(b *testing.B) {
			config := benchConfig()
			send := benchFrame(b, benchFile(b, "send.json"))
			bs := newBenchSession(b, config, 10)
			for range n {
				bs.step(reflector.Receive{Conn: 1, Frame: send})
			}
			if got := bs.session.BufferedMessages(); got < n {
				b.Fatalf("%d buffered messages, want at least %d", got, n)
			}
			frameBytes := 0
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				b.StopTimer()
				bs.nextConn++
				id := bs.nextConn
				bs.step(reflector.Connect{Conn: id})
				join := reflector.Receive{Conn: id, Frame: benchJoin(b, bs.join, id)}
				bs.out.Reset()
				b.StartTimer()
				bs.session.Step(bs.now, join, &bs.out)
				b.StopTimer()
				if len(bs.out.Outbound) != 1 {
					b.Fatalf("JOIN: %d outbound effects, want the SYNC", len(bs.out.Outbound))
				}
				frameBytes = bs.out.Outbound[0].Len()
				b.StartTimer()
			}
			b.ReportMetric(float64(frameBytes), "sync-bytes")
		})
	}
}

// BenchmarkStepWakeTick measures a Wake that emits one TICK to 1000 synced
// members: time advances to the next tick per iteration. The
// inactivity watchdog is disabled (the members send nothing).
func BenchmarkStepWakeTick(b *testing.B) {
	config := reflector.DefaultConfig()
	config.InactivityTimeoutMs = 0
	bs := newBenchSession(b, config, 1000)
	ticks := 0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		// Wakes are stepped at NextWake until one ticks (a watchdog or
		// time-lease wake in between is included, amortized).
		for {
			bs.now = bs.session.NextWake()
			bs.out.Reset()
			bs.session.Step(bs.now, reflector.Wake{}, &bs.out)
			if bs.out.TicksSent > 0 {
				break
			}
		}
		ticks += bs.out.TicksSent
	}
	b.StopTimer()
	if ticks < b.N*1000 {
		b.Fatalf("%d ticks sent in %d wakes, want 1000 per wake", ticks, b.N)
	}
}
