package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/metronome-sync/metronome/auth"
)

const tokenUsage = `Usage:
  metronome token keygen --out FILE [--kid ID]
  metronome token mint --key FILE --app APP [--rights join,upload,read] [--ttl 24h] [flags]
  metronome token --auth-secret-file FILE --app APP [--ttl 24h]    (the same as mint)

The simplest setup is one signing key for both the server and the tokens:

  metronome token keygen --out secret.pem
  metronome serve --addr 0.0.0.0:8888 --auth token --auth-secret-file secret.pem
  metronome token --auth-secret-file secret.pem --app com.example.chat --ttl 12h

Access tokens for a server started with --auth token (docs/operations.md,
"Access control"). A Croquet or Multisynq app carries its token in the box
URL, and needs no other change:

  Session.join({box: "https://sync.example.com/k/<token>/", appId: ..., ...})

1. Create a signing key once. The private key goes to FILE (mode 0600; keep
   it secret: whoever has it can mint tokens). The line for the server's keys
   file is printed on stdout:

     metronome token keygen --out signing.pem >> keys.txt
     metronome serve --addr 0.0.0.0:8888 --auth token --auth-keys keys.txt

2. Mint a token for each user or device, from your backend (any Ed25519
   library can do it, see the docs) or with this command. It prints the token,
   then the box URL to use:

     metronome token mint --key signing.pem --app com.example.chat --ttl 12h \
         --server https://sync.example.com/

   The token is valid for the apps given (exact appIds, or "com.example.*"
   for every app under a prefix), grants the rights given, and expires after
   --ttl. join opens a session; upload stores snapshots and persisted data;
   read downloads them. Real clients need all three (the default).

Key rotation: create a new key with another --kid, add its line to the keys
file, reload the server (SIGHUP), mint with the new key, and remove the old
line once the old key's tokens have expired.
`

const tokenKeygenUsage = `Usage: metronome token keygen --out FILE [--kid ID]

Creates an Ed25519 signing key: the private key is written to FILE as PEM
(PKCS #8, mode 0600; an existing FILE is never overwritten), and the line for
the server's keys file ("<kid> ed25519 <public key>") is printed on stdout.

Flags:
`

const tokenMintUsage = `Usage: metronome token mint --key FILE --app APP [flags]

Mints a token signed with the private key in FILE and prints two lines on
stdout: the token, and the box URL to give to Session.join.

Flags:
`

// tokenTTLMax bounds --ttl: a longer-lived credential belongs in the keys
// file as a static token, where it can be seen and withdrawn.
const tokenTTLMax = 366 * 24 * time.Hour

// defaultTokenServer is the --server of mint: the default listen address.
const defaultTokenServer = "http://127.0.0.1:8888/"

func tokenCommand(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, tokenUsage)
		return 2
	}
	if strings.HasPrefix(args[0], "-") && args[0] != "-h" && args[0] != "--help" {
		// metronome token --auth-secret-file FILE --app APPID: mint.
		return tokenMint(args, stdout, stderr, time.Now())
	}
	switch args[0] {
	case "keygen":
		return tokenKeygen(args[1:], stdout, stderr)
	case "mint":
		return tokenMint(args[1:], stdout, stderr, time.Now())
	case "help", "-h", "--help":
		fmt.Fprint(stderr, tokenUsage)
		return 0
	}
	fmt.Fprintf(stderr, "metronome token: unknown subcommand %q (want keygen or mint)\n\n%s", args[0], tokenUsage)
	return 2
}

func tokenKeygen(args []string, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("token keygen", flag.ContinueOnError)
	flags.SetOutput(stderr)
	out := flags.String("out", "", "file for the private key (required; created with mode 0600, never overwritten)")
	kid := flags.String("kid", "", `key id for the keys file and the tokens, e.g. "2026-12" (default: derived from the public key)`)
	if code, done := parseFlags(flags, tokenKeygenUsage, args, stderr); done {
		return code
	}
	if *out == "" {
		fmt.Fprintln(stderr, "metronome token keygen: --out FILE is required: where to write the private key")
		return 2
	}
	public, private, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		fmt.Fprintln(stderr, "metronome token keygen: generating the key:", err)
		return 1
	}
	id := *kid
	if id == "" {
		id = auth.DefaultKeyID(public)
	}
	line := auth.KeyLine(id, public)
	if _, err := auth.ParseKeys([]byte(line)); err != nil {
		fmt.Fprintln(stderr, "metronome token keygen: --kid:", err)
		return 2
	}
	if err := writePrivateKey(*out, private); err != nil {
		fmt.Fprintln(stderr, "metronome token keygen:", err)
		return 1
	}
	fmt.Fprintln(stdout, line)
	fmt.Fprintf(stderr, "wrote the private key of key id %q to %s (keep it secret: whoever has it can mint tokens)\n", id, *out)
	fmt.Fprintf(stderr, "add the line printed above to the server's keys file (--auth-keys), then mint tokens with:\n  metronome token mint --key %s --kid %s --app APP\n", *out, id)
	return 0
}

// writePrivateKey creates path with mode 0600 and the PEM key; an
// existing file is an error (a key must never be lost by a typo).
func writePrivateKey(path string, key ed25519.PrivateKey) error {
	data, err := auth.MarshalPrivateKey(key)
	if err != nil {
		return err
	}
	file, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("--out %s exists: keygen never overwrites a key; choose another file", path)
	}
	if err != nil {
		return fmt.Errorf("--out: %w", err)
	}
	if _, err := file.Write(data); err != nil {
		file.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := file.Sync(); err != nil {
		file.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return file.Close()
}

// listFlag is a flag that may be repeated, each value a comma-separated
// list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(value string) error {
	*l = append(*l, value)
	return nil
}

func tokenMint(args []string, stdout, stderr io.Writer, now time.Time) int {
	flags := flag.NewFlagSet("token mint", flag.ContinueOnError)
	flags.SetOutput(stderr)
	keyFile := flags.String("key", "", "private key file from metronome token keygen, or any PEM PKCS #8 Ed25519 key (required)")
	flags.StringVar(keyFile, "auth-secret-file", "", "the same as --key (the serve flag's name)")
	kid := flags.String("kid", "", "key id of the key, as in the keys file (default: derived from the key, as keygen does)")
	var apps listFlag
	flags.Var(&apps, "app", `app the token is for: an appId, "com.example.*" for every app under a prefix, or "*" for any; repeat or separate with commas (required)`)
	rights := flags.String("rights", "join,upload,read", "rights the token grants: join (open sessions), upload (store snapshots and persisted data), read (download them)")
	ttl := flags.Duration("ttl", 24*time.Hour, fmt.Sprintf("how long the token is valid, at most %s; a client keeps its box URL for the whole session, so cover the longest session", tokenTTLMax))
	subject := flags.String("sub", "", "whom the token is for (logged by the server), e.g. a user id")
	serverURL := flags.String("server", defaultTokenServer, "the server's base URL as clients reach it, for the box URL printed")
	if code, done := parseFlags(flags, tokenMintUsage, args, stderr); done {
		return code
	}
	claims, private, err := mintClaims(*keyFile, *kid, apps, *rights, *ttl, *subject, now, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "metronome token mint:", err)
		return 2
	}
	base, err := boxBase(*serverURL)
	if err != nil {
		fmt.Fprintln(stderr, "metronome token mint: --server:", err)
		return 2
	}
	token, err := auth.Mint(private, claims)
	if err != nil {
		fmt.Fprintln(stderr, "metronome token mint:", err)
		return 2
	}
	fmt.Fprintln(stdout, token)
	fmt.Fprintln(stdout, base+"k/"+token+"/")
	fmt.Fprintf(stderr, "token of key %q for %s, granting %s, expires at %s (in %s); use the second line as Session.join's box\n",
		claims.KeyID, strings.Join(claims.Apps, ", "), *rights, claims.ExpiresAt().Format(time.RFC3339), *ttl)
	return 0
}

// mintClaims reads the key and builds the claims of tokenMint.
func mintClaims(keyFile, kid string, apps []string, rights string, ttl time.Duration, subject string, now time.Time, stderr io.Writer) (auth.Claims, ed25519.PrivateKey, error) {
	if keyFile == "" {
		return auth.Claims{}, nil, errors.New("--key FILE is required (create one with: metronome token keygen --out FILE)")
	}
	if len(apps) == 0 {
		return auth.Claims{}, nil, errors.New(`--app is required: the appId the token is for (or "com.example.*")`)
	}
	if ttl <= 0 || ttl > tokenTTLMax {
		return auth.Claims{}, nil, fmt.Errorf("--ttl must be in (0, %s], got %s", tokenTTLMax, ttl)
	}
	parsedApps, err := auth.ParseApps(strings.Join(apps, ","))
	if err != nil {
		return auth.Claims{}, nil, fmt.Errorf("--app: %w", err)
	}
	parsedRights, err := auth.ParseRights(rights)
	if err != nil {
		return auth.Claims{}, nil, fmt.Errorf("--rights: %w", err)
	}
	private, err := readPrivateKey(keyFile, "metronome token mint", stderr)
	if err != nil {
		return auth.Claims{}, nil, fmt.Errorf("--key: %w", err)
	}
	if kid == "" {
		kid = auth.DefaultKeyID(private.Public().(ed25519.PublicKey))
	}
	claims := auth.Claims{KeyID: kid, Apps: parsedApps, Rights: parsedRights, Expires: now.Add(ttl).Unix(), Subject: subject}
	if claims.Grants(auth.RightUpload) && !claims.Grants(auth.RightRead) {
		fmt.Fprintln(stderr, "metronome token mint: warning: --rights has upload but not read: clients download snapshots through their uploader's URL, with its token, so nobody could read what this token uploads")
	}
	return claims, private, nil
}

// readPrivateKey reads a PEM private key file, warning (as command) when
// others may read it. Its errors name the file, not the flag: the caller
// adds the flag.
func readPrivateKey(path, command string, stderr io.Writer) (ed25519.PrivateKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if info.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(stderr, "%s: warning: %s is readable by others (mode %04o); chmod 600 it\n", command, path, info.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	key, err := auth.ParsePrivateKey(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return key, nil
}

// boxBase checks --server and returns it with a trailing "/".
func boxBase(server string) (string, error) {
	parsed, err := url.Parse(server)
	if err != nil || (parsed.Scheme != "http" && parsed.Scheme != "https") || parsed.Host == "" || parsed.RawQuery != "" || parsed.Fragment != "" {
		return "", fmt.Errorf("%q is not a base URL such as https://sync.example.com/", server)
	}
	if !strings.HasSuffix(server, "/") {
		server += "/"
	}
	return server, nil
}
