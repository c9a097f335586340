package client

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/metronome-sync/metronome/client/internal/mixedarch"
)

// mixedArchTimeout bounds building and running one odd replica.
const mixedArchTimeout = 5 * time.Minute

// TestMixedArchitectureSessionRecovers: two native replicas and one built
// for another target (internal/mixedarch/replica: WebAssembly under
// Node.js, arm64 under qemu) share a session whose model uses math.Exp,
// whose last bit differs between the targets. The odd replica loses the
// next snapshot vote, recovers from the native majority's snapshot, and
// votes the majority's hash at the vote after. Each target is skipped
// when its runner is missing (as scripts/crosstarget.sh skips it), or when
// it happens to compute math.Exp alike on this machine.
func TestMixedArchitectureSessionRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a replica for other targets and runs it under Node.js or qemu")
	}
	if runtime.GOARCH != "amd64" {
		t.Skip("SKIPPING: the odd targets are chosen for an amd64 host")
	}
	for _, target := range []struct {
		name, goos, goarch string
		runner             func(t *testing.T, ctx context.Context) []string
	}{
		{"wasm", "js", "wasm", nodeCommand},
		{"arm64", "linux", "arm64", func(t *testing.T, _ context.Context) []string {
			if _, err := exec.LookPath("qemu-aarch64-static"); err != nil {
				t.Skip("SKIPPING: qemu-aarch64-static is not installed (Debian package qemu-user-static)")
			}
			return []string{"qemu-aarch64-static"}
		}},
	} {
		t.Run(target.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), mixedArchTimeout)
			defer cancel()
			command := target.runner(t, ctx)
			binary := filepath.Join(t.TempDir(), "replica."+target.name)
			build := exec.CommandContext(ctx, "go", "build", "-o", binary, "./internal/mixedarch/replica")
			build.Env = append(os.Environ(), "GOOS="+target.goos, "GOARCH="+target.goarch)
			if output, err := build.CombinedOutput(); err != nil {
				t.Fatalf("building internal/mixedarch/replica for %s/%s: %v\n%s", target.goos, target.goarch, err, output)
			}
			runMixedSession(t, ctx, append(command, binary))
		})
	}
}

// runMixedSession joins two native replicas, runs the odd one with
// command, and checks its recovery.
func runMixedSession(t *testing.T, ctx context.Context, command []string) {
	t.Helper()
	addr := startServer(t)
	// A request from this process first: see TestSnapshotsUnderNodeWASM.
	response, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	var mu sync.Mutex
	votes := map[int64]string{}
	var reports []Divergence
	for range 2 {
		joinCtx, cancelJoin := context.WithTimeout(ctx, 20*time.Second)
		s, err := Join(joinCtx, mixedarch.App, Options{Reflector: "ws://" + addr + "/reflector", Name: "mixed", Password: "mixed",
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnVote: func(at int64, hash string) {
				mu.Lock()
				defer mu.Unlock()
				votes[at] = hash
			},
			OnDivergence: func(d Divergence) {
				mu.Lock()
				defer mu.Unlock()
				reports = append(reports, d)
			}})
		cancelJoin()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Leave() })
	}
	run := exec.CommandContext(ctx, command[0], append(command[1:], "-reflector", "ws://"+addr+"/reflector", "-name", "mixed")...)
	output, err := run.CombinedOutput()
	t.Logf("the odd replica said:\n%s", output)
	if err != nil {
		t.Fatalf("it failed: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(string(output)), "\n")
	switch lines[len(lines)-1] {
	case "agreed":
		t.Skip("SKIPPING: this target computed math.Exp with the same bits as this amd64 for every input: nothing diverged")
	case "ok":
	default:
		t.Fatalf("it ended with %q, want ok", lines[len(lines)-1])
	}
	// Its last vote came after its recovery: the natives voted alike.
	var at int64
	var hash string
	if _, err := fmt.Sscanf(lines[len(lines)-2], "vote %d %s", &at, &hash); err != nil {
		t.Fatalf("line %q: %v", lines[len(lines)-2], err)
	}
	recovered := false
	for _, line := range lines {
		recovered = recovered || strings.HasPrefix(line, "divergence local=true recovered=true")
	}
	mu.Lock()
	defer mu.Unlock()
	if !recovered || votes[at] != hash {
		t.Fatalf("recovered %v; at session time %d the odd replica voted %.16s, the natives %.16s", recovered, at, hash, votes[at])
	}
	if len(reports) == 0 || reports[0].Local || !strings.Contains(fmt.Sprint(reports[0].Groups[1:]), "odd") {
		t.Fatalf("the natives' reports %+v, want the odd replica outside their majority", reports)
	}
}
