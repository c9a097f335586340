package main

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/server"
)

// authFlags are serve's access-control flags (docs/operations.md, "Access
// control").
type authFlags struct {
	// mode is --auth: "none", "token", or "" (not given: none on a
	// loopback address, refused elsewhere).
	mode string
	// keysFile is --auth-keys; secretFile is --auth-secret-file, a
	// private key whose tokens are accepted (the simplest setup: the same
	// file mints them with metronome token --auth-secret-file).
	keysFile, secretFile string
	// insecure is --insecure-no-auth.
	insecure bool
}

// errAuthRequired explains why serve refuses to start without access
// control on an address others can reach, and what to do.
func errAuthRequired(addr string) error {
	return fmt.Errorf(`--addr %s is not a loopback address, so anyone who can reach it could join any session, disrupt it and write files.
Start it with access control:
    metronome token keygen --out signing.pem >> keys.txt
    metronome serve --addr %s --auth token --auth-keys keys.txt
and give clients a token in their box URL (metronome token mint; docs/operations.md, "Access control").
Only on a network you trust entirely: --auth none --insecure-no-auth`, addr, addr)
}

// authSettings turns the flags into the server's access control. The
// rule that an open server must listen on loopback only is the server's
// (server.Config.Validate); it is checked here first so that the refusal
// speaks of flags.
func authSettings(addr string, flags authFlags, warnings io.Writer) (server.AuthMode, *auth.Verifier, error) {
	modeName := flags.mode
	if modeName == "" {
		modeName = "none" // allowed below on loopback only
	}
	mode, err := server.ParseAuthMode(modeName)
	if err != nil {
		return 0, nil, fmt.Errorf("--auth: %w", err)
	}
	if mode == server.AuthNone {
		switch {
		case flags.keysFile != "" || flags.secretFile != "":
			return 0, nil, errors.New("--auth-keys and --auth-secret-file are only read with --auth token; with --auth none nothing is checked")
		case !server.IsLoopbackAddr(addr) && !flags.insecure:
			return 0, nil, errAuthRequired(addr)
		}
		return mode, nil, nil
	}
	if flags.insecure {
		return 0, nil, errors.New("--insecure-no-auth goes with --auth none only")
	}
	if flags.keysFile == "" && flags.secretFile == "" {
		return 0, nil, errors.New("--auth token needs --auth-secret-file FILE (a signing key from metronome token keygen) or --auth-keys FILE (the public keys and static tokens to accept) (docs/operations.md, \"Access control\")")
	}
	verifier, err := loadVerifier(flags, warnings)
	if err != nil {
		return 0, nil, err
	}
	return mode, verifier, nil
}

// loadVerifier reads the keys file and the signing key of --auth-secret-file
// (whose public key is accepted under its default key id).
func loadVerifier(flags authFlags, warnings io.Writer) (*auth.Verifier, error) {
	var lines []byte
	if flags.keysFile != "" {
		data, err := readKeysFile(flags.keysFile, warnings)
		if err != nil {
			return nil, err
		}
		lines = append(data, '\n')
	}
	if flags.secretFile != "" {
		private, err := readPrivateKey(flags.secretFile, "metronome serve", warnings)
		if err != nil {
			return nil, fmt.Errorf("--auth-secret-file: %w", err)
		}
		public := private.Public().(ed25519.PublicKey)
		lines = append(lines, auth.KeyLine(auth.DefaultKeyID(public), public)+"\n"...)
	}
	verifier, err := auth.ParseKeys(lines)
	if err != nil {
		return nil, fmt.Errorf("--auth-keys %s: %w", flags.keysFile, err)
	}
	return verifier, nil
}

// readKeysFile reads the keys file, bounded, checks that it parses, and
// warns (to warnings) when a file with static tokens is readable by others.
func readKeysFile(path string, warnings io.Writer) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--auth-keys: %w", err)
	}
	if info.Size() > auth.KeysFileBytesMax {
		return nil, fmt.Errorf("--auth-keys %s: %d bytes, more than KeysFileBytesMax (%d)", path, info.Size(), auth.KeysFileBytesMax)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--auth-keys: %w", err)
	}
	verifier, err := auth.ParseKeys(data)
	if err != nil {
		return nil, fmt.Errorf("--auth-keys %s: %w", path, err)
	}
	if verifier.StaticTokens() > 0 && info.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(warnings, "warning: --auth-keys %s holds static tokens and is readable by others (mode %04o); chmod 600 it\n", path, info.Mode().Perm())
	}
	return data, nil
}

// logAccessControl says at start-up who may use the server.
func logAccessControl(logger *slog.Logger, config server.Config, keysFile string) {
	switch {
	case config.Auth == server.AuthToken:
		logger.Info("access control: tokens required (--auth token)", "keys_file", keysFile,
			"key_ids", config.AuthVerifier.KeyIDs(), "static_tokens", config.AuthVerifier.StaticTokens())
	case !server.IsLoopbackAddr(config.Addr):
		logger.Warn("access control is OFF on an address others can reach (--auth none --insecure-no-auth): anyone may join any session and write files", "addr", config.Addr)
	default:
		logger.Info("access control: none (--auth none, loopback only)")
	}
}

// reloadKeys re-reads the keys file on SIGHUP: a new key is accepted, a
// removed one refused, from then on; a broken file keeps the old keys.
func reloadKeys(logger *slog.Logger, srv *server.Server, access authFlags) {
	keysFile := access.keysFile
	var warnings warningLog
	verifier, err := loadVerifier(access, &warnings)
	if err == nil {
		err = srv.SetAuthVerifier(verifier)
	}
	if err != nil {
		logger.Error("SIGHUP: keys file not reloaded; the previous keys stay in force", "err", err)
		return
	}
	warnings.log(logger)
	logger.Info("SIGHUP: keys file reloaded", "keys_file", keysFile, "key_ids", verifier.KeyIDs(), "static_tokens", verifier.StaticTokens())
}

// warningLog collects warnings to log them.
type warningLog struct{ text []byte }

func (w *warningLog) Write(p []byte) (int, error) {
	w.text = append(w.text, p...)
	return len(p), nil
}

func (w *warningLog) log(logger *slog.Logger) {
	if len(w.text) > 0 {
		logger.Warn(string(w.text))
	}
}
