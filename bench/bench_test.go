package bench

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// testScenario is the short scenario of the end-to-end tests:
// 2 sessions × 3 clients × 20 msg/s × 1 s.
func testScenario(t *testing.T, url string) LatencyConfig {
	config := DefaultLatencyConfig()
	config.URL = url
	config.Sessions, config.Clients, config.Rate = 2, 3, 20
	config.Duration, config.Warmup = time.Second, 200*time.Millisecond
	config.PayloadBytes = 80
	config.SessionPrefix = strings.ReplaceAll(t.Name(), "/", "_") + fmt.Sprint(time.Now().UnixNano())
	config.Progress = testWriter{t}
	return config
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func runScenario(t *testing.T, config LatencyConfig) *LatencyResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	result, err := RunLatency(ctx, config)
	if err != nil {
		t.Fatalf("RunLatency: %v", err)
	}
	var table strings.Builder
	result.WriteTable(&table)
	t.Log("\n" + table.String())
	return result
}

// assertComplete checks that nothing was lost and that every client got
// every message of its session: count == expected deliveries.
func assertComplete(t *testing.T, config LatencyConfig, result *LatencyResult) {
	t.Helper()
	if !result.OK || result.Missing != 0 || result.Duplicates != 0 || result.OutOfOrder != 0 {
		t.Fatalf("run not OK: missing %d duplicates %d out-of-order %d unexpected %d errors %d (%s)",
			result.Missing, result.Duplicates, result.OutOfOrder, result.Unexpected, result.ConnectionErrs, result.FirstError)
	}
	if result.Sent == 0 || result.Delivered != result.Expected || result.Expected != result.Sent*int64(config.Clients) {
		t.Fatalf("sent %d delivered %d expected %d: want delivered == expected == sent × %d clients",
			result.Sent, result.Delivered, result.Expected, config.Clients)
	}
	// Every own message sent after the warmup is measured once; its count
	// is bounded by what was sent (no timing assertion beyond that).
	if result.Latency.Count == 0 || int64(result.Latency.Count) > result.Sent {
		t.Fatalf("latency count %d for %d sent", result.Latency.Count, result.Sent)
	}
}

func TestLatencyAgainstMetronome(t *testing.T) {
	config := testScenario(t, startMetronome(t))
	result := runScenario(t, config)
	assertComplete(t, config, result)
	if result.UsersFrames == 0 {
		t.Error("no users RECV seen: the reflector announces every join")
	}
}

func startBaseline(t *testing.T) *Baseline {
	t.Helper()
	baseline, err := ListenBaseline("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return baseline
}

func serveBaseline(t *testing.T, baseline *Baseline) {
	go baseline.Serve()
	t.Cleanup(func() { baseline.Close() })
}

func TestLatencyAgainstBaseline(t *testing.T) {
	baseline := startBaseline(t)
	serveBaseline(t, baseline)
	config := testScenario(t, "ws://"+baseline.Addr()+"/reflector")
	assertComplete(t, config, runScenario(t, config))
}

func TestLossIsReported(t *testing.T) {
	baseline := startBaseline(t)
	var dropped atomic.Int32
	baseline.DropHook = func(room string, seq uint32) bool {
		// Drop the 5th message of the run, once.
		return seq == baselineFirstSeq+5 && dropped.Add(1) == 1
	}
	serveBaseline(t, baseline)
	config := testScenario(t, "ws://"+baseline.Addr()+"/reflector")
	config.DrainTimeout = time.Second // the dropped message never comes
	result := runScenario(t, config)
	if dropped.Load() == 0 {
		t.Fatal("the hook dropped nothing")
	}
	if result.OK || result.Missing != int64(config.Clients) || result.OutOfOrder == 0 {
		t.Fatalf("one dropped message: want OK false, missing %d (one per member), out-of-order > 0; got OK %v missing %d out-of-order %d",
			config.Clients, result.OK, result.Missing, result.OutOfOrder)
	}
	var table strings.Builder
	result.WriteTable(&table)
	if !strings.Contains(table.String(), "FAIL") {
		t.Errorf("the table does not say FAIL:\n%s", table.String())
	}
}

func TestParsePayloadRoundTrip(t *testing.T) {
	for _, size := range []int{0, 10, 200} {
		payload := appendPayload(nil, 7, 123, 456789, size)
		if len(payload) < size {
			t.Fatalf("payload %q shorter than %d", payload, size)
		}
		member, index, sent, ok := parsePayload(payload)
		if !ok || member != 7 || index != 123 || sent != 456789 {
			t.Fatalf("parsePayload(%q) = %d %d %d %v", payload, member, index, sent, ok)
		}
	}
	for _, bad := range []string{"", "b:", "b:1:2", "x:1:2:3:", "b:-1:2:3:"} {
		if _, _, _, ok := parsePayload([]byte(bad)); ok {
			t.Errorf("parsePayload(%q) accepted", bad)
		}
	}
}

func TestParseInboundFastAndFallback(t *testing.T) {
	for _, frame := range []string{
		`{"id":"s","action":"RECV","args":[12,4294967281,"b:1:2:3:xx",0]}`,
		`{"action":"RECV","id":"s","args":[12, 4294967281, "b:1:2:3:xx", 0]}`, // spaces: fallback
	} {
		message, err := parseInbound([]byte(frame))
		if err != nil || message.action != "RECV" || message.seq != 4294967281 || string(message.stringPayload) != "b:1:2:3:xx" {
			t.Errorf("parseInbound(%s) = %+v, %v", frame, message, err)
		}
	}
	message, err := parseInbound([]byte(`{"id":"s","action":"RECV","args":[1,5,{"what":"users"}]}`))
	if err != nil || !message.objectPayload || message.seq != 5 {
		t.Errorf("users RECV: %+v %v", message, err)
	}
	message, err = parseInbound([]byte(`{"id":"s","action":"TICK","args":99}`))
	if err != nil || message.action != "TICK" {
		t.Errorf("TICK: %+v %v", message, err)
	}
}

func TestReadProcessSelf(t *testing.T) {
	sample, err := readProcess(os.Getpid())
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	if sample.rssKiB <= 0 || sample.cpuTime < 0 {
		t.Fatalf("own process: RSS %d KiB, CPU %v", sample.rssKiB, sample.cpuTime)
	}
	if _, err := readProcess(-1); err == nil {
		t.Error("pid -1 read without error")
	}
}

// TestSendPhase checks both phase layouts: spread gives every client of a
// run its own instant, with each session's clients interval/clients apart;
// burst gives a session's clients one instant and spreads the sessions.
func TestSendPhase(t *testing.T) {
	const interval = 200 * time.Millisecond
	const sessions, clients = 100, 10
	seen := map[time.Duration]bool{}
	for session := range sessions {
		for member := range clients {
			phase := sendPhase(interval, session, member, sessions, clients, false)
			if phase < 0 || phase >= interval {
				t.Fatalf("spread: session %d member %d: phase %v outside [0, %v)", session, member, phase, interval)
			}
			if seen[phase] {
				t.Fatalf("spread: session %d member %d: phase %v shared with another client", session, member, phase)
			}
			seen[phase] = true
			if member > 0 {
				gap := phase - sendPhase(interval, session, member-1, sessions, clients, false)
				if gap != interval/clients {
					t.Fatalf("spread: session %d members %d and %d are %v apart, want %v", session, member-1, member, gap, interval/clients)
				}
			}
			burst := sendPhase(interval, session, member, sessions, clients, true)
			if want := interval * time.Duration(session) / sessions; burst != want {
				t.Fatalf("burst: session %d member %d: phase %v, want the session's %v", session, member, burst, want)
			}
		}
	}
}
