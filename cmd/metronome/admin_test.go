package main

import (
	"bytes"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
)

// adminFlags parses args with serve's two admin flags and resolves them.
func adminFlags(t *testing.T, args ...string) (adminSetting, error) {
	t.Helper()
	flags := flag.NewFlagSet("serve", flag.ContinueOnError)
	adminAddr := flags.String("admin-addr", env("METRONOME_ADMIN_ADDR", defaultAdminAddr), "")
	debugAddr := flags.String("debug-addr", env("METRONOME_DEBUG_ADDR", ""), "")
	if err := flags.Parse(args); err != nil {
		t.Fatal(err)
	}
	return adminSettings(flags, *adminAddr, *debugAddr)
}

func TestAdminSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want adminSetting
	}{
		{nil, adminSetting{addr: defaultAdminAddr, flag: "--admin-addr"}},
		{[]string{"--admin-addr", "127.0.0.1:7000"}, adminSetting{addr: "127.0.0.1:7000", flag: "--admin-addr", explicit: true}},
		{[]string{"--admin-addr", "off"}, adminSetting{flag: "--admin-addr", explicit: true}},
		{[]string{"--admin-addr", ""}, adminSetting{flag: "--admin-addr", explicit: true}},
		{[]string{"--debug-addr", "127.0.0.1:6060"}, adminSetting{addr: "127.0.0.1:6060", flag: "--debug-addr", explicit: true}},
		{[]string{"--debug-addr", "127.0.0.1:6060", "--admin-addr", "127.0.0.1:6060"}, adminSetting{addr: "127.0.0.1:6060", flag: "--debug-addr", explicit: true}},
	} {
		if got, err := adminFlags(t, tc.args...); err != nil || got != tc.want {
			t.Errorf("%q: %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	t.Setenv("METRONOME_ADMIN_ADDR", "127.0.0.1:7001")
	if got, err := adminFlags(t); err != nil || !got.explicit || got.addr != "127.0.0.1:7001" {
		t.Errorf("METRONOME_ADMIN_ADDR: %+v, %v; want it, explicit", got, err)
	}
	for _, args := range [][]string{
		{"--admin-addr", "8889"},
		{"--debug-addr", "127.0.0.1:6060", "--admin-addr", "127.0.0.1:7000"},
	} {
		if _, err := adminFlags(t, args...); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
}

// TestListenAdmin: a taken default address is a warning, a taken chosen
// one an error; a non-loopback address is served with a warning.
func TestListenAdmin(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	var log bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&log, nil))

	listener, err := listenAdmin(adminSetting{addr: taken.Addr().String(), flag: "--admin-addr"}, logger)
	if listener != nil || err != nil || !strings.Contains(log.String(), "level=WARN") || !strings.Contains(log.String(), "--admin-addr") {
		t.Errorf("taken default address: %v, %v, log %q; want a warning naming --admin-addr and no listener", listener, err, log.String())
	}
	_, err = listenAdmin(adminSetting{addr: taken.Addr().String(), flag: "--admin-addr", explicit: true}, logger)
	if err == nil || !strings.Contains(err.Error(), "--admin-addr "+taken.Addr().String()) {
		t.Errorf("taken chosen address: %v, want an error naming the flag and address", err)
	}
	if listener, err := listenAdmin(adminSetting{flag: "--admin-addr", explicit: true}, logger); listener != nil || err != nil {
		t.Errorf("off: %v, %v", listener, err)
	}

	log.Reset()
	listener, err = listenAdmin(adminSetting{addr: "0.0.0.0:0", flag: "--admin-addr", explicit: true}, logger)
	if err != nil {
		t.Fatal(err)
	}
	listener.Close()
	if !strings.Contains(log.String(), "not on a loopback address") {
		t.Errorf("0.0.0.0: log %q, want a warning", log.String())
	}
}

func TestServeAdmin(t *testing.T) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	handler := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "inspector") })
	stop := serveAdmin(listener, handler, slog.New(slog.NewTextHandler(&log, nil)))
	url := "http://" + listener.Addr().String() + "/"
	if !strings.Contains(log.String(), "inspector at "+url) {
		t.Errorf("log %q does not name the inspector's URL %s", log.String(), url)
	}
	response, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	if string(body) != "inspector" {
		t.Errorf("GET %s: %q", url, body)
	}
	stop()
	if _, err := http.Get(url); err == nil {
		t.Errorf("the admin listener still answers after stop")
	}
	serveAdmin(nil, handler, slog.New(slog.DiscardHandler))() // off: nothing to stop
}

// TestServeAdminAddrErrors: a malformed address is a usage error; a taken
// chosen address stops serve before it starts.
func TestServeAdminAddrErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--data-dir", "", "--admin-addr", "nonsense"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--admin-addr") {
		t.Errorf("--admin-addr nonsense: exit %d, stderr %q; want 2 naming the flag", code, stderr.String())
	}
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	stderr.Reset()
	args := []string{"serve", "--data-dir", "", "--addr", "127.0.0.1:0", "--admin-addr", taken.Addr().String(), "--log-level", "error"}
	if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "--admin-addr "+taken.Addr().String()) {
		t.Errorf("taken --admin-addr: exit %d, stderr %q; want 1 naming the flag and address", code, stderr.String())
	}
}

func TestHelpTeachesTheAdminListener(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--help"}, &stdout, &stderr); code != 0 {
		t.Fatalf("serve --help exited %d", code)
	}
	for _, want := range []string{"-admin-addr", defaultAdminAddr, "METRONOME_ADMIN_ADDR", "inspector", "/debug/pprof/", "-debug-addr", "deprecated"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve --help does not mention %q", want)
		}
	}
}
