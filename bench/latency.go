package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Limits of one latency run; every loop of the generator is bounded by them.
const (
	ConnectionsMax    = 20_000
	RatePerClientMax  = 1000.0 // messages per second
	DurationMax       = time.Hour
	PayloadBytesMax   = 64 << 10
	payloadBytesMin   = 40 // room for "b:member:index:nanoseconds:"
	connectParallel   = 64 // dials in flight at once
	progressInterval  = time.Second
	sendStartDelay    = 200 * time.Millisecond
	readerStopTimeout = 10 * time.Second
)

// LatencyConfig describes the reflect-latency scenario: Sessions ×
// Clients per session × Rate messages per second per client, for Warmup
// (not measured) then Duration (measured).
type LatencyConfig struct {
	// URL is the reflector endpoint without the session id, e.g.
	// ws://127.0.0.1:8888/reflector. A comma-separated list names the
	// nodes of a cluster (docs/cluster.md): the first client of every
	// session joins through the first URL, before the others (so that
	// node owns the session), and the others through the rest of the
	// list in turn, so that they are all forwarded by nodes that do not
	// own their session.
	URL          string
	Sessions     int
	Clients      int
	Rate         float64
	Duration     time.Duration
	Warmup       time.Duration
	PayloadBytes int
	// Burst makes the clients of a session send at the same instant (one
	// burst of Clients messages per session per interval, like players
	// reacting to the same event). By default each client of a session
	// has its own phase, evenly spread over the interval.
	Burst bool
	// PID, when non-zero, is the server process whose RSS and CPU time
	// are sampled from /proc.
	PID int
	// DrainTimeout bounds the wait for the last messages after sending
	// stopped; IOTimeout bounds a dial, the wait for SYNC and one write.
	DrainTimeout time.Duration
	IOTimeout    time.Duration
	// SessionPrefix starts every session id; empty: "bench-<time>".
	SessionPrefix string
	// Progress receives one line per second; nil discards it.
	Progress io.Writer
}

// DefaultLatencyConfig is the configuration of the flags' defaults.
func DefaultLatencyConfig() LatencyConfig {
	return LatencyConfig{
		URL: "ws://127.0.0.1:8888/reflector", Sessions: 1, Clients: 2, Rate: 20,
		Duration: 10 * time.Second, Warmup: 2 * time.Second, PayloadBytes: 64,
		DrainTimeout: 5 * time.Second, IOTimeout: 10 * time.Second,
	}
}

// Validate reports a configuration outside the limits, naming the field.
func (c *LatencyConfig) Validate() error {
	switch {
	case !validURLs(c.URL):
		return fmt.Errorf("url %q: want ws://host:port/path, or a comma-separated list of them", c.URL)
	case c.Sessions < 1 || c.Clients < 1 || c.Sessions*c.Clients > ConnectionsMax:
		return fmt.Errorf("sessions %d × clients %d: each must be ≥ 1 and the product ≤ %d (ConnectionsMax)", c.Sessions, c.Clients, ConnectionsMax)
	case !(c.Rate > 0 && c.Rate <= RatePerClientMax):
		return fmt.Errorf("rate %v: must be in (0, %v] messages/s (RatePerClientMax)", c.Rate, RatePerClientMax)
	case c.Duration <= 0 || c.Duration > DurationMax || c.Warmup < 0 || c.Warmup > DurationMax:
		return fmt.Errorf("duration %v, warmup %v: duration must be in (0, %v], warmup in [0, %v]", c.Duration, c.Warmup, DurationMax, DurationMax)
	case c.PayloadBytes < 0 || c.PayloadBytes > PayloadBytesMax:
		return fmt.Errorf("payload-bytes %d: must be in [0, %d] (PayloadBytesMax)", c.PayloadBytes, PayloadBytesMax)
	case c.DrainTimeout <= 0 || c.IOTimeout <= 0:
		return fmt.Errorf("drain timeout %v, io timeout %v: must be > 0", c.DrainTimeout, c.IOTimeout)
	}
	return nil
}

// latencyRun is the shared state of one run.
type latencyRun struct {
	config   LatencyConfig
	epoch    time.Time
	interval time.Duration
	closing  atomic.Bool
	// measureFromNs: sends before it (warmup) are checked, not measured.
	measureFromNs int64

	mu         sync.Mutex
	total      Histogram
	lastSecond Histogram
}

// sendPhase is when, within each send interval, a client sends. Spread
// (the default): the clients of a session send evenly spaced over the
// interval (interval/clients apart), and the sessions are interleaved
// between them, so no two clients of the run share an instant. Burst: all
// clients of a session share their session's phase, and the sessions are
// spread over the interval.
func sendPhase(interval time.Duration, session, member, sessions, clients int, burst bool) time.Duration {
	if burst {
		return time.Duration(int64(interval) * int64(session) / int64(sessions))
	}
	slot := member*sessions + session
	return time.Duration(int64(interval) * int64(slot) / int64(sessions*clients))
}

func (r *latencyRun) sinceEpoch(t time.Time) int64 { return int64(t.Sub(r.epoch)) }

func (r *latencyRun) recordLatency(received time.Time, sentNs int64) {
	if sentNs < r.measureFromNs {
		return
	}
	latency := time.Duration(r.sinceEpoch(received) - sentNs)
	r.mu.Lock()
	r.total.Record(latency)
	r.lastSecond.Record(latency)
	r.mu.Unlock()
}

// LatencyResult is the outcome of a run. OK reports whether every client
// received every message of its session exactly once in seq order.
type LatencyResult struct {
	Scenario        string         `json:"scenario"`
	URL             string         `json:"url"`
	Sessions        int            `json:"sessions"`
	Clients         int            `json:"clients_per_session"`
	Rate            float64        `json:"rate_per_client"`
	DurationSeconds float64        `json:"duration_seconds"`
	WarmupSeconds   float64        `json:"warmup_seconds"`
	PayloadBytes    int            `json:"payload_bytes"`
	Burst           bool           `json:"burst"`
	Connections     int            `json:"connections"`
	Sent            int64          `json:"sent"`
	Expected        int64          `json:"expected_deliveries"`
	Delivered       int64          `json:"delivered"`
	Missing         int64          `json:"missing"`
	Duplicates      int64          `json:"duplicates"`
	OutOfOrder      int64          `json:"out_of_order"`
	Unexpected      int64          `json:"unexpected"`
	ConnectionErrs  int64          `json:"connection_errors"`
	FirstError      string         `json:"first_error,omitempty"`
	RecvFrames      int64          `json:"recv_frames"`
	UsersFrames     int64          `json:"users_frames"`
	Ticks           int64          `json:"ticks"`
	SendRate        float64        `json:"send_rate_per_second"`
	DeliveryRate    float64        `json:"delivery_rate_per_second"`
	Latency         LatencySummary `json:"latency"`
	Server          *ServerStats   `json:"server,omitempty"`
	OK              bool           `json:"ok"`
}

// RunLatency runs the reflect-latency scenario. It returns an error when
// the run could not take place (bad config, connection failures during
// setup); message loss is reported in the result, not as an error.
func RunLatency(ctx context.Context, config LatencyConfig) (*LatencyResult, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	progress := config.Progress
	if progress == nil {
		progress = io.Discard
	}
	run := &latencyRun{config: config, epoch: time.Now()}
	urls := strings.Split(config.URL, ",")
	run.interval = time.Duration(float64(time.Second) / config.Rate)
	if config.SessionPrefix == "" {
		config.SessionPrefix = fmt.Sprintf("bench-%d", run.epoch.UnixNano())
	}
	sendsMax := int(math.Ceil(config.Rate*(config.Warmup+config.Duration).Seconds())) + 1

	clients := make([]*loadClient, 0, config.Sessions*config.Clients)
	for session := range config.Sessions {
		sessionID := fmt.Sprintf("%s-%d", config.SessionPrefix, session)
		for member := range config.Clients {
			clients = append(clients, &loadClient{
				run: run, session: session, member: member, sessionID: sessionID,
				viewID: fmt.Sprintf("bench-view-%d-%d", session, member),
				url:    clusterURL(urls, session, member),
			})
		}
	}
	var stopReceiving func()
	defer func() {
		run.closing.Store(true)
		if stopReceiving != nil {
			stopReceiving()
		}
		for _, client := range clients {
			client.close()
		}
	}()

	// Connect everything (JOIN → SYNC) before anyone sends, so that every
	// client is in the broadcast set of every message of the run.
	connectStart := time.Now()
	if len(urls) > 1 {
		// The first client of every session first: its node claims it.
		var first, rest []*loadClient
		for _, client := range clients {
			if client.member == 0 {
				first = append(first, client)
			} else {
				rest = append(rest, client)
			}
		}
		if err := connectAll(ctx, first, nil); err != nil {
			return nil, err
		}
		if err := connectAll(ctx, rest, nil); err != nil {
			return nil, err
		}
	} else if err := connectAll(ctx, clients, nil); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "bench: %d connections joined in %v\n", len(clients), time.Since(connectStart).Round(time.Millisecond))
	stopReceiving, err := startReceivers(clients, sendsMax)
	if err != nil {
		return nil, err
	}

	var processStart processSample
	var rssPeak int64
	if config.PID != 0 {
		sample, err := readProcess(config.PID)
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", config.PID, err)
		}
		processStart, rssPeak = sample, sample.rssKiB
	}
	windowStart := time.Now()
	sendStart := windowStart.Add(sendStartDelay)
	run.measureFromNs = run.sinceEpoch(sendStart.Add(config.Warmup))
	sendEnd := sendStart.Add(config.Warmup + config.Duration)

	sendCtx, cancelSends := context.WithCancel(ctx)
	defer cancelSends()
	var senders sync.WaitGroup
	sendErrors := make(chan error, len(clients))
	for _, client := range clients {
		phase := sendPhase(run.interval, client.session, client.member, config.Sessions, config.Clients, config.Burst)
		senders.Go(func() {
			if err := client.sendLoop(sendCtx, sendStart.Add(phase), sendEnd, sendsMax); err != nil && sendCtx.Err() == nil {
				sendErrors <- err
			}
		})
	}
	sendersDone := make(chan struct{})
	go func() { senders.Wait(); close(sendersDone) }()

	sample := func() {
		if config.PID == 0 {
			return
		}
		if s, err := readProcess(config.PID); err == nil {
			rssPeak = max(rssPeak, s.rssKiB)
		}
	}
	progressTicker := time.NewTicker(progressInterval)
	defer progressTicker.Stop()
	report := func(phase string) {
		var sent, delivered int64
		for _, client := range clients {
			sent += client.sent.Load()
			delivered += client.distinct.Load()
		}
		run.mu.Lock()
		p99 := run.lastSecond.Quantile(0.99)
		count := run.lastSecond.Count()
		run.lastSecond.Reset()
		run.mu.Unlock()
		fmt.Fprintf(progress, "bench: %5.1fs %-7s sent %d delivered %d | last second: %d latencies, p99 %v\n",
			time.Since(windowStart).Seconds(), phase, sent, delivered, count, p99.Round(10*time.Microsecond))
	}
	// Sending phase: bounded by sendEnd (senders stop themselves) plus a
	// margin for a blocked write (IOTimeout).
	sendDeadline := time.NewTimer(time.Until(sendEnd) + config.IOTimeout)
	defer sendDeadline.Stop()
waitSenders:
	for {
		select {
		case <-sendersDone:
			break waitSenders
		case <-sendDeadline.C:
			cancelSends()
			<-sendersDone
			break waitSenders
		case <-ctx.Done():
			cancelSends()
			<-sendersDone
			return nil, ctx.Err()
		case <-progressTicker.C:
			sample()
			phase := "measure"
			if time.Now().Before(sendStart.Add(config.Warmup)) {
				phase = "warmup"
			}
			report(phase)
		}
	}

	// Drain: every client expects every message sent in its session.
	expectedPerSession := make([]int64, config.Sessions)
	for _, client := range clients {
		expectedPerSession[client.session] += client.sent.Load()
	}
	drainDeadline := time.Now().Add(config.DrainTimeout)
	for time.Now().Before(drainDeadline) && ctx.Err() == nil {
		complete := true
		for _, client := range clients {
			if client.distinct.Load() < expectedPerSession[client.session] {
				complete = false
				break
			}
		}
		if complete {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	window := time.Since(windowStart)
	sample()
	report("drained")

	result := &LatencyResult{
		Scenario: "reflect-latency", URL: config.URL, Sessions: config.Sessions, Clients: config.Clients,
		Rate: config.Rate, DurationSeconds: config.Duration.Seconds(), WarmupSeconds: config.Warmup.Seconds(),
		PayloadBytes: config.PayloadBytes, Burst: config.Burst, Connections: len(clients),
	}
	if config.PID != 0 {
		end, err := readProcess(config.PID)
		if err == nil {
			cpu := end.cpuTime - processStart.cpuTime
			result.Server = &ServerStats{
				PID: config.PID, RSSEndKiB: end.rssKiB, RSSPeakKiB: max(rssPeak, end.rssKiB),
				CPUSeconds: cpu.Seconds(), CPUPercentCore: 100 * cpu.Seconds() / window.Seconds(),
				WindowSeconds: window.Seconds(),
			}
		}
	}

	// Stop the readers, then read their state.
	run.closing.Store(true)
	stopReceiving()
	stopDeadline := time.After(readerStopTimeout)
	for _, client := range clients {
		select {
		case <-client.readerDone:
		case <-stopDeadline:
			return nil, errors.New("readers did not stop after the connections were closed")
		}
	}
	close(sendErrors)
	for err := range sendErrors {
		result.ConnectionErrs++
		if result.FirstError == "" {
			result.FirstError = err.Error()
		}
	}
	for _, client := range clients {
		result.Sent += client.sent.Load()
		expected := expectedPerSession[client.session]
		delivered := client.distinct.Load()
		result.Expected += expected
		result.Delivered += delivered
		result.Missing += max(0, expected-delivered)
		result.Duplicates += client.duplicates
		result.OutOfOrder += client.outOfOrder
		result.Unexpected += client.unexpected
		result.RecvFrames += client.recvFrames.Load()
		result.UsersFrames += client.usersFrames.Load()
		result.Ticks += client.ticks.Load()
		if client.readErr != nil {
			result.ConnectionErrs++
			if result.FirstError == "" {
				result.FirstError = fmt.Sprintf("%s: %v", client.viewID, client.readErr)
			}
		}
	}
	sendSeconds := (config.Warmup + config.Duration).Seconds()
	result.SendRate = float64(result.Sent) / sendSeconds
	result.DeliveryRate = float64(result.Delivered) / sendSeconds
	run.mu.Lock()
	result.Latency = run.total.Summary()
	run.mu.Unlock()
	result.OK = result.Missing == 0 && result.Duplicates == 0 && result.OutOfOrder == 0 &&
		result.Unexpected == 0 && result.ConnectionErrs == 0 && result.Sent > 0
	return result, nil
}

// connectAll connects every client, connectParallel at a time; the first
// failure cancels the rest. onConnected, when not nil, gets each
// successful connect+JOIN→SYNC time (concurrently).
func connectAll(ctx context.Context, clients []*loadClient, onConnected func(time.Duration)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	slots := make(chan struct{}, connectParallel)
	var wait sync.WaitGroup
	var once sync.Once
	var firstErr error
	for _, client := range clients {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wait.Go(func() {
			defer func() { <-slots }()
			start := time.Now()
			if err := client.connect(ctx); err != nil {
				once.Do(func() { firstErr = err; cancel() })
			} else if onConnected != nil {
				onConnected(time.Since(start))
			}
		})
	}
	wait.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// validURLs reports whether list is one ws:// or wss:// URL or a
// comma-separated list of them.
func validURLs(list string) bool {
	for _, url := range strings.Split(list, ",") {
		if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
			return false
		}
	}
	return true
}

// clusterURL is the URL a client joins through (LatencyConfig.URL): the
// only one, or for a list the first for the first client of a session
// and the others in turn for the rest.
func clusterURL(urls []string, session, member int) string {
	if len(urls) == 1 || member == 0 {
		return urls[0]
	}
	return urls[1+(session+member-1)%(len(urls)-1)]
}
