// Command metronome is the Metronome reflector, file server and web server
// in one binary. Run "metronome help" for the commands.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `metronome — a reflector for replicated computation, wire-compatible with Croquet 2.x.

Usage:
  metronome serve [flags]    run the reflector + file server + web server
  metronome bench [flags]    measure a reflector: latency, loss, server memory and CPU
  metronome bench baseline   run a minimal broadcast server to compare against
  metronome sim [flags]      run the system under faults in a seeded, deterministic simulation
  metronome check [flags]    check a data directory (server stopped): intact, torn or damaged
  metronome healthcheck      ask a running server's /healthz: exit 0 if healthy (container probes)
  metronome vet packages...  report nondeterminism in model packages (metronome vet --help)
  metronome token keygen     create a signing key for access tokens (metronome token --help)
  metronome token mint       mint an access token for clients of a server run with --auth token
  metronome version          print the version, source revision and Go version
  metronome help [command]   show help

Run "metronome help <command>" (or "metronome <command> --help") for its flags.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return serve(args[1:], stdout, stderr)
	case "bench":
		return benchCommand(args[1:], stdout, stderr)
	case "vet":
		return vetCommand(args[1:], stdout, stderr)
	case "sim":
		return simCommand(args[1:], stdout, stderr)
	case "token":
		return tokenCommand(args[1:], stdout, stderr)
	case "check":
		return checkCommand(args[1:], stdout, stderr)
	case "healthcheck":
		return healthcheckCommand(args[1:], stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, versionString())
		return 0
	case "help", "-h", "--help":
		if len(args) > 1 && args[1] == "serve" {
			return serve([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 1 && args[1] == "sim" {
			return simCommand([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 1 && args[1] == "vet" {
			return vetCommand([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 1 && args[1] == "bench" {
			return benchCommand([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 1 && args[1] == "token" {
			return tokenCommand([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 1 && args[1] == "check" {
			return checkCommand([]string{"--help"}, stdout, stderr)
		}
		if len(args) > 1 && args[1] == "healthcheck" {
			return healthcheckCommand([]string{"--help"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "metronome: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
