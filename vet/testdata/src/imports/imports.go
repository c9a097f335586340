// Package imports holds the forbidden imports.
package imports

import (
	crand "crypto/rand"   // want `import of crypto/rand: reads the operating system's entropy, different on every replica; use the session's seeded random source`
	"hash/maphash"        // want `import of hash/maphash: seeds its hashes randomly`
	"math/rand"           // want `import of math/rand: draws from a source seeded differently in every process; use the session's seeded random source`
	randv2 "math/rand/v2" // want `import of math/rand/v2`
	"net"                 // want `import of net: does network I/O`
	"net/http"            // want `import of net/http: does network I/O`
	"os"                  // want `import of os: reads the host`
	"os/exec"             // want `import of os/exec: reads or changes the host`
	"runtime"             // want `import of runtime: exposes scheduler`
	"runtime/debug"       // want `import of runtime/debug`
	"sync"                // want `import of sync: coordinates goroutines.*the model runtime delivers one message at a time`
	"sync/atomic"         // want `import of sync/atomic`
	"syscall"             // want `import of syscall`
	_ "unsafe"            // want `import of unsafe: depends on memory layout`

	// Deterministic standard packages stay allowed.
	"encoding/json"
	"hash/fnv"
	"strings"
)

var (
	_ = crand.Reader
	_ maphash.Hash
	_ = rand.Intn
	_ = randv2.IntN
	_ net.Conn
	_ = http.Get
	_ = os.Getenv
	_ = exec.Command
	_ = runtime.NumGoroutine
	_ = debug.SetGCPercent
	_ sync.Mutex
	_ atomic.Int64
	_ = syscall.Getpid
	_ = json.Marshal
	_ = fnv.New64a
	_ = strings.ToUpper
)
