package reflector_test

import (
	"testing"

	"github.com/metronome-sync/metronome/reflector"
)

func TestConfigWithDefaultsFillsEachZeroField(t *testing.T) {
	if got := (reflector.Config{}).WithDefaults(); got != reflector.DefaultConfig() {
		t.Errorf("zero Config.WithDefaults() = %+v, want DefaultConfig() %+v", got, reflector.DefaultConfig())
	}

	// Setting one field keeps the defaults of all the others.
	got := reflector.Config{FramesPerSecondMax: 300, FramesBurstMax: 600, ReflectorName: "r"}.WithDefaults()
	want := reflector.DefaultConfig()
	want.FramesPerSecondMax, want.FramesBurstMax, want.ReflectorName = 300, 600, "r"
	if got != want {
		t.Errorf("WithDefaults() = %+v, want %+v", got, want)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Off asks for 0 where 0 means off (a zero field would take the default).
	got = reflector.Config{InactivityTimeoutMs: reflector.Off, NeverJoinedTimeoutMs: reflector.Off, MessagesSnapshotReserve: reflector.Off}.WithDefaults()
	if got.InactivityTimeoutMs != 0 || got.NeverJoinedTimeoutMs != 0 || got.MessagesSnapshotReserve != 0 {
		t.Errorf("Off gave InactivityTimeoutMs %d, NeverJoinedTimeoutMs %d, MessagesSnapshotReserve %d; want 0, 0, 0",
			got.InactivityTimeoutMs, got.NeverJoinedTimeoutMs, got.MessagesSnapshotReserve)
	}
	if got.WatchdogIntervalMs != reflector.DefaultConfig().WatchdogIntervalMs {
		t.Errorf("WatchdogIntervalMs = %d, want the default", got.WatchdogIntervalMs)
	}
	if err := got.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	// Other negative values are kept, for Validate to report.
	got = reflector.Config{InactivityTimeoutMs: -5}.WithDefaults()
	if err := got.Validate(); err == nil {
		t.Errorf("InactivityTimeoutMs -5: Validate accepted it")
	}
}
