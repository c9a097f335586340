package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gobwas/ws"
)

// rssSampleInterval is how often the idle and join scenarios sample the
// server's RSS for the peak.
const rssSampleInterval = 250 * time.Millisecond

// idleSettle is the time between starting the readers and the idle
// window: the TICKs queued while the other connections were still being
// opened are read (not counted) during it.
const idleSettle = time.Second

// IdleConfig describes the idle scenario: Connections connections in
// sessions of Clients each JOIN, wait for SYNC, then stay idle (PULSE
// every 20 s, TICKs counted) for Duration.
type IdleConfig struct {
	URL         string
	Connections int
	Clients     int // per session
	Duration    time.Duration
	// PID, when non-zero, is the server process sampled from /proc.
	PID int
	// IOTimeout bounds one connection's dial, its wait for SYNC and one write.
	IOTimeout     time.Duration
	SessionPrefix string
	Progress      io.Writer
}

// DefaultIdleConfig is the configuration of the flags' defaults.
func DefaultIdleConfig() IdleConfig {
	return IdleConfig{
		URL: "ws://127.0.0.1:8888/reflector", Connections: 1000, Clients: 10,
		Duration: 10 * time.Second, IOTimeout: 10 * time.Second,
	}
}

// Validate reports a configuration outside the limits.
func (c *IdleConfig) Validate() error {
	switch {
	case !strings.HasPrefix(c.URL, "ws://") && !strings.HasPrefix(c.URL, "wss://"):
		return fmt.Errorf("url %q: want ws://host:port/path", c.URL)
	case c.Connections < 1 || c.Connections > ConnectionsMax || c.Clients < 1:
		return fmt.Errorf("connections %d, clients %d: connections must be in [1, %d] (ConnectionsMax), clients ≥ 1", c.Connections, ConnectionsMax, c.Clients)
	case c.Duration <= 0 || c.Duration > DurationMax:
		return fmt.Errorf("duration %v: must be in (0, %v]", c.Duration, DurationMax)
	case c.IOTimeout <= 0:
		return fmt.Errorf("io timeout %v: must be > 0", c.IOTimeout)
	}
	return nil
}

// IdleServerStats is what --pid measures in the idle scenario.
type IdleServerStats struct {
	PID                  int     `json:"pid"`
	RSSStartKiB          int64   `json:"rss_start_kib"`
	RSSConnectedKiB      int64   `json:"rss_connected_kib"`
	RSSEndKiB            int64   `json:"rss_end_kib"`
	RSSPeakKiB           int64   `json:"rss_peak_kib"`
	RSSPerConnectionKiB  float64 `json:"rss_per_connection_kib"` // (connected − start) / connections
	IdleCPUSeconds       float64 `json:"idle_cpu_seconds"`
	IdleCPUPercentCore   float64 `json:"idle_cpu_percent_of_core"`
	IdleWindowSeconds    float64 `json:"idle_window_seconds"`
	ConnectCPUSeconds    float64 `json:"connect_cpu_seconds"`
	ConnectWindowSeconds float64 `json:"connect_window_seconds"`
}

// IdleResult is the outcome of an idle run. OK reports that every
// connection synced and none failed during the idle phase.
type IdleResult struct {
	Scenario        string           `json:"scenario"`
	URL             string           `json:"url"`
	Connections     int              `json:"connections"`
	Clients         int              `json:"clients_per_session"`
	Sessions        int              `json:"sessions"`
	Synced          int              `json:"synced"`
	ConnectSeconds  float64          `json:"connect_seconds"`
	Connect         LatencySummary   `json:"connect_sync"`
	DurationSeconds float64          `json:"duration_seconds"`
	Ticks           int64            `json:"ticks"` // in the idle window, after idleSettle
	TicksPerSecond  float64          `json:"ticks_per_second"`
	OtherFrames     int64            `json:"other_frames"`
	ConnectionErrs  int64            `json:"connection_errors"`
	FirstError      string           `json:"first_error,omitempty"`
	Server          *IdleServerStats `json:"server,omitempty"`
	OK              bool             `json:"ok"`
}

// idleClient is a loadClient with the idle reader's counters.
type idleClient struct {
	*loadClient
	ticks   atomic.Int64
	other   atomic.Int64
	readErr error
	done    chan struct{}
}

// rssSampler samples a process's RSS in the background for the peak.
type rssSampler struct {
	pid  int
	peak atomic.Int64
	stop chan struct{}
	done chan struct{}
}

func startRSSSampler(pid int, first int64) *rssSampler {
	s := &rssSampler{pid: pid, stop: make(chan struct{}), done: make(chan struct{})}
	s.peak.Store(first)
	go func() {
		defer close(s.done)
		ticker := time.NewTicker(rssSampleInterval)
		defer ticker.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-ticker.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *rssSampler) sample() {
	if sample, err := readProcess(s.pid); err == nil {
		for {
			peak := s.peak.Load()
			if sample.rssKiB <= peak || s.peak.CompareAndSwap(peak, sample.rssKiB) {
				return
			}
		}
	}
}

func (s *rssSampler) close() int64 {
	close(s.stop)
	<-s.done
	s.sample()
	return s.peak.Load()
}

// RunIdle runs the idle scenario. Any connection that fails to connect
// or sync is an error; a connection lost during the idle phase makes the
// result not OK.
func RunIdle(ctx context.Context, config IdleConfig) (*IdleResult, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	progress := config.Progress
	if progress == nil {
		progress = io.Discard
	}
	// The server's state before any connection of this run.
	var start processSample
	var sampler *rssSampler
	if config.PID != 0 {
		sample, err := readProcess(config.PID)
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", config.PID, err)
		}
		start = sample
		sampler = startRSSSampler(config.PID, sample.rssKiB)
		defer func() {
			if sampler != nil {
				sampler.close()
			}
		}()
	}
	run := &latencyRun{config: LatencyConfig{URL: config.URL, Clients: config.Clients, IOTimeout: config.IOTimeout}, epoch: time.Now()}
	if config.SessionPrefix == "" {
		config.SessionPrefix = fmt.Sprintf("bench-idle-%d", run.epoch.UnixNano())
	}
	sessions := (config.Connections + config.Clients - 1) / config.Clients
	clients := make([]*idleClient, config.Connections)
	loadClients := make([]*loadClient, config.Connections)
	for i := range clients {
		session, member := i/config.Clients, i%config.Clients
		loadClients[i] = &loadClient{
			run: run, session: session, member: member,
			sessionID: fmt.Sprintf("%s-%d", config.SessionPrefix, session),
			viewID:    fmt.Sprintf("bench-view-%d-%d", session, member),
		}
		clients[i] = &idleClient{loadClient: loadClients[i], done: make(chan struct{})}
	}
	defer func() {
		run.closing.Store(true)
		for _, client := range loadClients {
			client.close()
		}
	}()

	var connectMu sync.Mutex
	var connectTimes Histogram
	var synced atomic.Int64
	connectStart := time.Now()
	connectDone := make(chan struct{})
	go func() { // progress while connecting
		ticker := time.NewTicker(progressInterval)
		defer ticker.Stop()
		for {
			select {
			case <-connectDone:
				return
			case <-ticker.C:
				fmt.Fprintf(progress, "bench: %5.1fs connecting: %d of %d synced\n", time.Since(connectStart).Seconds(), synced.Load(), len(clients))
			}
		}
	}()
	err := connectAll(ctx, loadClients, func(d time.Duration) {
		synced.Add(1)
		connectMu.Lock()
		connectTimes.Record(d)
		connectMu.Unlock()
	})
	close(connectDone)
	if err != nil {
		return nil, fmt.Errorf("%d of %d connections synced, then: %w", synced.Load(), len(clients), err)
	}
	connectWindow := time.Since(connectStart)
	fmt.Fprintf(progress, "bench: %d connections in %d sessions synced in %v\n", len(clients), sessions, connectWindow.Round(time.Millisecond))

	result := &IdleResult{
		Scenario: "idle", URL: config.URL, Connections: len(clients), Clients: config.Clients, Sessions: sessions,
		Synced: int(synced.Load()), ConnectSeconds: connectWindow.Seconds(), Connect: connectTimes.Summary(),
		DurationSeconds: config.Duration.Seconds(),
	}
	var connected processSample
	if config.PID != 0 {
		if connected, err = readProcess(config.PID); err != nil {
			return nil, fmt.Errorf("pid %d: %w", config.PID, err)
		}
	}

	for _, client := range clients {
		go client.read()
	}
	select {
	case <-time.After(idleSettle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	ticks := func() (total int64) {
		for _, client := range clients {
			total += client.ticks.Load()
		}
		return total
	}
	ticksBefore := ticks()
	var idleCPUStart processSample
	if config.PID != 0 {
		if idleCPUStart, err = readProcess(config.PID); err != nil {
			return nil, fmt.Errorf("pid %d: %w", config.PID, err)
		}
	}
	pulses := time.NewTicker(pulseInterval)
	defer pulses.Stop()
	ticker := time.NewTicker(progressInterval)
	defer ticker.Stop()
	idleStart := time.Now()
	idleEnd := time.NewTimer(config.Duration)
	defer idleEnd.Stop()
	lastTicks := ticksBefore
idle:
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-idleEnd.C:
			break idle
		case <-pulses.C:
			for _, client := range clients {
				if err := client.write(ws.OpText, []byte(`{"action":"PULSE"}`)); err != nil {
					result.ConnectionErrs++
					if result.FirstError == "" {
						result.FirstError = fmt.Sprintf("PULSE %s: %v", client.viewID, err)
					}
				}
			}
		case <-ticker.C:
			total := ticks()
			fmt.Fprintf(progress, "bench: %5.1fs idle: %d TICKs in the last second\n", time.Since(idleStart).Seconds(), total-lastTicks)
			lastTicks = total
		}
	}
	idleWindow := time.Since(idleStart)
	result.Ticks = ticks() - ticksBefore
	result.TicksPerSecond = float64(result.Ticks) / idleWindow.Seconds()
	if config.PID != 0 {
		end, err := readProcess(config.PID)
		if err != nil {
			return nil, fmt.Errorf("pid %d: %w", config.PID, err)
		}
		peak := sampler.close()
		sampler = nil
		idleCPU := end.cpuTime - idleCPUStart.cpuTime
		result.Server = &IdleServerStats{
			PID: config.PID, RSSStartKiB: start.rssKiB, RSSConnectedKiB: connected.rssKiB, RSSEndKiB: end.rssKiB,
			RSSPeakKiB:          max(peak, end.rssKiB, connected.rssKiB),
			RSSPerConnectionKiB: float64(connected.rssKiB-start.rssKiB) / float64(len(clients)),
			IdleCPUSeconds:      idleCPU.Seconds(), IdleCPUPercentCore: 100 * idleCPU.Seconds() / idleWindow.Seconds(),
			IdleWindowSeconds: idleWindow.Seconds(),
			ConnectCPUSeconds: (connected.cpuTime - start.cpuTime).Seconds(), ConnectWindowSeconds: connectWindow.Seconds(),
		}
	}

	// A reader that ended before the close lost its connection.
	run.closing.Store(true)
	for _, client := range loadClients {
		client.close()
	}
	stopDeadline := time.After(readerStopTimeout)
	for _, client := range clients {
		select {
		case <-client.done:
		case <-stopDeadline:
			return nil, errors.New("readers did not stop after the connections were closed")
		}
		result.OtherFrames += client.other.Load()
		if client.readErr != nil {
			result.ConnectionErrs++
			if result.FirstError == "" {
				result.FirstError = fmt.Sprintf("%s: %v", client.viewID, client.readErr)
			}
		}
	}
	result.OK = result.ConnectionErrs == 0 && result.Synced == len(clients)
	return result, nil
}

// read counts TICKs (and other frames) until the connection is closed.
func (c *idleClient) read() {
	defer close(c.done)
	for {
		frame, err := c.frames.next()
		if err != nil {
			if !c.run.closing.Load() {
				c.readErr = err
			}
			return
		}
		message, err := parseInbound(frame)
		if err != nil {
			c.readErr = err
			return
		}
		if message.action == "TICK" {
			c.ticks.Add(1)
		} else {
			c.other.Add(1)
		}
	}
}

// WriteTable writes an idle result as a readable table.
func (r *IdleResult) WriteTable(w io.Writer) error {
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, format string, args ...any) {
		fmt.Fprintf(table, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("scenario", "%s  %s", r.Scenario, r.URL)
	row("load", "%d connections in %d sessions of ≤ %d, idle %gs", r.Connections, r.Sessions, r.Clients, r.DurationSeconds)
	row("synced", "%d of %d in %.2f s", r.Synced, r.Connections, r.ConnectSeconds)
	writeSummaryRows(row, "connect+sync", r.Connect)
	row("TICKs received", "%d (%.0f/s)", r.Ticks, r.TicksPerSecond)
	row("other frames / connection errors", "%d / %d", r.OtherFrames, r.ConnectionErrs)
	if s := r.Server; s != nil {
		mib := func(kib int64) float64 { return float64(kib) / 1024 }
		row("server pid", "%d", s.PID)
		row("server RSS start / connected / end / peak", "%.1f / %.1f / %.1f / %.1f MiB", mib(s.RSSStartKiB), mib(s.RSSConnectedKiB), mib(s.RSSEndKiB), mib(s.RSSPeakKiB))
		row("server RSS per connection", "%.1f KiB (connected − start)", s.RSSPerConnectionKiB)
		row("server CPU idle phase", "%.2f s in %.1f s = %.1f%% of one core", s.IdleCPUSeconds, s.IdleWindowSeconds, s.IdleCPUPercentCore)
		row("server CPU connecting", "%.2f s in %.1f s", s.ConnectCPUSeconds, s.ConnectWindowSeconds)
	}
	if err := table.Flush(); err != nil {
		return err
	}
	if !r.OK {
		_, err := fmt.Fprintf(w, "\nFAIL: %d connection errors%s\n", r.ConnectionErrs, firstError(r.FirstError))
		return err
	}
	_, err := fmt.Fprintln(w, "\nOK: every connection synced and stayed connected")
	return err
}

// WriteJSON writes an idle result as one indented JSON object.
func (r *IdleResult) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

func writeJSON(w io.Writer, value any) error {
	encoder := json.NewEncoder(w)
	encoder.SetIndent("", "  ")
	return encoder.Encode(value)
}

// writeSummaryRows writes the percentiles of a duration summary.
func writeSummaryRows(row func(string, string, ...any), name string, s LatencySummary) {
	ms := func(us int64) string { return fmt.Sprintf("%.3f ms", float64(us)/1000) }
	row(name+" count", "%d", s.Count)
	row(name+" p50 / p90", "%s / %s", ms(s.P50Us), ms(s.P90Us))
	row(name+" p99 / p99.9", "%s / %s", ms(s.P99Us), ms(s.P999Us))
	row(name+" max / mean", "%s / %s", ms(s.MaxUs), ms(s.MeanUs))
}

// Passed reports the result's OK.
func (r *IdleResult) Passed() bool { return r.OK }
