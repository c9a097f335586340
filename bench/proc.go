package bench

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime/stime in /proc/N/stat;
// it is 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// processSample is one reading of /proc/N.
type processSample struct {
	rssKiB  int64
	cpuTime time.Duration // utime + stime
}

// readProcess reads VmRSS from /proc/pid/status and utime+stime from
// /proc/pid/stat.
func readProcess(pid int) (processSample, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return processSample{}, err
	}
	var sample processSample
	for line := range strings.SplitSeq(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			fields := strings.Fields(rest)
			if len(fields) >= 1 {
				sample.rssKiB, _ = strconv.ParseInt(fields[0], 10, 64)
			}
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return processSample{}, err
	}
	// The command name (field 2) may hold spaces: fields are counted after
	// its closing parenthesis, where field 3 (state) comes first.
	closing := bytes.LastIndexByte(stat, ')')
	if closing < 0 {
		return processSample{}, fmt.Errorf("/proc/%d/stat: no ')' in %q", pid, stat)
	}
	fields := strings.Fields(string(stat[closing+1:]))
	if len(fields) < 13 {
		return processSample{}, fmt.Errorf("/proc/%d/stat: %d fields after the name, want ≥ 13", pid, len(fields))
	}
	utime, errU := strconv.ParseInt(fields[11], 10, 64) // field 14
	stime, errS := strconv.ParseInt(fields[12], 10, 64) // field 15
	if errU != nil || errS != nil {
		return processSample{}, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, fields[11], fields[12])
	}
	sample.cpuTime = time.Duration(utime+stime) * time.Second / clockTicksPerSecond
	return sample, nil
}

// ServerStats is what --pid measures of the server process.
type ServerStats struct {
	PID            int     `json:"pid"`
	RSSEndKiB      int64   `json:"rss_end_kib"`
	RSSPeakKiB     int64   `json:"rss_peak_kib"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUPercentCore float64 `json:"cpu_percent_of_core"`
	WindowSeconds  float64 `json:"window_seconds"`
}
