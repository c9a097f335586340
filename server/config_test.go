package server

import (
	"testing"
	"time"

	"github.com/metronome-sync/metronome/reflector"
	"github.com/metronome-sync/metronome/store/memstore"
)

// TestConfigReflectorFieldsDefaultIndividually: setting one reflector limit
// keeps the defaults of the others (it used to zero them all, failing
// Validate or running with zero limits).
func TestConfigReflectorFieldsDefaultIndividually(t *testing.T) {
	config := Config{Store: memstore.New(), Reflector: reflector.Config{FramesPerSecondMax: 300, FramesBurstMax: 600}}
	config.fillDefaults()
	want := reflector.DefaultConfig()
	want.FramesPerSecondMax, want.FramesBurstMax = 300, 600
	if config.Reflector != want {
		t.Errorf("Reflector after fillDefaults = %+v, want %+v", config.Reflector, want)
	}
	if err := config.Validate(); err != nil {
		t.Errorf("Validate: %v", err)
	}

	var zero Config
	zero.fillDefaults()
	if zero.Reflector != reflector.DefaultConfig() {
		t.Errorf("zero Reflector after fillDefaults = %+v, want DefaultConfig()", zero.Reflector)
	}
}

// TestConfigCoalesceMax: the zero value means DefaultCoalesceMax,
// CoalesceOff means off; both are valid.
func TestConfigCoalesceMax(t *testing.T) {
	for _, tc := range []struct {
		set, want time.Duration
	}{
		{0, DefaultCoalesceMax},
		{CoalesceOff, CoalesceOff},
		{5 * time.Millisecond, 5 * time.Millisecond},
	} {
		config := Config{Store: memstore.New(), CoalesceMax: tc.set}
		config.fillDefaults()
		if config.CoalesceMax != tc.want {
			t.Errorf("CoalesceMax %s after fillDefaults = %s, want %s", tc.set, config.CoalesceMax, tc.want)
		}
		if err := config.Validate(); err != nil {
			t.Errorf("CoalesceMax %s: Validate: %v", tc.set, err)
		}
	}
	config := Config{Store: memstore.New(), CoalesceMax: -time.Millisecond}
	config.fillDefaults()
	if config.Validate() == nil {
		t.Errorf("CoalesceMax -1ms: Validate accepted it")
	}
}
