// Package clock holds the time findings; durations are allowed.
package clock

import (
	"time"
	. "time"
)

// Config keeps durations, which are plain integers with units.
type Config struct {
	Tick    time.Duration
	Timeout Duration
}

func defaults() Config {
	timeout, _ := time.ParseDuration("1m")
	return Config{Tick: 50 * time.Millisecond, Timeout: timeout + time.Second + Hour}
}

func clocks() time.Duration {
	start := time.Now()                 // want `time.Now reads the local wall clock, which differs on every replica; use the session time`
	_ = Now()                           // want `time.Now reads the local wall clock`
	time.Sleep(time.Millisecond)        // want `time.Sleep waits in real time.*schedule a future message in session time`
	timer := time.NewTimer(time.Second) // want `time.NewTimer waits in real time`
	_ = timer
	<-time.After(time.Second)              // want `time.After waits in real time` `channel receive`
	time.AfterFunc(time.Second, func() {}) // want `time.AfterFunc waits in real time`
	_ = time.Unix(0, 0)                    // want `time.Unix depends on wall-clock time, time zones or the local clock`
	return time.Since(start)               // want `time.Since reads the local wall clock`
}

func values(stamp time.Time) int64 { // want `time.Time depends on wall-clock time`
	return stamp.UnixMilli()
}
