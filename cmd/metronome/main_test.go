package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpTeachesTheFlags(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("serve --help exited %d", code)
	}
	help := stderr.String()
	for _, want := range []string{"--addr", "--data-dir", "--durable", "--web-root", "METRONOME_ADDR", "box:", "127.0.0.1:8888"} {
		if !strings.Contains(help, strings.TrimPrefix(want, "-")) {
			t.Errorf("serve --help does not mention %q:\n%s", want, help)
		}
	}
}

func TestUnknownCommandAndFlag(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, stderr %q", code, stderr.String())
	}
	stderr.Reset()
	if code := run([]string{"serve", "--no-such-flag"}, &stdout, &stderr); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	stderr.Reset()
	if code := run([]string{"serve", "--log-level", "loud", "--data-dir", ""}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--log-level") {
		t.Errorf("bad log level: exit %d, stderr %q", code, stderr.String())
	}
}

func TestVersion(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "metronome ") {
		t.Errorf("version: exit %d, stdout %q", code, stdout.String())
	}
}
