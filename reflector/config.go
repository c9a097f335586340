package reflector

import (
	"cmp"
	"fmt"
)

// Config holds the tunable limits and intervals of a session. The zero value
// is not valid; start from DefaultConfig, or set the fields you need and
// call WithDefaults for the rest.
type Config struct {
	// ReflectorName is echoed in SYNC "reflector" (informational).
	ReflectorName string

	// bugs are switched on only by the simulator's self-test (bugs.go).
	bugs bugSwitches

	// UsersIntervalMs batches users join/leave announcements (docs/protocol.md §10.1).
	UsersIntervalMs int64
	// TallyTimeoutMs is how long a TUTTI tally waits for votes (docs/protocol.md §6.3).
	TallyTimeoutMs int64
	// TallyHistoryMs and TalliesCompletedMax bound the memory of completed
	// TUTTI keys, used to reject late votes.
	TallyHistoryMs      int64
	TalliesCompletedMax int
	// TalliesOpenMax bounds the number of tallies open at once.
	TalliesOpenMax int

	// DeletionDelayMs keeps a session alive after its last connection
	// closed, so that clients can rejoin seamlessly (docs/protocol.md §11.3, ≥ 10 s).
	DeletionDelayMs int64

	// MessagesSinceSnapshotMax is the hard limit of the message buffer: a
	// message arriving when the buffer is full is rejected with an INFO to
	// its sender and a REQU to all members (docs/protocol.md §8.3).
	MessagesSinceSnapshotMax int
	// MessagesRequestSnapshotFrom is the buffer size from which the
	// reflector asks clients for a snapshot (REQU).
	MessagesRequestSnapshotFrom int
	// MessagesSnapshotReserve is extra room beyond MessagesSinceSnapshotMax
	// for the messages that lead to a snapshot (polls, TUTTI first
	// messages, tallies) and users announcements, so that a full buffer can
	// still be emptied. Users announcements may take only half of it (they
	// wait while it is used up), so that churn cannot take the room the
	// snapshot needs.
	MessagesSnapshotReserve int
	// BufferFullNoticeIntervalMs spaces the REQU and SNAPSHOT_NEEDED that a
	// full buffer broadcasts: one per interval, not one per rejected
	// message (which would multiply every rejected input by the number of
	// members). The sender of each rejected message is still told.
	BufferFullNoticeIntervalMs int64

	// InactivityTimeoutMs closes a connection (4002) from which nothing was
	// received for this long; 0 disables the watchdog (Off for
	// WithDefaults).
	InactivityTimeoutMs int64
	// NeverJoinedTimeoutMs closes a connection (4121) that sent no JOIN for
	// this long; 0 disables it (Off for WithDefaults).
	NeverJoinedTimeoutMs int64
	// WatchdogIntervalMs is how often the watchdog looks at connections.
	WatchdogIntervalMs int64

	// FramesPerSecondMax and FramesBurstMax rate-limit each connection
	// (token bucket); a connection above the limit is closed with 4104.
	FramesPerSecondMax int64
	FramesBurstMax     int64

	// DebounceKeysMax bounds the SEND debounce table (tags.msgID).
	DebounceKeysMax int

	// JoinsPerConnectionMax bounds the JOINs of one connection. Every JOIN
	// after the first is answered with a whole SYNC (all messages since
	// the snapshot): without a bound, a ~100-byte JOIN repeated on one
	// connection makes the server send megabytes per frame. Real clients
	// send one JOIN per connection (they reconnect to rejoin); a
	// connection that sends more is closed with 4102.
	JoinsPerConnectionMax int

	// TimeLeaseMs: session time is persisted ahead of itself by this much,
	// so that after a crash time resumes at a value no client has seen
	// exceeded (time never goes backwards across restarts). It is also the
	// most time jumps forward after a crash (a model's future messages due
	// in between run back to back), and the lease is renewed, a record
	// write, every TimeLeaseMs/2 of session time while the session runs.
	// One second (the default) keeps the jump after a kill -9 small; the
	// renewals cost little because the disk store keeps records in its
	// journal and writes record.json only at checkpoints
	// (store/diskstore/records.go).
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
		BufferFullNoticeIntervalMs:  1_000,
		InactivityTimeoutMs:         60_000,
		NeverJoinedTimeoutMs:        35_000,
		WatchdogIntervalMs:          5_000,
		FramesPerSecondMax:          200,
		FramesBurstMax:              400,
		DebounceKeysMax:             1024,
		JoinsPerConnectionMax:       3,
		TimeLeaseMs:                 1_000,
	}
}

// Off, as InactivityTimeoutMs, NeverJoinedTimeoutMs or
// MessagesSnapshotReserve of a Config given to WithDefaults, asks for 0 (no
// watchdog, no reserve), which a zero field cannot ask for there.
const Off = -1

// WithDefaults returns c with each zero field set to its DefaultConfig value,
// so that a configuration that sets only some fields keeps the defaults of
// the others; a field set to Off becomes 0. Fields already set are kept as
// they are (Validate checks them).
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	c.ReflectorName = cmp.Or(c.ReflectorName, d.ReflectorName)
	c.UsersIntervalMs = cmp.Or(c.UsersIntervalMs, d.UsersIntervalMs)
	c.TallyTimeoutMs = cmp.Or(c.TallyTimeoutMs, d.TallyTimeoutMs)
	c.TallyHistoryMs = cmp.Or(c.TallyHistoryMs, d.TallyHistoryMs)
	c.TalliesCompletedMax = cmp.Or(c.TalliesCompletedMax, d.TalliesCompletedMax)
	c.TalliesOpenMax = cmp.Or(c.TalliesOpenMax, d.TalliesOpenMax)
	c.DeletionDelayMs = cmp.Or(c.DeletionDelayMs, d.DeletionDelayMs)
	c.MessagesSinceSnapshotMax = cmp.Or(c.MessagesSinceSnapshotMax, d.MessagesSinceSnapshotMax)
	c.MessagesRequestSnapshotFrom = cmp.Or(c.MessagesRequestSnapshotFrom, d.MessagesRequestSnapshotFrom)
	c.MessagesSnapshotReserve = orOff(c.MessagesSnapshotReserve, d.MessagesSnapshotReserve)
	c.BufferFullNoticeIntervalMs = cmp.Or(c.BufferFullNoticeIntervalMs, d.BufferFullNoticeIntervalMs)
	c.InactivityTimeoutMs = orOff(c.InactivityTimeoutMs, d.InactivityTimeoutMs)
	c.NeverJoinedTimeoutMs = orOff(c.NeverJoinedTimeoutMs, d.NeverJoinedTimeoutMs)
	c.WatchdogIntervalMs = cmp.Or(c.WatchdogIntervalMs, d.WatchdogIntervalMs)
	c.FramesPerSecondMax = cmp.Or(c.FramesPerSecondMax, d.FramesPerSecondMax)
	c.FramesBurstMax = cmp.Or(c.FramesBurstMax, d.FramesBurstMax)
	c.DebounceKeysMax = cmp.Or(c.DebounceKeysMax, d.DebounceKeysMax)
	c.JoinsPerConnectionMax = cmp.Or(c.JoinsPerConnectionMax, d.JoinsPerConnectionMax)
	c.TimeLeaseMs = cmp.Or(c.TimeLeaseMs, d.TimeLeaseMs)
	return c
}

// orOff is value, or fallback when value is zero, or 0 when value is Off.
func orOff[T int | int64](value, fallback T) T {
	switch value {
	case 0:
		return fallback
	case Off:
		return 0
	}
	return value
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
		{"BufferFullNoticeIntervalMs", c.BufferFullNoticeIntervalMs},
		{"WatchdogIntervalMs", c.WatchdogIntervalMs},
		{"FramesPerSecondMax", c.FramesPerSecondMax},
		{"FramesBurstMax", c.FramesBurstMax},
		{"DebounceKeysMax", int64(c.DebounceKeysMax)},
		{"JoinsPerConnectionMax", int64(c.JoinsPerConnectionMax)},
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
