package client

import (
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// nodeWASMTimeout bounds building and running the WebAssembly replica.
const nodeWASMTimeout = 5 * time.Minute

// TestSnapshotsUnderNodeWASM runs a Go replica compiled to WebAssembly
// under Node.js (internal/nodewasm) against a reflector: it must upload a
// snapshot, and a late joiner under Node.js must download it. net/http
// does not use fetch under Node.js, so without fetchTransport the upload
// fails. Skipped when node is not installed (scripts/crosstarget.sh, which
// runs Go WebAssembly under Node.js too, skips alike).
func TestSnapshotsUnderNodeWASM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a WebAssembly binary and runs it under Node.js")
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWASMTimeout)
	defer cancel()
	node := nodeCommand(t, ctx)

	binary := filepath.Join(t.TempDir(), "nodewasm.wasm")
	build := exec.CommandContext(ctx, "go", "build", "-o", binary, "./internal/nodewasm")
	build.Env = append(os.Environ(), "GOOS=js", "GOARCH=wasm")
	if output, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building internal/nodewasm for js/wasm: %v\n%s", err, output)
	}

	addr := startServer(t)
	// One request from this process first. server.Start sets up its
	// overload monitor after it starts serving; the race detector sees
	// in-process clients connect after that (through the socket calls) but
	// not a client in another process, and reports the server's race.
	response, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	run := exec.CommandContext(ctx, node[0], append(node[1:], binary,
		"-reflector", "ws://"+addr+"/reflector", "-name", "node-wasm")...)
	output, err := run.CombinedOutput()
	t.Logf("the WebAssembly replica under Node.js said:\n%s", output)
	if err != nil {
		t.Fatalf("it failed: %v", err)
	}
	for _, step := range []string{"uploaded\n", "downloaded http://" + addr + "/files/snapshots/", "\nok\n"} {
		if !strings.Contains(string(output), step) {
			t.Errorf("no %q in its output", step)
		}
	}
}

// nodeCommand returns the command that runs a Go WebAssembly binary under
// Node.js (node, its flags, wasm_exec_node.js; the binary and its
// arguments follow), or skips the test when node is not installed or has
// no WebSocket.
func nodeCommand(t *testing.T, ctx context.Context) []string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("SKIPPING: node is not installed, so Go WebAssembly under Node.js cannot be tested")
	}
	goroot, err := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatal(err)
	}
	// Go 1.24 moved the wasm support files from misc/wasm to lib/wasm.
	var runner string
	for _, dir := range []string{"lib/wasm", "misc/wasm"} {
		if candidate := filepath.Join(strings.TrimSpace(string(goroot)), dir, "wasm_exec_node.js"); fileExists(candidate) {
			runner = candidate
		}
	}
	if runner == "" {
		t.Fatalf("wasm_exec_node.js is not under %s/lib/wasm or misc/wasm", strings.TrimSpace(string(goroot)))
	}
	// The WebSocket global is standard from Node.js 22, behind a flag in 20
	// and 21. Started as "node", as go_js_wasm_exec starts it: process.argv0
	// is "node", which is what makes net/http avoid fetch.
	command := []string{"node", "--stack-size=8192"}
	if exec.CommandContext(ctx, "node", "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)").Run() != nil {
		if exec.CommandContext(ctx, "node", "--experimental-websocket", "-e", "process.exit(typeof WebSocket === 'function' ? 0 : 1)").Run() != nil {
			t.Skip("SKIPPING: this Node.js has no WebSocket, even with --experimental-websocket")
		}
		command = append(command, "--experimental-websocket")
	}
	return append(command, runner)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
