package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Limits of the join scenario.
const (
	MessagesMax = 1_000_000
	JoinsMax    = 10_000
	// writerRateMax stays under the reflector's per-connection limit of
	// 200 frames/s (burst 400).
	writerRateMax = 190.0
	// writersMax bounds the writer connections; every message is echoed
	// to all of them, so more writers cost the machine deliveries.
	writersMax = 50
)

// JoinConfig describes the join scenario: in one session, Writers
// clients send Messages messages in total at WriterRate each and wait
// until each received all of them; then Joins clients join one after
// another, each timing JOIN → complete SYNC.
type JoinConfig struct {
	URL      string
	Messages int
	Joins    int
	// Writers: 0 picks ceil(Messages/2000) capped at 10 (≥ 1 when
	// Messages > 0).
	Writers      int
	WriterRate   float64 // messages/s per writer, ≤ 190
	PayloadBytes int
	PID          int
	// IOTimeout bounds a dial, the wait for one SYNC and one write.
	IOTimeout     time.Duration
	SessionPrefix string
	Progress      io.Writer
}

// DefaultJoinConfig is the configuration of the flags' defaults.
func DefaultJoinConfig() JoinConfig {
	return JoinConfig{
		URL: "ws://127.0.0.1:8888/reflector", Messages: 10_000, Joins: 5,
		WriterRate: writerRateMax, PayloadBytes: 64, IOTimeout: 30 * time.Second,
	}
}

// Validate reports a configuration outside the limits.
func (c *JoinConfig) Validate() error {
	switch {
	case !strings.HasPrefix(c.URL, "ws://") && !strings.HasPrefix(c.URL, "wss://"):
		return fmt.Errorf("url %q: want ws://host:port/path", c.URL)
	case c.Messages < 0 || c.Messages > MessagesMax:
		return fmt.Errorf("messages %d: must be in [0, %d] (MessagesMax)", c.Messages, MessagesMax)
	case c.Joins < 1 || c.Joins > JoinsMax:
		return fmt.Errorf("joins %d: must be in [1, %d] (JoinsMax)", c.Joins, JoinsMax)
	case c.Writers < 0 || c.Writers > writersMax:
		return fmt.Errorf("writers %d: must be in [0, %d] (0: automatic)", c.Writers, writersMax)
	case !(c.WriterRate > 0 && c.WriterRate <= writerRateMax):
		return fmt.Errorf("writer rate %v: must be in (0, %v] (the reflector allows 200 frames/s per connection)", c.WriterRate, writerRateMax)
	case c.PayloadBytes < 0 || c.PayloadBytes > PayloadBytesMax:
		return fmt.Errorf("payload-bytes %d: must be in [0, %d] (PayloadBytesMax)", c.PayloadBytes, PayloadBytesMax)
	case c.IOTimeout <= 0:
		return fmt.Errorf("io timeout %v: must be > 0", c.IOTimeout)
	}
	return nil
}

func (c *JoinConfig) writers() int {
	switch {
	case c.Messages == 0:
		return 0
	case c.Writers > 0:
		return c.Writers
	}
	return min(10, (c.Messages+1999)/2000)
}

// JoinResult is the outcome of a join run. OK reports that every writer
// received every message and every SYNC held at least Messages messages.
type JoinResult struct {
	Scenario        string         `json:"scenario"`
	URL             string         `json:"url"`
	Session         string         `json:"session"`
	Messages        int            `json:"messages"`
	Writers         int            `json:"writers"`
	WriterRate      float64        `json:"writer_rate_per_second"`
	PayloadBytes    int            `json:"payload_bytes"`
	FillSeconds     float64        `json:"fill_seconds"`
	Sent            int64          `json:"sent"`
	Joins           int            `json:"joins"`
	Join            LatencySummary `json:"join_to_sync"`
	SyncBytes       []int          `json:"sync_bytes"`
	SyncMessages    []int          `json:"sync_messages"`
	ServerRSSEndKiB int64          `json:"server_rss_end_kib,omitempty"`
	FirstError      string         `json:"first_error,omitempty"`
	OK              bool           `json:"ok"`
}

// RunJoin runs the join scenario.
func RunJoin(ctx context.Context, config JoinConfig) (*JoinResult, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	progress := config.Progress
	if progress == nil {
		progress = io.Discard
	}
	writers := config.writers()
	run := &latencyRun{config: LatencyConfig{
		URL: config.URL, Clients: max(writers, 1), Rate: config.WriterRate,
		PayloadBytes: config.PayloadBytes, IOTimeout: config.IOTimeout,
	}, epoch: time.Now()}
	run.interval = time.Duration(float64(time.Second) / config.WriterRate)
	if config.SessionPrefix == "" {
		config.SessionPrefix = fmt.Sprintf("bench-join-%d", run.epoch.UnixNano())
	}
	sessionID := config.SessionPrefix + "-0"
	result := &JoinResult{
		Scenario: "join", URL: config.URL, Session: sessionID, Messages: config.Messages, Writers: writers,
		WriterRate: config.WriterRate, PayloadBytes: config.PayloadBytes, Joins: config.Joins,
	}

	// Fill: writers send their share, then wait until each received all.
	clients := make([]*loadClient, writers)
	shares := make([]int, writers)
	shareMax := 0
	for i := range clients {
		clients[i] = &loadClient{run: run, member: i, sessionID: sessionID, viewID: fmt.Sprintf("bench-writer-%d", i)}
		shares[i] = config.Messages / writers
		if i < config.Messages%writers {
			shares[i]++
		}
		shareMax = max(shareMax, shares[i])
	}
	var joiners []*loadClient
	defer func() {
		run.closing.Store(true)
		for _, client := range append(clients, joiners...) {
			client.close()
		}
	}()
	if writers > 0 {
		if err := connectAll(ctx, clients, nil); err != nil {
			return nil, fmt.Errorf("writers: %w", err)
		}
		for _, client := range clients {
			client.startReader(shareMax)
		}
		fillStart := time.Now()
		fillFor := time.Duration(float64(shareMax)/config.WriterRate*float64(time.Second)) + time.Second
		// The send loops stop after their share; sendEnd is only a bound.
		sendEnd := fillStart.Add(2*fillFor + config.IOTimeout)
		sendCtx, cancelSends := context.WithCancel(ctx)
		defer cancelSends()
		var senders sync.WaitGroup
		sendErrors := make(chan error, writers)
		for i, client := range clients {
			phase := time.Duration(int64(run.interval) * int64(i) / int64(writers))
			senders.Go(func() {
				if err := client.sendLoop(sendCtx, fillStart.Add(phase), sendEnd, shares[i]); err != nil && sendCtx.Err() == nil {
					sendErrors <- err
				}
			})
		}
		fmt.Fprintf(progress, "bench: filling %s with %d messages from %d writers at %g/s each (~%v)\n",
			sessionID, config.Messages, writers, config.WriterRate, fillFor.Round(time.Second))
		ticker := time.NewTicker(progressInterval)
		defer ticker.Stop()
		deadline := time.NewTimer(time.Until(sendEnd) + config.IOTimeout)
		defer deadline.Stop()
	fill:
		for {
			var sent, leastReceived int64 = 0, -1
			for _, client := range clients {
				sent += client.sent.Load()
				if got := client.distinct.Load(); leastReceived < 0 || got < leastReceived {
					leastReceived = got
				}
			}
			if leastReceived >= int64(config.Messages) {
				break
			}
			select {
			case err := <-sendErrors:
				return nil, fmt.Errorf("fill: %w", err)
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-deadline.C:
				return nil, fmt.Errorf("fill: after %v sent %d of %d, the slowest writer received %d",
					time.Since(fillStart).Round(time.Millisecond), sent, config.Messages, leastReceived)
			case <-ticker.C:
				fmt.Fprintf(progress, "bench: %5.1fs fill: sent %d of %d, slowest writer received %d\n",
					time.Since(fillStart).Seconds(), sent, config.Messages, leastReceived)
			case <-time.After(10 * time.Millisecond):
				continue fill
			}
		}
		cancelSends()
		senders.Wait()
		result.FillSeconds = time.Since(fillStart).Seconds()
		for _, client := range clients {
			result.Sent += client.sent.Load()
			select {
			case <-client.readerDone: // readErr is the reader's until it ends
				return nil, fmt.Errorf("writer %s lost its connection: %v", client.viewID, client.readErr)
			default:
			}
		}
		fmt.Fprintf(progress, "bench: %d messages sent and received by every writer in %.1f s\n", result.Sent, result.FillSeconds)
	}

	// Joins, one after another; the writers stay in the session. The
	// buffers the joiners read SYNC into are mapped beforehand (the SYNC
	// holds every message, a frame each ≈ the payload plus 40 bytes): one
	// for the frame reader, and one to glue the chunks of a SYNC that the
	// reference reflector splits (docs/protocol.md §3.3).
	primeLargeBuffer(2 * config.Messages * (config.PayloadBytes + 40))
	primeLargeBuffer(2 * config.Messages * (config.PayloadBytes + 40))
	var joinTimes Histogram
	for j := range config.Joins {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		// The generator's own garbage collection (of the previous SYNC)
		// must not run while the next join is timed.
		runtime.GC()
		joiner := &loadClient{run: run, sessionID: sessionID, viewID: fmt.Sprintf("bench-joiner-%d", j)}
		joiners = append(joiners, joiner)
		dialCtx, cancel := context.WithTimeout(ctx, config.IOTimeout)
		err := joiner.dial(dialCtx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("joiner %d: %w", j, err)
		}
		var syncReceived time.Time
		var syncBytes, syncMessages int
		sent, err := joiner.join(func(frame []byte, messages int, received time.Time) error {
			syncReceived, syncBytes, syncMessages = received, len(frame), messages
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("joiner %d: %w", j, err)
		}
		joiner.frames.release()
		took := syncReceived.Sub(sent)
		joinTimes.Record(took)
		result.SyncBytes = append(result.SyncBytes, syncBytes)
		result.SyncMessages = append(result.SyncMessages, syncMessages)
		fmt.Fprintf(progress, "bench: join %d: SYNC of %d bytes, %d messages, %v after JOIN\n",
			j, syncBytes, syncMessages, took.Round(10*time.Microsecond))
		if syncMessages < config.Messages && result.FirstError == "" {
			result.FirstError = fmt.Sprintf("join %d: SYNC holds %d messages, want ≥ %d", j, syncMessages, config.Messages)
		}
		joiner.close()
	}
	result.Join = joinTimes.Summary()
	if config.PID != 0 {
		if sample, err := readProcess(config.PID); err == nil {
			result.ServerRSSEndKiB = sample.rssKiB
		}
	}
	result.OK = result.FirstError == "" && len(result.SyncMessages) == config.Joins
	if !result.OK && result.FirstError == "" {
		return nil, errors.New("join: incomplete run")
	}
	return result, nil
}

// WriteTable writes a join result as a readable table.
func (r *JoinResult) WriteTable(w io.Writer) error {
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, format string, args ...any) {
		fmt.Fprintf(table, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("scenario", "%s  %s/%s", r.Scenario, r.URL, r.Session)
	row("fill", "%d messages (%d-byte payload) from %d writers at %g/s each: %d sent in %.1f s",
		r.Messages, r.PayloadBytes, r.Writers, r.WriterRate, r.Sent, r.FillSeconds)
	row("joins", "%d, one after another", r.Joins)
	writeSummaryRows(row, "JOIN→SYNC", r.Join)
	row("SYNC bytes", "%v", r.SyncBytes)
	row("SYNC messages", "%v", r.SyncMessages)
	if r.ServerRSSEndKiB > 0 {
		row("server RSS end", "%.1f MiB", float64(r.ServerRSSEndKiB)/1024)
	}
	if err := table.Flush(); err != nil {
		return err
	}
	if !r.OK {
		_, err := fmt.Fprintf(w, "\nFAIL%s\n", firstError(r.FirstError))
		return err
	}
	_, err := fmt.Fprintf(w, "\nOK: every SYNC held at least %d messages\n", r.Messages)
	return err
}

// WriteJSON writes a join result as one indented JSON object.
func (r *JoinResult) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

// Passed reports the result's OK.
func (r *JoinResult) Passed() bool { return r.OK }
