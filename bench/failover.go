package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"

	"github.com/gobwas/ws"
)

// The failover scenario measures what the clients of a cluster see while
// the node that stamps their session goes away (killed or shut down by
// someone else, outside the bench): how long each session goes without
// stamping, and whether any client lost a stamped message, got one twice,
// or got a different message under a seq it already had. Its clients
// behave like the standard client (docs/protocol.md §5.3, §8.2): after a
// close with a "come back" code, or a connection that breaks, they
// reconnect (to the next URL, as a load balancer would send them to
// another node), JOIN again and continue from the SYNC; messages they sent
// that were never stamped are not sent again.

// Limits and pacing of the failover scenario.
const (
	// failoverURLsMax bounds the URLs of one run.
	failoverURLsMax = 64
	// failoverDeliveriesMax bounds sessions × clients² × rate × duration:
	// every client keeps a hash of every stamped message of its session
	// (8 bytes) to compare the replays of a SYNC with.
	failoverDeliveriesMax = 20_000_000
	// reconnectDelayMin is the wait after a break before the first
	// attempt, doubled after every failed attempt up to reconnectDelayMax.
	// The standard client waits less before its first attempt (none) and
	// more later (up to 30 s); the bench keeps the attempts dense so that
	// a stall measures the cluster, not the client's back-off.
	reconnectDelayMin = 100 * time.Millisecond
	reconnectDelayMax = time.Second
	// failoverAttemptsMax bounds the connection attempts of one client
	// over the whole run (duration and drain): ten minutes of attempts a
	// second apart.
	failoverAttemptsMax = 600
	// failoverFinalsMax bounds the last messages of one client (one per
	// connection from the end of the duration on).
	failoverFinalsMax = 8
	// stallShownAfter: the progress line counts a session as stalled when
	// it stamped nothing for this long.
	stallShownAfter = 500 * time.Millisecond
	// deadlineRefresh is how often a reader moves its read deadline
	// (IOTimeout ahead) instead of before every frame.
	deadlineRefresh = 250 * time.Millisecond
)

// FailoverConfig describes the failover scenario: Sessions × Clients
// clients spread over URLs, each sending Rate messages per second for
// Duration, reconnecting whenever their connection closes or breaks.
type FailoverConfig struct {
	// URLs are the reflector endpoints (without the session id) of the
	// cluster's nodes. Client j of session i starts on URL number
	// (i·Clients + j) mod len(URLs) and moves to the next one, round
	// robin, on every connection attempt after a break.
	URLs         []string
	Sessions     int
	Clients      int
	Rate         float64
	Duration     time.Duration
	PayloadBytes int
	// StallBound: a session whose longest time without stamping exceeds
	// it is reported (not a failure by itself).
	StallBound time.Duration
	// DrainTimeout bounds the wait, after sending stopped, for clients to
	// rejoin, for every session to stamp again and for every client to
	// catch up with its session.
	DrainTimeout time.Duration
	// IOTimeout bounds a dial, the wait for SYNC and one write; a
	// connection that delivers no frame for that long (the sessions tick
	// every 50 ms) is taken as broken.
	IOTimeout time.Duration
	// SessionPrefix starts every session id; empty: "bench-failover-<time>".
	SessionPrefix string
	// Progress receives one line per second; nil discards it.
	Progress io.Writer
}

// DefaultFailoverConfig is the configuration of the flags' defaults.
func DefaultFailoverConfig() FailoverConfig {
	return FailoverConfig{
		URLs: []string{"ws://127.0.0.1:8888/reflector"}, Sessions: 100, Clients: 3, Rate: 5,
		Duration: 20 * time.Second, PayloadBytes: 64, StallBound: 2 * time.Second,
		DrainTimeout: 10 * time.Second, IOTimeout: 5 * time.Second,
	}
}

// SplitURLs splits a comma-separated list of URLs, ignoring blanks around
// them and empty entries.
func SplitURLs(list string) []string {
	var urls []string
	for _, url := range strings.Split(list, ",") {
		if url = strings.TrimSpace(url); url != "" {
			urls = append(urls, url)
		}
	}
	return urls
}

// Validate reports a configuration outside the limits, naming the field.
func (c *FailoverConfig) Validate() error {
	if len(c.URLs) == 0 || len(c.URLs) > failoverURLsMax {
		return fmt.Errorf("url: %d URLs, want 1 to %d", len(c.URLs), failoverURLsMax)
	}
	for _, url := range c.URLs {
		if !strings.HasPrefix(url, "ws://") && !strings.HasPrefix(url, "wss://") {
			return fmt.Errorf("url %q: want ws://host:port/path", url)
		}
	}
	switch {
	case c.Sessions < 1 || c.Clients < 1 || c.Sessions*c.Clients > ConnectionsMax:
		return fmt.Errorf("sessions %d × clients %d: each must be ≥ 1 and the product ≤ %d (ConnectionsMax)", c.Sessions, c.Clients, ConnectionsMax)
	case !(c.Rate > 0 && c.Rate <= RatePerClientMax):
		return fmt.Errorf("rate %v: must be in (0, %v] messages/s (RatePerClientMax)", c.Rate, RatePerClientMax)
	case c.Duration <= 0 || c.Duration > DurationMax:
		return fmt.Errorf("duration %v: must be in (0, %v]", c.Duration, DurationMax)
	case c.PayloadBytes < 0 || c.PayloadBytes > PayloadBytesMax:
		return fmt.Errorf("payload-bytes %d: must be in [0, %d] (PayloadBytesMax)", c.PayloadBytes, PayloadBytesMax)
	case c.StallBound <= 0:
		return fmt.Errorf("stall-bound %v: must be > 0", c.StallBound)
	case c.DrainTimeout <= 0 || c.DrainTimeout > DurationMax || c.IOTimeout <= 0:
		return fmt.Errorf("drain timeout %v, io timeout %v: must be > 0, the drain at most %v", c.DrainTimeout, c.IOTimeout, DurationMax)
	}
	deliveries := float64(c.Sessions) * float64(c.Clients) * float64(c.Clients) * c.Rate * c.Duration.Seconds()
	if deliveries > failoverDeliveriesMax {
		return fmt.Errorf("sessions %d × clients² %d × rate %v × duration %v = %.0f deliveries: at most %d (failoverDeliveriesMax)",
			c.Sessions, c.Clients*c.Clients, c.Rate, c.Duration, deliveries, failoverDeliveriesMax)
	}
	return nil
}

// FailoverResult is the outcome of a failover run. OK reports that no
// client lost, got twice or out of order any stamped message, none saw a
// seq reused for another message or its session's timeline change, no
// client gave up, and every session stamped again after sending stopped.
type FailoverResult struct {
	Scenario string `json:"scenario"`
	// URL is the URL list as given, comma-separated; URLs its length.
	URL             string  `json:"url"`
	URLs            int     `json:"urls"`
	Sessions        int     `json:"sessions"`
	Clients         int     `json:"clients_per_session"`
	Rate            float64 `json:"rate_per_client"`
	DurationSeconds float64 `json:"duration_seconds"`
	PayloadBytes    int     `json:"payload_bytes"`
	Connections     int     `json:"connections"`
	Sent            int64   `json:"sent"`
	Delivered       int64   `json:"delivered"`
	// Breaks counts the connections that ended, by close code ("4003")
	// or "no close frame" (EOF, reset) or "silent" (no frame for
	// IOTimeout).
	Breaks            map[string]int64 `json:"breaks"`
	Reconnects        int64            `json:"reconnects"`
	ReconnectAttempts int64            `json:"reconnect_attempts"`
	// ClientsFailed: clients closed with a fatal code (≥ 4100 except
	// 4110), that gave up after failoverAttemptsMax attempts, or that got
	// a frame they could not read.
	ClientsFailed int64 `json:"clients_failed"`
	// ClientsReconnecting were still reconnecting when the drain ended.
	// Not a failure by itself: what their sessions stamped meanwhile
	// counts as Missing, and a session none of whose clients came back
	// never stamped again.
	ClientsReconnecting int64 `json:"clients_reconnecting_at_end"`
	// Stall is the distribution, over sessions, of each session's
	// longest time without stamping (by arrival at the bench of its
	// stamped messages, first seen by any of its clients).
	Stall             LatencySummary `json:"stall"`
	StallBoundMs      int64          `json:"stall_bound_ms"`
	SessionsOverBound int            `json:"sessions_over_stall_bound"`
	WorstSession      string         `json:"worst_session,omitempty"`
	// WorstStallFromSeconds is when the worst stall began, after sending
	// started.
	WorstStallFromSeconds float64 `json:"worst_stall_from_seconds"`
	NeverStampedAgain     int     `json:"sessions_never_stamped_again"`
	// Lost counts stamped messages a client never got in seq order: seqs
	// skipped live or across a rejoin, and messages it had that the
	// SYNC after a rejoin no longer holds. Missing counts the generator's
	// messages that another client of the session got and this one never
	// did, by payload, at the end.
	Lost            int64 `json:"lost"`
	Missing         int64 `json:"missing"`
	TimelineChanges int64 `json:"timeline_changes"`
	Duplicated      int64 `json:"duplicated"`
	ReusedSeq       int64 `json:"reused_seq"`
	Reordered       int64 `json:"reordered"`
	Unexpected      int64 `json:"unexpected"`
	// UnacknowledgedSends are messages written to a connection that broke
	// before they were stamped: the reflector never accepted them, and
	// clients do not send them again.
	UnacknowledgedSends int64          `json:"unacknowledged_sends"`
	Latency             LatencySummary `json:"latency"`
	FirstError          string         `json:"first_error,omitempty"`
	OK                  bool           `json:"ok"`
}

// failoverRun is the shared state of one run.
type failoverRun struct {
	config FailoverConfig
	// latency is the state loadClient needs: IOTimeout, Clients,
	// the send interval, the epoch of the payloads' send times and the
	// latency histogram of the clients' own messages.
	latency  *latencyRun
	sendsMax int
	// sendStart and sendEnd are set before the clients' goroutines start.
	sendStart, sendEnd time.Time
}

// Client states, for the progress line and the drain.
const (
	clientJoined       int32 = iota // synced on a connection
	clientReconnecting              // between a break and the next SYNC
	clientFailed                    // stopped: fatal close, gave up, unreadable frame
)

// failoverClient is a loadClient (its exactly-once bookkeeping of the
// generator's messages) that survives breaks: its goroutine reads until
// the connection ends, reconnects, and checks that the messages after the
// rejoin continue the seq order it had.
type failoverClient struct {
	*loadClient
	fr      *failoverRun
	sess    *failoverSession
	urlIdx  int       // URL of the current or last connection attempt
	first   time.Time // the client's first send; later sends keep its phase
	state   atomic.Int32
	attempt int // connection attempts after breaks, of failoverAttemptsMax

	// connMu guards conn, which the run closes to stop the client.
	connMu  sync.Mutex
	current net.Conn
	over    bool

	// Owned by the sender goroutine of the current connection (one at a
	// time, each started after the previous one ended).
	nextIndex int
	finals    int
	// finalFrom is the index of the client's first last message (-1
	// before); finalSeen: the client got one of its last messages back.
	finalFrom atomic.Int64
	finalSeen atomic.Bool

	// Reader state (the client's goroutine).
	synced   bool
	timeline string
	history  seqHistory
	scratch  bytes.Buffer
	breaks   map[string]int64
	failure  string

	reconnects      atomic.Int64
	lost            atomic.Int64
	timelineChanges atomic.Int64
	seqDuplicates   atomic.Int64
	reusedSeq       atomic.Int64
	seqReordered    atomic.Int64
}

// failoverSession is what the clients of one session share: which of the
// generator's messages any of them got (for Missing and unacknowledged
// sends), and the arrivals of its stamped messages (for its stalls).
type failoverSession struct {
	id string
	mu sync.Mutex
	// seen[sender][index]: some client of the session got the message.
	seen     [][]bool
	seenFrom []int64 // per sender: how many of its messages were seen
	distinct int64
	// The newest seq the session's clients got, on timeline.
	timeline string
	highest  uint32
	// Stall measurement: from the start of sending to the first stamped
	// message that arrives after sending stopped (closed).
	started, closed bool
	end             time.Time // when sending stops
	last            time.Time // arrival of the newest stamped message
	longest         time.Duration
	longestFrom     time.Time
}

// seqHistory keeps a hash of every stamped message a client got, by seq
// (from the first one it recorded), so that the replays in a SYNC can be
// compared with what the client had. 0 marks a seq it never got.
type seqHistory struct {
	base   uint32
	hashes []uint64
	max    int
}

func (h *seqHistory) get(seq uint32) uint64 {
	if i := uint64(seq - h.base); i < uint64(len(h.hashes)) {
		return h.hashes[i]
	}
	return 0
}

// put records seq; seqs before the first one, or more than max after it,
// are not kept (their replays are not checked).
func (h *seqHistory) put(seq uint32, hash uint64) {
	if len(h.hashes) == 0 {
		h.base = seq
	}
	i := uint64(seq - h.base)
	if i >= uint64(h.max) {
		return
	}
	for uint64(len(h.hashes)) <= i {
		h.hashes = append(h.hashes, 0)
	}
	h.hashes[i] = hash
}

func (h *seqHistory) reset() { h.hashes = h.hashes[:0] }

// messageHash hashes a message array (FNV-1a, 64 bits) after removing
// insignificant whitespace, so that a message compares equal whether it
// came in a RECV or a SYNC. It is never 0.
func (c *failoverClient) messageHash(raw []byte) uint64 {
	c.scratch.Reset()
	data := raw
	if json.Compact(&c.scratch, raw) == nil {
		data = c.scratch.Bytes()
	}
	hash := uint64(14695981039346656037)
	for _, b := range data {
		hash ^= uint64(b)
		hash *= 1099511628211
	}
	return hash | 1
}

// RunFailover runs the failover scenario. It returns an error when the run
// could not take place (bad config, a client that cannot connect at the
// start); what happens during the failover is reported in the result.
func RunFailover(ctx context.Context, config FailoverConfig) (*FailoverResult, error) {
	if err := config.Validate(); err != nil {
		return nil, err
	}
	progress := config.Progress
	if progress == nil {
		progress = io.Discard
	}
	latency := &latencyRun{config: LatencyConfig{
		Clients: config.Clients, PayloadBytes: config.PayloadBytes, IOTimeout: config.IOTimeout,
	}, epoch: time.Now()}
	latency.interval = time.Duration(float64(time.Second) / config.Rate)
	if config.SessionPrefix == "" {
		config.SessionPrefix = fmt.Sprintf("bench-failover-%d", latency.epoch.UnixNano())
	}
	run := &failoverRun{config: config, latency: latency}
	run.sendsMax = int(math.Ceil(config.Rate*config.Duration.Seconds())) + 1 + failoverFinalsMax

	sessions := make([]*failoverSession, config.Sessions)
	clients := make([]*failoverClient, 0, config.Sessions*config.Clients)
	for session := range config.Sessions {
		sessions[session] = newFailoverSession(fmt.Sprintf("%s-%d", config.SessionPrefix, session), config.Clients, run.sendsMax)
		for member := range config.Clients {
			clients = append(clients, newFailoverClient(run, sessions[session], session, member))
		}
	}
	clientCtx, cancelClients := context.WithCancel(ctx)
	defer cancelClients()
	var running sync.WaitGroup
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		cancelClients()
		for _, client := range clients {
			client.stop()
		}
		done := make(chan struct{})
		go func() { running.Wait(); close(done) }()
		select {
		case <-done:
			return nil
		case <-time.After(readerStopTimeout):
			return errors.New("failover clients did not stop after their connections were closed")
		}
	}
	defer stop()

	// Connect everything (JOIN → SYNC) before anyone sends, as the
	// latency scenario does; a node that cannot be reached at the start
	// is an error in the URL list, not a failover.
	connectStart := time.Now()
	if err := connectFailoverClients(clientCtx, clients); err != nil {
		return nil, err
	}
	fmt.Fprintf(progress, "bench: %d connections to %d URLs joined in %v\n",
		len(clients), len(config.URLs), time.Since(connectStart).Round(time.Millisecond))

	run.sendStart = time.Now().Add(sendStartDelay)
	run.sendEnd = run.sendStart.Add(config.Duration)
	for _, session := range sessions {
		session.start(run.sendStart, run.sendEnd)
	}
	for _, client := range clients {
		client.first = run.sendStart.Add(sendPhase(latency.interval, client.session, client.member, config.Sessions, config.Clients, false))
		running.Go(func() { client.loop(clientCtx) })
	}

	ticker := time.NewTicker(progressInterval)
	defer ticker.Stop()
	report := func(phase string) {
		var joined, reconnecting, failed int
		for _, client := range clients {
			switch client.state.Load() {
			case clientJoined:
				joined++
			case clientReconnecting:
				reconnecting++
			default:
				failed++
			}
		}
		var stalled int
		var reconnects int64
		now := time.Now()
		for _, session := range sessions {
			if session.stalled(now) {
				stalled++
			}
		}
		for _, client := range clients {
			reconnects += client.reconnects.Load()
		}
		joinedAs := "joined"
		if phase == "sending" {
			joinedAs = "sending"
		}
		fmt.Fprintf(progress, "bench: %5.1fs %-7s clients: %d %s, %d reconnecting, %d failed | sessions stalled > %v: %d | reconnects: %d\n",
			time.Since(run.sendStart).Seconds(), phase, joined, joinedAs, reconnecting, failed, stallShownAfter, stalled, reconnects)
	}
	sendEnd := time.NewTimer(time.Until(run.sendEnd))
	defer sendEnd.Stop()
sending:
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-sendEnd.C:
			break sending
		case <-ticker.C:
			report("sending")
		}
	}

	// Drain: wait for every client to be back, to have caught up with its
	// session and to have got one of its last messages, and for every
	// session to stamp again.
	drainDeadline := time.NewTimer(config.DrainTimeout)
	defer drainDeadline.Stop()
	poll := time.NewTicker(10 * time.Millisecond)
	defer poll.Stop()
drain:
	for !drained(clients, sessions) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-drainDeadline.C:
			break drain
		case <-ticker.C:
			report("drain")
		case <-poll.C:
		}
	}
	ended := time.Now()
	report("drained")
	if err := stop(); err != nil {
		return nil, err
	}
	return run.result(clients, sessions, ended), nil
}

// drained reports whether every client that still runs is joined, has
// every message of its session that any client got and got one of its
// last messages back, and every session with a running client stamped
// after sending stopped.
func drained(clients []*failoverClient, sessions []*failoverSession) bool {
	alive := make(map[*failoverSession]bool, len(sessions))
	for _, client := range clients {
		switch client.state.Load() {
		case clientFailed:
			continue
		case clientReconnecting:
			return false
		}
		if !client.finalSeen.Load() || client.distinct.Load() < client.sess.distinctCount() {
			return false
		}
		alive[client.sess] = true
	}
	for _, session := range sessions {
		if alive[session] && !session.stampedAgain() {
			return false
		}
	}
	return true
}

// result reads the clients' and sessions' state once their goroutines
// ended; ended is when the drain ended.
func (r *failoverRun) result(clients []*failoverClient, sessions []*failoverSession, ended time.Time) *FailoverResult {
	config := r.config
	result := &FailoverResult{
		Scenario: "failover", URL: strings.Join(config.URLs, ","), URLs: len(config.URLs),
		Sessions: config.Sessions, Clients: config.Clients, Rate: config.Rate,
		DurationSeconds: config.Duration.Seconds(), PayloadBytes: config.PayloadBytes,
		Connections: len(clients), Breaks: map[string]int64{}, StallBoundMs: config.StallBound.Milliseconds(),
	}
	for _, client := range clients {
		session := client.sess
		result.Sent += client.sent.Load()
		result.Delivered += client.distinct.Load()
		for reason, count := range client.breaks {
			result.Breaks[reason] += count
		}
		result.Reconnects += client.reconnects.Load()
		result.ReconnectAttempts += int64(client.attempt)
		switch client.state.Load() {
		case clientFailed:
			result.ClientsFailed++
			if result.FirstError == "" {
				result.FirstError = fmt.Sprintf("%s: %s", client.viewID, client.failure)
			}
		case clientReconnecting:
			result.ClientsReconnecting++
		}
		result.Lost += client.lost.Load()
		result.Missing += max(0, session.distinctCount()-client.distinct.Load())
		result.TimelineChanges += client.timelineChanges.Load()
		result.Duplicated += client.seqDuplicates.Load() + client.duplicates
		result.ReusedSeq += client.reusedSeq.Load()
		result.Reordered += client.seqReordered.Load() + client.outOfOrder
		result.Unexpected += client.unexpected
		result.UnacknowledgedSends += max(0, client.sent.Load()-session.seenOf(client.member))
	}
	var stalls Histogram
	var worst time.Duration
	for _, session := range sessions {
		longest, from, again := session.finish(ended)
		stalls.Record(longest)
		if longest > config.StallBound {
			result.SessionsOverBound++
		}
		if !again {
			result.NeverStampedAgain++
		}
		if longest > worst || result.WorstSession == "" {
			worst = longest
			result.WorstSession = session.id
			result.WorstStallFromSeconds = from.Sub(r.sendStart).Seconds()
		}
	}
	result.Stall = stalls.Summary()
	r.latency.mu.Lock()
	result.Latency = r.latency.total.Summary()
	r.latency.mu.Unlock()
	result.OK = result.Lost == 0 && result.Missing == 0 && result.TimelineChanges == 0 &&
		result.Duplicated == 0 && result.ReusedSeq == 0 && result.Reordered == 0 && result.Unexpected == 0 &&
		result.NeverStampedAgain == 0 && result.ClientsFailed == 0 && result.Sent > 0
	return result
}

func newFailoverSession(id string, clients, sendsMax int) *failoverSession {
	s := &failoverSession{id: id, seen: make([][]bool, clients), seenFrom: make([]int64, clients)}
	for i := range s.seen {
		s.seen[i] = make([]bool, sendsMax)
	}
	return s
}

func newFailoverClient(run *failoverRun, session *failoverSession, index, member int) *failoverClient {
	config := run.config
	c := &failoverClient{
		loadClient: &loadClient{
			run: run.latency, session: index, member: member, sessionID: session.id,
			viewID: fmt.Sprintf("bench-view-%d-%d", index, member),
		},
		fr: run, sess: session, urlIdx: (index*config.Clients + member) % len(config.URLs),
		breaks: map[string]int64{},
	}
	// A client's history holds its session's messages: the generator's,
	// and the users messages of its clients' joins and leaves.
	c.history.max = 2*config.Clients*run.sendsMax + 4*config.Clients*failoverAttemptsMax
	c.finalFrom.Store(-1)
	c.prepareReceive(run.sendsMax)
	return c
}

// mark records that some client of the session got message index of
// sender.
func (s *failoverSession) mark(sender, index int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.seen[sender][index] {
		s.seen[sender][index] = true
		s.seenFrom[sender]++
		s.distinct++
	}
}

func (s *failoverSession) distinctCount() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.distinct
}

func (s *failoverSession) seenOf(sender int) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seenFrom[sender]
}

// synced notes the timeline and seq of a client's first SYNC, so that the
// messages stamped after it count as new for the session.
func (s *failoverSession) synced(timeline string, seq uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.timeline == "" {
		s.timeline, s.highest = timeline, seq
	}
}

// stamped notes a stamped message a client got at arrival; the first
// client to get a seq ends the session's time without stamping.
func (s *failoverSession) stamped(timeline string, seq uint32, arrival time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case timeline != s.timeline:
		s.timeline = timeline
	case int32(seq-s.highest) <= 0:
		return // another client got it first
	}
	s.highest = seq
	if !s.started || s.closed {
		return
	}
	if arrival.Before(s.last) {
		arrival = s.last // received before sending started
	}
	if gap := arrival.Sub(s.last); gap > s.longest {
		s.longest, s.longestFrom = gap, s.last
	}
	s.last = arrival
	// The first message after sending stopped ends the measurement: the
	// session stamps again, and its quiet after that is the end of the
	// run, not a stall.
	s.closed = !arrival.Before(s.end)
}

// start begins the stall measurement when sending starts at; end is when
// it stops.
func (s *failoverSession) start(at, end time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.started, s.last, s.end = true, at, end
}

// stalled reports whether the session is stamping nothing for more than
// stallShownAfter while it should stamp.
func (s *failoverSession) stalled(now time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started && !s.closed && now.Sub(s.last) > stallShownAfter
}

func (s *failoverSession) stampedAgain() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// finish returns the session's longest time without stamping, when it
// began, and whether the session stamped after sending stopped. A session
// that did not is still in its stall when the drain ends.
func (s *failoverSession) finish(ended time.Time) (longest time.Duration, from time.Time, again bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		if gap := ended.Sub(s.last); gap > s.longest {
			s.longest, s.longestFrom = gap, s.last
		}
	}
	return s.longest, s.longestFrom, s.closed
}

// connectFailoverClients connects every client to its first URL,
// connectParallel at a time; the first failure cancels the rest.
func connectFailoverClients(ctx context.Context, clients []*failoverClient) error {
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
			// A cluster may close a first connection before its SYNC (two
			// nodes claimed the new session at once: the loser asks its
			// clients to reconnect): retry a few times, as clients do.
			var err error
			for attempt := range initialConnectAttempts {
				if attempt > 0 {
					time.Sleep(100 * time.Millisecond)
				}
				if err = client.connectTo(ctx, client.fr.config.URLs[client.urlIdx]); err == nil || ctx.Err() != nil {
					break
				}
			}
			if err != nil {
				once.Do(func() { firstErr = err; cancel() })
			}
		})
	}
	wait.Wait()
	if firstErr == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return firstErr
}

// initialConnectAttempts bounds the tries of a client's first connection.
const initialConnectAttempts = 5

// errRunOver: the run ended while the client was connecting.
var errRunOver = errors.New("the run is over")

// connectTo dials url and JOINs; the SYNC is checked against what the
// client had (checkSync).
func (c *failoverClient) connectTo(ctx context.Context, url string) error {
	dialCtx, cancel := context.WithTimeout(ctx, c.fr.config.IOTimeout)
	err := c.dialURL(dialCtx, url)
	cancel()
	if err != nil {
		return err
	}
	if !c.attach(c.conn) {
		return errRunOver
	}
	_, err = c.join(func(frame []byte, _ int, received time.Time) error {
		return c.checkSync(frame, received)
	})
	if err != nil {
		c.detach()
		return fmt.Errorf("%s: %w", url, err)
	}
	c.state.Store(clientJoined)
	return nil
}

// attach makes conn the client's connection, which stop closes; it
// closes conn and returns false when the run is over.
func (c *failoverClient) attach(conn net.Conn) bool {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.over {
		conn.Close()
		return false
	}
	c.current = conn
	return true
}

// detach closes the client's connection.
func (c *failoverClient) detach() {
	c.connMu.Lock()
	defer c.connMu.Unlock()
	if c.current != nil {
		c.current.Close()
		c.current = nil
	}
}

// stop ends the client for the end of the run: it closes the connection,
// which ends its reader, and no later connection is kept.
func (c *failoverClient) stop() {
	c.connMu.Lock()
	c.over = true
	c.connMu.Unlock()
	c.detach()
}

// loop serves the client's connections until the run ends: it reads one
// until it breaks, then reconnects, at most failoverAttemptsMax attempts
// over the whole run.
func (c *failoverClient) loop(ctx context.Context) {
	for {
		err := c.serve(ctx)
		if ctx.Err() != nil {
			return
		}
		var closed *closeError
		var unreadable *unreadableError
		switch {
		case errors.As(err, &unreadable):
			c.fail(err.Error())
			return
		case errors.As(err, &closed):
			c.breaks[strconv.Itoa(closed.code)]++
			// Codes from 4100 on, except 4110, tell the standard client
			// not to come back (docs/protocol.md §5.3).
			if closed.code >= 4100 && closed.code != 4110 {
				c.fail(err.Error())
				return
			}
		case isTimeout(err):
			c.breaks["silent"]++
		default:
			c.breaks["no close frame"]++
		}
		c.state.Store(clientReconnecting)
		if !c.reconnect(ctx) {
			return
		}
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

func (c *failoverClient) fail(why string) {
	c.failure = why
	c.state.Store(clientFailed)
}

// reconnect waits, then tries the next URLs in turn until one JOINs and
// SYNCs; it returns false when the run ended or the client gave up.
func (c *failoverClient) reconnect(ctx context.Context) bool {
	urls := c.fr.config.URLs
	delay := reconnectDelayMin
	var lastErr error
	for c.attempt < failoverAttemptsMax {
		timer := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			timer.Stop()
			return false
		case <-timer.C:
		}
		c.urlIdx = (c.urlIdx + 1) % len(urls)
		c.attempt++
		lastErr = c.connectTo(ctx, urls[c.urlIdx])
		if lastErr == nil {
			c.reconnects.Add(1)
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		delay = min(2*delay, reconnectDelayMax)
	}
	c.fail(fmt.Sprintf("gave up after %d connection attempts, the last: %v", c.attempt, lastErr))
	return false
}

// serve sends and reads on the joined connection until it breaks; the
// connection is closed when it returns.
func (c *failoverClient) serve(ctx context.Context) error {
	senderCtx, stopSender := context.WithCancel(ctx)
	senderDone := make(chan struct{})
	go c.send(senderCtx, senderDone)
	err := c.read()
	stopSender()
	c.detach() // a write blocked on the broken connection returns
	<-senderDone
	return err
}

// send sends the client's messages on one connection: at its phase of
// the rate until the end of the duration, skipping the slots it spent
// reconnecting (the standard client does not send while disconnected,
// and the bench measures the cluster, not a backlog), then one last
// message, at the end of the duration or at once on a connection made
// during the drain: every session then has something to stamp after
// sending stopped, which tells whether it stamps again.
func (c *failoverClient) send(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	interval := c.fr.latency.interval
	sendEnd := c.fr.sendEnd
	pulse := time.NewTicker(pulseInterval)
	defer pulse.Stop()
	next := c.first
	if behind := time.Since(next); behind > 0 {
		next = next.Add((behind + interval - 1) / interval * interval)
	}
	frame := make([]byte, 0, 128+c.fr.config.PayloadBytes)
	timer := time.NewTimer(time.Until(next))
	defer timer.Stop()
	wait := func() bool { // false: the connection ended
		for {
			select {
			case <-ctx.Done():
				return false
			case <-pulse.C:
				if c.write(ws.OpText, []byte(`{"action":"PULSE"}`)) != nil {
					return false
				}
			case <-timer.C:
				return true
			}
		}
	}
	for next.Before(sendEnd) {
		if !wait() {
			return
		}
		now := time.Now()
		if !now.Before(sendEnd) {
			break
		}
		if frame = c.sendOne(frame, now); frame == nil {
			return
		}
		next = next.Add(interval)
		if behind := time.Since(next); behind > interval {
			next = next.Add(behind / interval * interval)
		}
		timer.Reset(time.Until(next))
	}
	if c.finals < failoverFinalsMax {
		timer.Reset(time.Until(sendEnd))
		if !wait() {
			return
		}
		if c.finalFrom.Load() < 0 {
			c.finalFrom.Store(int64(c.nextIndex))
		}
		c.finals++
		if frame = c.sendOne(frame, time.Now()); frame == nil {
			return
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-pulse.C:
			if c.write(ws.OpText, []byte(`{"action":"PULSE"}`)) != nil {
				return
			}
		}
	}
}

// sendOne sends the client's next message; it returns the frame buffer,
// or nil when the write failed (the reader sees the break).
func (c *failoverClient) sendOne(frame []byte, now time.Time) []byte {
	if c.nextIndex >= c.fr.sendsMax {
		return frame
	}
	frame = append(frame[:0], `{"id":"`+c.sessionID+`","action":"SEND","args":[0,0,"`...)
	frame = appendPayload(frame, c.member, c.nextIndex, c.fr.latency.sinceEpoch(now), c.fr.config.PayloadBytes)
	frame = append(frame, `",0]}`...)
	c.nextIndex++ // an index is used once, even if its write failed
	if err := c.write(ws.OpText, frame); err != nil {
		return nil
	}
	c.sent.Add(1)
	return frame
}

// closeError is the end of a connection by a close frame.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string { return fmt.Sprintf("closed with %d %q", e.code, e.reason) }

// unreadableError is a frame the client cannot read: the reflector broke
// the protocol, and coming back would not help.
type unreadableError struct{ err error }

func (e *unreadableError) Error() string { return "unreadable frame: " + e.err.Error() }
func (e *unreadableError) Unwrap() error { return e.err }

// read handles the frames of the joined connection until it ends.
func (c *failoverClient) read() error {
	link := linkReader{reader: c.frames.reader, onControl: c.frames.onControl}
	var deadlineSet time.Time
	for {
		if now := time.Now(); now.Sub(deadlineSet) > deadlineRefresh {
			if err := c.conn.SetReadDeadline(now.Add(c.fr.config.IOTimeout)); err != nil {
				return err
			}
			deadlineSet = now
		}
		frame, err := link.next()
		if err != nil {
			return err
		}
		if err := c.handleFrame(frame, time.Now()); err != nil {
			return err
		}
	}
}

// handleFrame handles one frame of a joined connection, received at now:
// a RECV is checked against the client's seq order (live), anything else
// (TICK, INFO, REQU) only shows the connection is alive.
func (c *failoverClient) handleFrame(frame []byte, now time.Time) error {
	message, err := parseInbound(frame)
	if err != nil {
		return &unreadableError{err}
	}
	if message.action != "RECV" {
		return nil
	}
	args, err := frameArgs(frame)
	if err != nil {
		return &unreadableError{fmt.Errorf("RECV %q: %w", excerpt(frame), err)}
	}
	c.live(message, c.messageHash(args), now)
	return nil
}

// live checks a RECV against the client's seq order: the next seq is
// taken, a later one is taken after counting the skipped ones as lost,
// and an earlier one is a duplicate (the same message again), a reused
// seq (another message) or, when the client never had that seq, a
// reordering.
func (c *failoverClient) live(message inbound, hash uint64, now time.Time) {
	switch ahead := int32(message.seq - c.lastSeq); {
	case ahead == 1:
	case ahead > 1:
		c.lost.Add(int64(ahead - 1))
	default:
		switch known := c.history.get(message.seq); {
		case known == 0:
			c.seqReordered.Add(1)
		case known == hash:
			c.seqDuplicates.Add(1)
		default:
			c.reusedSeq.Add(1)
		}
		return
	}
	c.accept(message, hash, now)
}

// accept takes the message after the client's last seq: it records its
// hash, counts it once (recordStamped), marks it for the session and
// notes its arrival for the session's stalls.
func (c *failoverClient) accept(message inbound, hash uint64, now time.Time) {
	if known := c.history.get(message.seq); known != 0 && known != hash {
		c.reusedSeq.Add(1) // after a rollback: the seq held another message
	}
	c.history.put(message.seq, hash)
	c.lastSeq = message.seq
	if sender, index, first := c.recordStamped(message, now); first {
		c.sess.mark(sender, index)
		if from := c.finalFrom.Load(); sender == c.member && from >= 0 && int64(index) >= from {
			c.finalSeen.Store(true)
		}
	}
	c.sess.stamped(c.timeline, message.seq, now)
}

// syncArgs is what checkSync reads of a SYNC (docs/protocol.md §8.1).
type syncArgs struct {
	Args struct {
		Messages    []json.RawMessage `json:"messages"`
		Seq         uint32            `json:"seq"`
		Timeline    string            `json:"timeline"`
		SnapshotSeq *uint32           `json:"snapshotSeq"`
	} `json:"args"`
}

// checkSync reads a SYNC the client got at received (join has checked its
// shape). The first one starts the client's history. After a rejoin the
// SYNC must continue it, as the standard client's seamless-rejoin test
// requires (docs/protocol.md §8.2): the same timeline, the client's last
// seq covered, the messages up to it the ones the client had (compared
// by seq and content: another message under a seq the client had is a
// reused seq), the messages after it the next seqs (a gap is lost). The
// messages after the client's last seq count as received at received.
func (c *failoverClient) checkSync(frame []byte, received time.Time) error {
	var sync syncArgs
	if err := json.Unmarshal(frame, &sync); err != nil {
		return fmt.Errorf("SYNC of %s: %w", c.viewID, err)
	}
	args := &sync.Args
	messages := make([]inbound, len(args.Messages))
	hashes := make([]uint64, len(args.Messages))
	for i, raw := range args.Messages {
		message, err := parseStamped(raw)
		if err != nil {
			return fmt.Errorf("SYNC of %s, message %d: %w", c.viewID, i, err)
		}
		messages[i], hashes[i] = message, c.messageHash(raw)
	}
	// The oldest seq the SYNC covers: the snapshot's, or the one before
	// its first message, or its seq.
	oldest := args.Seq
	switch {
	case args.SnapshotSeq != nil:
		oldest = *args.SnapshotSeq
	case len(messages) > 0:
		oldest = messages[0].seq - 1
	}
	if !c.synced {
		c.synced, c.timeline = true, args.Timeline
		for i, message := range messages {
			c.history.put(message.seq, hashes[i])
		}
		c.sess.synced(args.Timeline, args.Seq)
		c.lastSeq = args.Seq
		return nil
	}
	if args.Timeline != c.timeline {
		// The session started over: what the client had is gone; it
		// starts from this SYNC like a standard client rebuilding its
		// model, and the messages in it are new.
		c.timelineChanges.Add(1)
		c.timeline = args.Timeline
		c.history.reset()
		c.lastSeq = oldest
	}
	if gap := int32(oldest - c.lastSeq); gap > 0 {
		c.lost.Add(int64(gap)) // stamped after the client's last, not in the SYNC
		c.lastSeq = oldest
	}
	if back := int32(c.lastSeq - args.Seq); back > 0 {
		c.lost.Add(int64(back)) // the client had them, the session no longer does
		c.lastSeq = args.Seq
	}
	for i, message := range messages {
		ahead := int32(message.seq - c.lastSeq)
		if ahead <= 0 {
			if known := c.history.get(message.seq); known != 0 && known != hashes[i] {
				c.reusedSeq.Add(1)
			}
			continue
		}
		if ahead > 1 {
			c.lost.Add(int64(ahead - 1))
		}
		c.accept(message, hashes[i], received)
	}
	if missing := int32(args.Seq - c.lastSeq); missing > 0 {
		c.lost.Add(int64(missing)) // stamped, but neither in messages nor a snapshot
	}
	c.lastSeq = args.Seq
	return nil
}

// parseStamped reads a stamped message array (docs/protocol.md §4.4) as
// parseInbound reads the args of a RECV.
func parseStamped(raw []byte) (inbound, error) {
	var elements []json.RawMessage
	if err := json.Unmarshal(raw, &elements); err != nil || len(elements) < 3 {
		return inbound{}, fmt.Errorf("%.80q is not a message array", raw)
	}
	seq, err := strconv.ParseUint(string(elements[1]), 10, 32)
	if err != nil {
		return inbound{}, fmt.Errorf("seq %q: %w", elements[1], err)
	}
	message := inbound{action: "RECV", seq: uint32(seq)}
	var text string
	if json.Unmarshal(elements[2], &text) == nil {
		message.stringPayload = []byte(text)
	} else {
		message.objectPayload = bytes.HasPrefix(elements[2], []byte("{"))
	}
	return message, nil
}

// frameArgs returns the raw value of a frame's args, validating the frame
// as JSON on the way (jsonScanner); args of the same message compare
// equal whether they came in a RECV or a SYNC.
func frameArgs(frame []byte) ([]byte, error) {
	s := jsonScanner{data: frame}
	s.skipSpace()
	if s.pos >= len(frame) || frame[s.pos] != '{' {
		return nil, errors.New("not a JSON object")
	}
	var args []byte
	err := s.object(1, func(key []byte) error {
		start := s.pos
		if err := s.value(1); err != nil {
			return err
		}
		if string(key) == "args" {
			args = frame[start:s.pos]
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if args == nil {
		return nil, errors.New("no args")
	}
	return args, nil
}

// linkReader reads a failover connection's frames after its SYNC from the
// frameReader's buffered reader. It is frameReader but for one thing: a
// close frame ends the stream with a closeError that holds the close
// code, because the code decides whether a client comes back
// (docs/protocol.md §5.3).
type linkReader struct {
	reader    *bufio.Reader
	buffer    []byte
	onControl func(ws.Header, []byte) error
}

func (l *linkReader) next() ([]byte, error) {
	l.buffer = l.buffer[:0]
	fragmented := false
	for {
		header, err := ws.ReadHeader(l.reader)
		if err != nil {
			return nil, err
		}
		if err := checkFragment(header, fragmented); err != nil {
			return nil, &unreadableError{err}
		}
		if !header.OpCode.IsControl() {
			fragmented = !header.Fin
		}
		if header.Length < 0 || int64(len(l.buffer))+header.Length > frameBytesMax {
			return nil, &unreadableError{fmt.Errorf("frame of %d bytes exceeds frameBytesMax %d", header.Length, frameBytesMax)}
		}
		start := len(l.buffer)
		l.buffer = append(l.buffer, make([]byte, header.Length)...)
		payload := l.buffer[start:]
		if _, err := io.ReadFull(l.reader, payload); err != nil {
			return nil, err
		}
		if header.Masked {
			ws.Cipher(payload, header.Mask, 0)
		}
		if header.OpCode.IsControl() {
			l.buffer = l.buffer[:start]
			if header.OpCode == ws.OpClose {
				code, reason := ws.ParseCloseFrameData(payload)
				if code == 0 {
					code = ws.StatusNoStatusRcvd
				}
				return nil, &closeError{code: int(code), reason: reason}
			}
			if l.onControl != nil {
				if err := l.onControl(header, payload); err != nil {
					return nil, err
				}
			}
			continue
		}
		if header.Fin {
			return l.buffer, nil
		}
	}
}

// WriteTable writes a failover result as a readable table; a run that
// lost, duplicated or reordered messages, or with a session that never
// stamped again, ends with a loud FAIL line.
func (r *FailoverResult) WriteTable(w io.Writer) error {
	ms := func(us int64) string { return fmt.Sprintf("%.3f ms", float64(us)/1000) }
	table := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(name string, format string, args ...any) {
		fmt.Fprintf(table, "%s\t"+format+"\n", append([]any{name}, args...)...)
	}
	row("scenario", "%s  %s", r.Scenario, r.URL)
	row("load", "%d sessions × %d clients × %g msg/s, %gs, %d-byte payload, over %d URLs",
		r.Sessions, r.Clients, r.Rate, r.DurationSeconds, r.PayloadBytes, r.URLs)
	row("connections", "%d", r.Connections)
	row("sent / delivered", "%d / %d", r.Sent, r.Delivered)
	row("connections ended", "%s", formatBreaks(r.Breaks))
	row("reconnects / attempts", "%d / %d", r.Reconnects, r.ReconnectAttempts)
	row("unacknowledged sends", "%d (in flight when their connection broke: never stamped, not sent again)", r.UnacknowledgedSends)
	row("lost / missing / timeline changes", "%d / %d / %d", r.Lost, r.Missing, r.TimelineChanges)
	row("duplicated / reused seq / reordered", "%d / %d / %d", r.Duplicated, r.ReusedSeq, r.Reordered)
	row("unexpected / clients failed / still reconnecting", "%d / %d / %d", r.Unexpected, r.ClientsFailed, r.ClientsReconnecting)
	row("longest stall per session p50 / p90", "%s / %s", ms(r.Stall.P50Us), ms(r.Stall.P90Us))
	row("longest stall per session p99 / max", "%s / %s", ms(r.Stall.P99Us), ms(r.Stall.MaxUs))
	row("worst session", "%s, from %.3f s after sending started", r.WorstSession, r.WorstStallFromSeconds)
	row(fmt.Sprintf("sessions stalled > %v", time.Duration(r.StallBoundMs)*time.Millisecond), "%d of %d", r.SessionsOverBound, r.Sessions)
	row("sessions never stamped again", "%d", r.NeverStampedAgain)
	row("own latency p50 / p99 / max", "%s / %s / %s", ms(r.Latency.P50Us), ms(r.Latency.P99Us), ms(r.Latency.MaxUs))
	if err := table.Flush(); err != nil {
		return err
	}
	if !r.OK {
		_, err := fmt.Fprintf(w, "\nFAIL: lost %d, missing %d, timeline changes %d, duplicated %d, reused seq %d, reordered %d, unexpected %d, sessions never stamped again %d, clients failed %d%s\n",
			r.Lost, r.Missing, r.TimelineChanges, r.Duplicated, r.ReusedSeq, r.Reordered, r.Unexpected,
			r.NeverStampedAgain, r.ClientsFailed, firstError(r.FirstError))
		return err
	}
	_, err := fmt.Fprintf(w, "\nOK: every client got every stamped message of its session once, in seq order, across %d reconnects; every session stamped again\n", r.Reconnects)
	return err
}

// formatBreaks writes "n (4003: a, no close frame: b)".
func formatBreaks(breaks map[string]int64) string {
	var total int64
	reasons := make([]string, 0, len(breaks))
	for reason, count := range breaks {
		total += count
		reasons = append(reasons, reason)
	}
	if total == 0 {
		return "0"
	}
	sort.Strings(reasons)
	parts := make([]string, len(reasons))
	for i, reason := range reasons {
		parts[i] = fmt.Sprintf("%s: %d", reason, breaks[reason])
	}
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", "))
}

// WriteJSON writes a failover result as one indented JSON object.
func (r *FailoverResult) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

// Passed reports the result's OK.
func (r *FailoverResult) Passed() bool { return r.OK }
