package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3";
// without it, versionString reads what the Go toolchain recorded.
var version = ""

// versionString describes this build: the version (from -ldflags, or the
// module version when installed with go install), the source revision and
// whether the tree had uncommitted changes, the revision's time (both only
// when the toolchain recorded them: -buildvcs), and the Go version and
// platform. A binary built from a checkout prints e.g.
//
//	metronome v0.0.0-20261202094414-41cd58b63bc7 2026-12-02T09:44:14Z go1.26.8 linux/amd64
func versionString() string {
	parts := []string{"metronome"}
	info, ok := debug.ReadBuildInfo()
	switch {
	case version != "":
		parts = append(parts, version)
	case ok && info.Main.Version != "":
		parts = append(parts, info.Main.Version)
	default:
		parts = append(parts, "(unknown)")
	}
	if ok {
		settings := map[string]string{}
		for _, setting := range info.Settings {
			settings[setting.Key] = setting.Value
		}
		if revision := settings["vcs.revision"]; revision != "" {
			if len(revision) > 12 {
				revision = revision[:12]
			}
			if settings["vcs.modified"] == "true" {
				revision += "+dirty"
			}
			if !strings.Contains(parts[1], revision) { // a pseudo-version names it already
				parts = append(parts, revision)
			}
		}
		if at := settings["vcs.time"]; at != "" {
			parts = append(parts, at)
		}
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return strings.Join(parts, " ")
}
