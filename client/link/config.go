package link

import (
	"cmp"
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/protocol"
)

// Defaults (docs/protocol.md §16.2 for the values the standard client uses).
const (
	// SyncTimeoutMsDefault: reconnect if no SYNC arrives this long after
	// dialling (opening plus JOIN).
	SyncTimeoutMsDefault = 5000
	// SilenceTimeoutMsDefault: a connection on which nothing arrived for
	// this long is dead (ticks arrive every tick interval while idle).
	SilenceTimeoutMsDefault = 50000
	// PulseAfterMsDefault: send a PULSE after this long without sending,
	// so the reflector's inactivity watchdog keeps the connection.
	PulseAfterMsDefault = 25000
	// ReconnectDelayMaxMsDefault caps the reconnect back-off.
	ReconnectDelayMaxMsDefault = 30000
	// PendingInputsMaxDefault bounds inputs kept until seen reflected
	// (also while disconnected).
	PendingInputsMaxDefault = 10000
	// SendRatePerSecondDefault and SendBurstMaxDefault pace SENDs well
	// under the reflector's frame limit (200/s, burst 400), also when many
	// inputs are re-sent at once after a reconnect.
	SendRatePerSecondDefault = 100
	SendBurstMaxDefault      = 200
	// RejectedResendDelayMs is how long after the reflector rejected an
	// input (INFO MESSAGE_REJECTED: its message buffer is full until a
	// snapshot empties it) the link sends its unconfirmed inputs again.
	// The reflector's INFO does not say which input it rejected; copies of
	// inputs that were stamped after all are dropped by the model runtime
	// by their tags, as after a reconnect.
	RejectedResendDelayMs = 1000
	// RejectedResendDelayMaxMs bounds the re-send delay, which doubles
	// while the inputs keep being rejected.
	RejectedResendDelayMaxMs = 16_000
	// LeaveDelayMs is the JOIN leaveDelay Go clients send: how long the
	// reflector waits, after a view's connection drops, before it announces
	// that the view left, so that a reconnect within it goes unnoticed. 1250
	// is what the standard Croquet client sends by default: its rejoinLimit
	// (1000 ms, how long it tries to rejoin seamlessly) plus 250 ms.
	LeaveDelayMs = 1250
	// ViewIDBytesMax bounds a view id.
	ViewIDBytesMax = 64
	// PollMsgID and PollDebounceMs tag snapshot polls so the reflector
	// forwards at most one per PollDebounceMs (docs/protocol.md §9.1).
	PollMsgID      = "pollForSnapshot"
	PollDebounceMs = 5000
	// EphemeralSendRatePerSecondDefault and EphemeralSendBurstMaxDefault
	// pace EPHM frames (the ephemeral channel, docs/protocol.md §22):
	// broadcasts beyond them wait, and a newer broadcast under the same
	// name replaces one still waiting, so a view that broadcasts its
	// pointer 120 times a second sends its latest position 30 times a
	// second. EPHMs take the reflector's frame budget (200/s) like SENDs:
	// with SendRatePerSecondDefault the two stay well under it.
	EphemeralSendRatePerSecondDefault = 30
	EphemeralSendBurstMaxDefault      = 5
	// EphemeralPendingNamesMax bounds the names whose latest broadcast
	// waits for the send rate; a broadcast under one more name is refused.
	EphemeralPendingNamesMax = 256
)

// Config configures a Link. SessionID and ViewID are required; zero values
// of the rest take the defaults above.
type Config struct {
	// SessionID is the last path segment of the session URL; it goes into
	// every frame's "id".
	SessionID string
	// ViewID identifies this client's view for the link's whole life (all
	// reconnects): letters, digits, '-' and '_' only.
	ViewID string
	// Join is the JOIN to send. Join.User defaults to the ViewID as a JSON
	// string.
	Join protocol.JoinRequest
	// Seed seeds the back-off jitter.
	Seed uint64

	SyncTimeoutMs       int64
	SilenceTimeoutMs    int64
	PulseAfterMs        int64
	ReconnectDelayMaxMs int64
	PendingInputsMax    int
	SendRatePerSecond   int64
	SendBurstMax        int64
	// EphemeralSendRatePerSecond and EphemeralSendBurstMax pace broadcasts
	// (Broadcast); Join.Ephemeral asks the reflector for the other views'.
	EphemeralSendRatePerSecond int64
	EphemeralSendBurstMax      int64
}

// Validate reports a configuration error, naming the field.
func (c *Config) Validate() error {
	if c.SessionID == "" {
		return fmt.Errorf("link: Config.SessionID is required")
	}
	if !validViewID(c.ViewID) {
		return fmt.Errorf("link: Config.ViewID %q must be 1 to %d letters, digits, '-' or '_' (ViewIDBytesMax)", c.ViewID, ViewIDBytesMax)
	}
	// A slice, not a map: with several negative fields, the error names the
	// first in this order every time.
	for _, field := range []struct {
		name  string
		value int64
	}{
		{"SyncTimeoutMs", c.SyncTimeoutMs}, {"SilenceTimeoutMs", c.SilenceTimeoutMs}, {"PulseAfterMs", c.PulseAfterMs},
		{"ReconnectDelayMaxMs", c.ReconnectDelayMaxMs}, {"PendingInputsMax", int64(c.PendingInputsMax)},
		{"SendRatePerSecond", c.SendRatePerSecond}, {"SendBurstMax", c.SendBurstMax},
		{"EphemeralSendRatePerSecond", c.EphemeralSendRatePerSecond}, {"EphemeralSendBurstMax", c.EphemeralSendBurstMax},
	} {
		if field.value < 0 {
			return fmt.Errorf("link: Config.%s must not be negative, got %d", field.name, field.value)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	c.SyncTimeoutMs = cmp.Or(c.SyncTimeoutMs, SyncTimeoutMsDefault)
	c.SilenceTimeoutMs = cmp.Or(c.SilenceTimeoutMs, SilenceTimeoutMsDefault)
	c.PulseAfterMs = cmp.Or(c.PulseAfterMs, PulseAfterMsDefault)
	c.ReconnectDelayMaxMs = cmp.Or(c.ReconnectDelayMaxMs, ReconnectDelayMaxMsDefault)
	c.PendingInputsMax = cmp.Or(c.PendingInputsMax, PendingInputsMaxDefault)
	c.SendRatePerSecond = cmp.Or(c.SendRatePerSecond, SendRatePerSecondDefault)
	c.SendBurstMax = cmp.Or(c.SendBurstMax, SendBurstMaxDefault)
	c.EphemeralSendRatePerSecond = cmp.Or(c.EphemeralSendRatePerSecond, EphemeralSendRatePerSecondDefault)
	c.EphemeralSendBurstMax = cmp.Or(c.EphemeralSendBurstMax, EphemeralSendBurstMaxDefault)
	c.Join.User = c.user()
}

func (c *Config) user() json.RawMessage {
	if c.Join.User != nil {
		return c.Join.User
	}
	return json.RawMessage(`"` + c.ViewID + `"`)
}

func validViewID(id string) bool {
	if len(id) == 0 || len(id) > ViewIDBytesMax {
		return false
	}
	for _, r := range id {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}
