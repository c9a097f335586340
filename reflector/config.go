package reflector

import "fmt"

// Config holds the tunable limits and intervals of a session. The zero value
// is not valid; start from DefaultConfig.
type Config struct {
	// ReflectorName is echoed in SYNC "reflector" (informational).
	ReflectorName string

	// bugs are switched on only by the simulator's self-test (bugs.go).
	bugs bugSwitches

	// UsersIntervalMs batches users join/leave announcements (spec §10.1).
	UsersIntervalMs int64
	// TallyTimeoutMs is how long a TUTTI tally waits for votes (spec §6.3).
	TallyTimeoutMs int64
	// TallyHistoryMs and TalliesCompletedMax bound the memory of completed
	// TUTTI keys, used to reject late votes.
	TallyHistoryMs      int64
	TalliesCompletedMax int
	// TalliesOpenMax bounds the number of tallies open at once.
	TalliesOpenMax int

	// DeletionDelayMs keeps a session alive after its last connection
	// closed, so that clients can rejoin seamlessly (spec §11.3, ≥ 10 s).
	DeletionDelayMs int64

	// MessagesSinceSnapshotMax is the hard limit of the message buffer: a
	// message arriving when the buffer is full is rejected with an INFO to
	// its sender and a REQU to all members (spec §8.3).
	MessagesSinceSnapshotMax int
	// MessagesRequestSnapshotFrom is the buffer size from which the
	// reflector asks clients for a snapshot (REQU).
	MessagesRequestSnapshotFrom int
	// MessagesSnapshotReserve is extra room beyond MessagesSinceSnapshotMax
	// for the messages that lead to a snapshot (polls, votes, tallies) and
	// users announcements, so that a full buffer can still be emptied.
	MessagesSnapshotReserve int

	// InactivityTimeoutMs closes a connection (4002) from which nothing was
	// received for this long; 0 disables the watchdog.
	InactivityTimeoutMs int64
	// NeverJoinedTimeoutMs closes a connection (4121) that sent no JOIN for
	// this long; 0 disables it.
	NeverJoinedTimeoutMs int64
	// WatchdogIntervalMs is how often the watchdog looks at connections.
	WatchdogIntervalMs int64

	// FramesPerSecondMax and FramesBurstMax rate-limit each connection
	// (token bucket); a connection above the limit is closed with 4104.
	FramesPerSecondMax int64
	FramesBurstMax     int64

	// DebounceKeysMax bounds the SEND debounce table (tags.msgID).
	DebounceKeysMax int

	// TimeLeaseMs: session time is persisted ahead of itself by this much,
	// so that after a crash time resumes at a value no client has seen
	// exceeded (time never goes backwards across restarts).
	TimeLeaseMs int64
}

// DefaultConfig returns the limits Metronome uses unless told otherwise.
func DefaultConfig() Config {
	return Config{
		ReflectorName:               "metronome",
		UsersIntervalMs:             200,
		TallyTimeoutMs:              1000,
		TallyHistoryMs:              60_000,
		TalliesCompletedMax:         20,
		TalliesOpenMax:              64,
		DeletionDelayMs:             10_000,
		MessagesSinceSnapshotMax:    100_000,
		MessagesRequestSnapshotFrom: 60_000,
		MessagesSnapshotReserve:     1_000,
		InactivityTimeoutMs:         60_000,
		NeverJoinedTimeoutMs:        35_000,
		WatchdogIntervalMs:          5_000,
		FramesPerSecondMax:          200,
		FramesBurstMax:              400,
		DebounceKeysMax:             1024,
		TimeLeaseMs:                 10_000,
	}
}

// Validate checks the relations between limits.
func (c *Config) Validate() error {
	positive := []struct {
		name  string
		value int64
	}{
		{"UsersIntervalMs", c.UsersIntervalMs},
		{"TallyTimeoutMs", c.TallyTimeoutMs},
		{"TallyHistoryMs", c.TallyHistoryMs},
		{"TalliesCompletedMax", int64(c.TalliesCompletedMax)},
		{"TalliesOpenMax", int64(c.TalliesOpenMax)},
		{"MessagesSinceSnapshotMax", int64(c.MessagesSinceSnapshotMax)},
		{"MessagesRequestSnapshotFrom", int64(c.MessagesRequestSnapshotFrom)},
		{"WatchdogIntervalMs", c.WatchdogIntervalMs},
		{"FramesPerSecondMax", c.FramesPerSecondMax},
		{"FramesBurstMax", c.FramesBurstMax},
		{"DebounceKeysMax", int64(c.DebounceKeysMax)},
		{"TimeLeaseMs", c.TimeLeaseMs},
	}
	for _, p := range positive {
		if p.value <= 0 {
			return fmt.Errorf("reflector config: %s must be positive, got %d", p.name, p.value)
		}
	}
	if c.DeletionDelayMs < 10_000 {
		return fmt.Errorf("reflector config: DeletionDelayMs must be at least 10000 (clients rejoin within 10 s), got %d", c.DeletionDelayMs)
	}
	if c.MessagesRequestSnapshotFrom > c.MessagesSinceSnapshotMax {
		return fmt.Errorf("reflector config: MessagesRequestSnapshotFrom (%d) must not exceed MessagesSinceSnapshotMax (%d)",
			c.MessagesRequestSnapshotFrom, c.MessagesSinceSnapshotMax)
	}
	if c.FramesBurstMax < c.FramesPerSecondMax {
		return fmt.Errorf("reflector config: FramesBurstMax (%d) must be at least FramesPerSecondMax (%d)", c.FramesBurstMax, c.FramesPerSecondMax)
	}
	if c.MessagesSnapshotReserve < 0 {
		return fmt.Errorf("reflector config: MessagesSnapshotReserve must not be negative, got %d", c.MessagesSnapshotReserve)
	}
	if c.InactivityTimeoutMs < 0 || c.NeverJoinedTimeoutMs < 0 {
		return fmt.Errorf("reflector config: watchdog timeouts must not be negative")
	}
	return nil
}
