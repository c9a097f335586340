package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/metronome-sync/metronome/server"
)

// defaultAdminAddr is where serve listens for the operator by default
// (docs/operations.md, "Admin listener and inspector"): loopback only,
// the port after the public default's.
const defaultAdminAddr = "127.0.0.1:8889"

// adminOff is the --admin-addr value that turns the admin listener off.
const adminOff = "off"

// adminReadHeaderTimeout bounds reading a request's headers on the admin
// listener. There is no write timeout: a CPU profile or trace streams for
// as long as the request asks (?seconds=).
const adminReadHeaderTimeout = 10 * time.Second

// adminShutdownTimeout bounds the wait for the admin listener's requests
// (a profile being written) when serve stops.
const adminShutdownTimeout = time.Second

// adminSetting is where the admin listener listens.
type adminSetting struct {
	// addr is "host:port", or "" when the listener is off.
	addr string
	// explicit: the operator chose addr (a flag or its environment
	// variable); failing to listen on it is then an error, while the
	// default address may be taken by another server on the machine.
	explicit bool
	// flag names the flag that set addr, for messages.
	flag string
}

// adminSettings resolves --admin-addr and its deprecated alias
// --debug-addr (which, when set, is the admin address).
func adminSettings(flags *flag.FlagSet, adminAddr, debugAddr string) (adminSetting, error) {
	setting := adminSetting{addr: adminAddr, flag: "--admin-addr", explicit: isSet(flags, "admin-addr", "METRONOME_ADMIN_ADDR")}
	if debugAddr != "" {
		if setting.explicit && debugAddr != adminAddr {
			return adminSetting{}, fmt.Errorf("--debug-addr %s and --admin-addr %s: --debug-addr is the deprecated name of --admin-addr; set only --admin-addr", debugAddr, adminAddr)
		}
		setting = adminSetting{addr: debugAddr, flag: "--debug-addr", explicit: true}
	}
	if setting.addr == adminOff {
		setting.addr = ""
	}
	if setting.addr != "" {
		if _, _, err := net.SplitHostPort(setting.addr); err != nil {
			return adminSetting{}, fmt.Errorf("%s %q: want host:port (e.g. %s), or %s: %w", setting.flag, setting.addr, defaultAdminAddr, adminOff, err)
		}
	}
	return setting, nil
}

// isSet reports whether a flag was given on the command line or by its
// environment variable.
func isSet(flags *flag.FlagSet, name, variable string) bool {
	set := false
	flags.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	_, inEnvironment := os.LookupEnv(variable)
	return set || inEnvironment
}

// listenAdmin opens the admin listener's socket; nil when it is off, or
// (with a warning) when the default address is taken.
func listenAdmin(setting adminSetting, logger *slog.Logger) (net.Listener, error) {
	if setting.addr == "" {
		logger.Info("admin listener off: no inspector, /sessions or profiler (--admin-addr " + adminOff + ")")
		return nil, nil
	}
	listener, err := net.Listen("tcp", setting.addr)
	switch {
	case err != nil && !setting.explicit:
		logger.Warn("admin listener not started: its default address is taken (another server on this machine?); choose one with --admin-addr, or turn it off with --admin-addr "+adminOff,
			"addr", setting.addr, "err", err)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%s %s: %w (choose another address, or %s)", setting.flag, setting.addr, err, adminOff)
	}
	if setting.flag == "--debug-addr" {
		logger.Warn("--debug-addr is deprecated: it is the admin listener's address, --admin-addr")
	}
	if !server.IsLoopbackAddr(setting.addr) {
		logger.Warn("the admin listener is not on a loopback address and has no authentication: whoever reaches it can read every session, its members and their addresses, and profile the server",
			"addr", listener.Addr().String())
	}
	return listener, nil
}

// serveAdmin serves the admin handler on listener (nil: does nothing) and
// returns a function that stops it.
func serveAdmin(listener net.Listener, handler http.Handler, logger *slog.Logger) (stop func()) {
	if listener == nil {
		return func() {}
	}
	admin := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelDebug),
	}
	go func() {
		if err := admin.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("admin listener stopped", "err", err)
		}
	}()
	url := "http://" + listener.Addr().String() + "/"
	logger.Info("inspector at "+url, "admin_addr", listener.Addr().String(), "serves", "the inspector, /sessions, /metrics, /debug/pprof/")
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
		defer cancel()
		if admin.Shutdown(ctx) != nil {
			admin.Close()
		}
	}
}
