package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/auth"
	"github.com/metronome-sync/metronome/server"
)

// TestServeRefusesToStartOpenOnANonLoopbackAddress: without access
// control, serve only listens on loopback; elsewhere it exits with a
// message that says why and what to do, before opening the data dir.
func TestServeRefusesToStartOpenOnANonLoopbackAddress(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{
		{"serve", "--addr", "0.0.0.0:0", "--data-dir", dataDir},
		{"serve", "--addr", ":0", "--data-dir", dataDir, "--auth", "none"},
		{"serve", "--addr", "192.0.2.1:8888", "--data-dir", dataDir},
	} {
		var stdout, stderr bytes.Buffer
		code := run(args, &stdout, &stderr)
		message := stderr.String()
		if code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, code, message)
		}
		for _, want := range []string{"is not a loopback address", "--auth token --auth-keys", "metronome token keygen", "--auth none --insecure-no-auth"} {
			if !strings.Contains(message, want) {
				t.Errorf("%v: the refusal does not say %q:\n%s", args, want, message)
			}
		}
	}
	if _, err := os.Stat(dataDir); !os.IsNotExist(err) {
		t.Errorf("the refused serve created its data dir (%v)", err)
	}
}

// TestServeAuthFlags: the combinations of --auth, --auth-keys and
// --insecure-no-auth that serve accepts, and the refusals, each naming the
// flag.
func TestServeAuthFlags(t *testing.T) {
	dir := t.TempDir()
	keysFile := filepath.Join(dir, "keys.txt")
	var keygenOut, keygenErr bytes.Buffer
	if code := run([]string{"token", "keygen", "--out", filepath.Join(dir, "signing.pem"), "--kid", "main"}, &keygenOut, &keygenErr); code != 0 {
		t.Fatalf("keygen: %d %s", code, keygenErr.String())
	}
	if err := os.WriteFile(keysFile, keygenOut.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	brokenKeys := filepath.Join(dir, "broken.txt")
	if err := os.WriteFile(brokenKeys, []byte("# ok\nmain rsa AAAA\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr  string
		flags authFlags
		mode  server.AuthMode
		error string
	}{
		{"127.0.0.1:8888", authFlags{}, server.AuthNone, ""},
		{"localhost:8888", authFlags{mode: "none"}, server.AuthNone, ""},
		{"0.0.0.0:8888", authFlags{mode: "none", insecure: true}, server.AuthNone, ""},
		{"0.0.0.0:8888", authFlags{insecure: true}, server.AuthNone, ""},
		{"0.0.0.0:8888", authFlags{mode: "token", keysFile: keysFile}, server.AuthToken, ""},
		{"127.0.0.1:8888", authFlags{mode: "token", keysFile: keysFile}, server.AuthToken, ""},
		{"0.0.0.0:8888", authFlags{mode: "token"}, 0, "--auth token needs --auth-secret-file FILE"},
		{"0.0.0.0:8888", authFlags{mode: "token", secretFile: filepath.Join(dir, "signing.pem")}, server.AuthToken, ""},
		{"0.0.0.0:8888", authFlags{mode: "token", secretFile: filepath.Join(dir, "signing.pem"), keysFile: keysFile}, server.AuthToken, ""},
		{"0.0.0.0:8888", authFlags{mode: "token", keysFile: keysFile, insecure: true}, 0, "--insecure-no-auth goes with --auth none only"},
		{"127.0.0.1:8888", authFlags{mode: "none", keysFile: keysFile}, 0, "--auth-keys and --auth-secret-file are only read with --auth token"},
		{"127.0.0.1:8888", authFlags{mode: "password"}, 0, `--auth: "password" is not an auth mode`},
		{"0.0.0.0:8888", authFlags{mode: "token", keysFile: filepath.Join(dir, "missing.txt")}, 0, "--auth-keys: stat"},
		{"0.0.0.0:8888", authFlags{mode: "token", keysFile: brokenKeys}, 0, "broken.txt: keys file line 2: key \"main\": algorithm must be ed25519"},
	} {
		mode, verifier, err := authSettings(tc.addr, tc.flags, &bytes.Buffer{})
		switch {
		case tc.error != "" && (err == nil || !strings.Contains(err.Error(), tc.error)):
			t.Errorf("%s %+v: %v, want an error saying %q", tc.addr, tc.flags, err, tc.error)
		case tc.error == "" && err != nil:
			t.Errorf("%s %+v: %v", tc.addr, tc.flags, err)
		case tc.error == "" && (mode != tc.mode || (mode == server.AuthToken) != (verifier != nil)):
			t.Errorf("%s %+v: mode %v, verifier %v; want %v", tc.addr, tc.flags, mode, verifier != nil, tc.mode)
		}
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"serve", "--data-dir", "", "--auth", "token"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), "--auth-keys") {
		t.Errorf("serve --auth token without keys: exit %d, %q", code, stderr.String())
	}
}

// TestKeygenAndMint: the key line that keygen prints verifies the tokens
// that mint signs with the key it wrote, and mint prints the box URL.
func TestKeygenAndMint(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.pem")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"token", "keygen", "--out", keyFile}, &stdout, &stderr); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr.String())
	}
	info, err := os.Stat(keyFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, mode %v; want 0600", err, info.Mode().Perm())
	}
	keyLine := stdout.String()
	verifier, err := auth.ParseKeys([]byte(keyLine))
	if err != nil || strings.Count(keyLine, "\n") != 1 {
		t.Fatalf("keygen printed %q, not one keys-file line: %v", keyLine, err)
	}
	before, _ := os.ReadFile(keyFile)
	stderr.Reset()
	if code := run([]string{"token", "keygen", "--out", keyFile}, &bytes.Buffer{}, &stderr); code == 0 || !strings.Contains(stderr.String(), "never overwrites") {
		t.Errorf("keygen over an existing key: exit %d, %q", code, stderr.String())
	}
	if after, _ := os.ReadFile(keyFile); !bytes.Equal(before, after) {
		t.Errorf("keygen changed an existing key file")
	}

	now := time.Now()
	stdout.Reset()
	stderr.Reset()
	code := tokenMint([]string{"--key", keyFile, "--app", "com.example.chat", "--app", "com.example.games.*,org.x",
		"--rights", "join,read", "--ttl", "2h", "--sub", "alice", "--server", "https://sync.example.com/base"}, &stdout, &stderr, now)
	if code != 0 {
		t.Fatalf("mint: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("mint printed %q, want the token and the box URL", stdout.String())
	}
	token := lines[0]
	if lines[1] != "https://sync.example.com/base/k/"+token+"/" {
		t.Errorf("box URL %q", lines[1])
	}
	claims, err := verifier.Verify(token, now)
	if err != nil {
		t.Fatalf("the minted token does not verify with keygen's line: %v", err)
	}
	if strings.Join(claims.Apps, " ") != "com.example.chat com.example.games.* org.x" || !claims.Grants(auth.RightRead) || claims.Grants(auth.RightUpload) ||
		claims.Subject != "alice" || claims.Expires != now.Add(2*time.Hour).Unix() {
		t.Errorf("claims %+v", claims)
	}
	if _, err := verifier.Verify(token, now.Add(2*time.Hour)); err == nil {
		t.Errorf("the token is still valid after --ttl")
	}
}

// TestSecretFileNames: the settled names work: serve --auth-secret-file FILE
// accepts the tokens that metronome token --auth-secret-file FILE --app
// APPID prints, signed with the same key.
func TestSecretFileNames(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.pem")
	var stdout, stderr bytes.Buffer
	if code := run([]string{"token", "keygen", "--out", secret}, &stdout, &stderr); code != 0 {
		t.Fatalf("keygen: exit %d: %s", code, stderr.String())
	}
	stdout.Reset()
	if code := run([]string{"token", "--auth-secret-file", secret, "--app", "com.example.chat", "--ttl", "1h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("token --auth-secret-file: exit %d: %s", code, stderr.String())
	}
	token := strings.SplitN(stdout.String(), "\n", 2)[0]
	_, verifier, err := authSettings("0.0.0.0:8888", authFlags{mode: "token", secretFile: secret}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := verifier.Verify(token, time.Now())
	if err != nil || !claims.AllowsApp("com.example.chat") || !claims.Grants(auth.RightJoin) {
		t.Errorf("the token from token --auth-secret-file: %+v, %v; want it accepted for com.example.chat with join", claims, err)
	}
}

func TestMintRefusals(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "signing.pem")
	if code := run([]string{"token", "keygen", "--out", keyFile}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
		t.Fatal("keygen failed")
	}
	notAKey := filepath.Join(dir, "not-a-key")
	os.WriteFile(notAKey, []byte("hello"), 0o600)
	for _, tc := range []struct {
		args []string
		text string
	}{
		{[]string{"--app", "a.b"}, "--key FILE is required"},
		{[]string{"--key", keyFile}, "--app is required"},
		{[]string{"--key", keyFile, "--app", "a b"}, "--app: apps[0]: must be an appId"},
		{[]string{"--key", keyFile, "--app", "a.b", "--rights", "join,admin"}, "--rights: rights[1]: must be one of join, upload, read"},
		{[]string{"--key", keyFile, "--app", "a.b", "--ttl", "0s"}, "--ttl must be in (0, 8784h0m0s], got 0s"},
		{[]string{"--key", keyFile, "--app", "a.b", "--ttl", "9000h"}, "--ttl must be in"},
		{[]string{"--key", notAKey, "--app", "a.b"}, "want a PEM block"},
		{[]string{"--key", filepath.Join(dir, "missing"), "--app", "a.b"}, "--key: stat"},
		{[]string{"--key", keyFile, "--app", "a.b", "--kid", "bad kid"}, "kid: must be"},
		{[]string{"--key", keyFile, "--app", "a.b", "--server", "sync.example.com"}, "--server: \"sync.example.com\" is not a base URL"},
	} {
		var stdout, stderr bytes.Buffer
		if code := tokenMint(tc.args, &stdout, &stderr, time.Now()); code != 2 || !strings.Contains(stderr.String(), tc.text) || stdout.Len() != 0 {
			t.Errorf("mint %v: exit %d, stdout %q, stderr %q; want 2 saying %q", tc.args, code, stdout.String(), stderr.String(), tc.text)
		}
	}
	var stderr bytes.Buffer
	if code := tokenMint([]string{"--key", keyFile, "--app", "a.b", "--rights", "join,upload"}, &bytes.Buffer{}, &stderr, time.Now()); code != 0 || !strings.Contains(stderr.String(), "nobody could read what this token uploads") {
		t.Errorf("upload without read: exit %d, %q; want a warning", code, stderr.String())
	}
}

func TestTokenHelp(t *testing.T) {
	for _, args := range [][]string{{"token", "--help"}, {"help", "token"}} {
		var stdout, stderr bytes.Buffer
		if code := run(args, &stdout, &stderr); code != 0 {
			t.Errorf("%v: exit %d", args, code)
		}
		for _, want := range []string{"keygen --out FILE", "mint --key FILE", `box: "https://sync.example.com/k/<token>/"`, "--auth-keys", "SIGHUP", "join", "upload", "read"} {
			if !strings.Contains(stderr.String(), want) {
				t.Errorf("%v does not mention %q", args, want)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	run([]string{"help"}, &stdout, &stderr)
	if !strings.Contains(stdout.String(), "metronome token mint") {
		t.Errorf("metronome help does not list the token command:\n%s", stdout.String())
	}
	stderr.Reset()
	if code := run([]string{"token", "frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown subcommand "frobnicate"`) {
		t.Errorf("token frobnicate: exit %d, %q", code, stderr.String())
	}
	stderr.Reset()
	run([]string{"serve", "--help"}, &stdout, &stderr)
	for _, want := range []string{"-auth", "-auth-keys", "-insecure-no-auth", "/k/<token>/"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("serve --help does not mention %q", want)
		}
	}
}
