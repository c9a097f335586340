package vet

import (
	"go/ast"
	"go/types"
	"strconv"
	"strings"
)

// A model gets every input through reflector-stamped messages, so these
// messages end most sentences below.
const (
	useSessionRandom = "use the session's seeded random source (island.Context Random, Float64, Intn), which every replica draws from in the same order"
	useMessages      = "a model receives all input as reflector-stamped messages: do the I/O in the view and publish the result"
	singleThreaded   = "the model runtime delivers one message at a time, so a model needs no locks, atomics or scheduler control"
)

// forbiddenImports maps an import path (or, ending in "/", a path prefix) to
// why a model must not import it and what to use instead.
var forbiddenImports = map[string]string{
	"math/rand":    "draws from a source seeded differently in every process; " + useSessionRandom,
	"math/rand/v2": "draws from a source seeded differently in every process; " + useSessionRandom,
	"crypto/rand":  "reads the operating system's entropy, different on every replica; " + useSessionRandom,
	"hash/maphash": "seeds its hashes randomly in every process, so hashes differ between replicas; use a fixed hash such as hash/fnv or crypto/sha256",
	"os":           "reads the host (files, environment, process state), which differs between replicas; " + useMessages,
	"os/":          "reads or changes the host, which differs between replicas; " + useMessages,
	"io/ioutil":    "reads files of the host, which differ between replicas; " + useMessages,
	"syscall":      "talks to the host operating system, which differs between replicas; " + useMessages,
	"net":          "does network I/O whose timing and results differ between replicas; " + useMessages,
	"net/":         "does network I/O whose timing and results differ between replicas; " + useMessages,
	"runtime":      "exposes scheduler, memory and platform state that differs between replicas; " + singleThreaded,
	"runtime/":     "exposes scheduler, memory and platform state that differs between replicas; " + singleThreaded,
	"sync":         "coordinates goroutines, whose interleaving differs between replicas; " + singleThreaded,
	"sync/":        "coordinates goroutines, whose interleaving differs between replicas; " + singleThreaded,
	"unsafe":       "depends on memory layout and addresses, which differ between platforms and runs; use ordinary typed values",
}

// forbiddenImport returns why path must not be imported by a model, or "".
func forbiddenImport(path string) string {
	if why, found := forbiddenImports[path]; found {
		return why
	}
	for prefix := path; ; {
		slash := strings.LastIndexByte(prefix, '/')
		if slash < 0 {
			return ""
		}
		prefix = prefix[:slash]
		if why, found := forbiddenImports[prefix+"/"]; found {
			return why
		}
	}
}

func (c *checker) checkImport(spec *ast.ImportSpec) {
	path, err := strconv.Unquote(spec.Path.Value)
	if err != nil {
		return
	}
	if why := forbiddenImport(path); why != "" {
		c.report(spec, categoryImport, "import of "+path+": "+why)
	}
}

// allowedTime are the members of package time a model may use: durations
// are plain integers with units.
var allowedTime = map[string]bool{
	"Duration": true, "ParseDuration": true,
	"Nanosecond": true, "Microsecond": true, "Millisecond": true,
	"Second": true, "Minute": true, "Hour": true,
}

// timers are the members of package time that fire or wait in real time.
var timers = map[string]bool{
	"After": true, "AfterFunc": true, "NewTimer": true, "NewTicker": true,
	"Sleep": true, "Tick": true, "Timer": true, "Ticker": true,
}

// transcendental are the functions of package math whose results may differ
// in the last bit between amd64, arm64 and wasm: they are computed by
// assembly on some targets and by Go code that the compiler may fuse into
// FMA instructions on others. Exact functions (Sqrt, Floor, Mod, Abs, FMA,
// Ldexp, ...) are correctly rounded everywhere and stay allowed.
var transcendental = map[string]bool{
	"Sin": true, "Cos": true, "Tan": true, "Sincos": true,
	"Asin": true, "Acos": true, "Atan": true, "Atan2": true,
	"Sinh": true, "Cosh": true, "Tanh": true, "Asinh": true, "Acosh": true, "Atanh": true,
	"Exp": true, "Exp2": true, "Expm1": true,
	"Log": true, "Log2": true, "Log10": true, "Log1p": true,
	"Pow": true, "Hypot": true, "Cbrt": true,
	"Erf": true, "Erfc": true, "Erfinv": true, "Erfcinv": true,
	"Gamma": true, "Lgamma": true,
	"J0": true, "J1": true, "Jn": true, "Y0": true, "Y1": true, "Yn": true,
}

const dmathPath = "github.com/metronome-sync/metronome/dmath"

// inDmath are the transcendental functions that package dmath provides
// under the same name.
var inDmath = map[string]bool{
	"Sin": true, "Cos": true, "Tan": true, "Asin": true, "Acos": true, "Atan": true, "Atan2": true,
	"Exp": true, "Log": true, "Pow": true, "Tanh": true, "Hypot": true,
}

// checkIdent reports uses of package-level members of time and math,
// however they are imported (qualified or dot import).
func (c *checker) checkIdent(ident *ast.Ident) {
	object := c.pass.TypesInfo.Uses[ident]
	if object == nil || object.Pkg() == nil || object.Pkg().Scope().Lookup(object.Name()) != object {
		return
	}
	name := object.Name()
	switch object.Pkg().Path() {
	case "time":
		c.checkTime(ident, name)
	case "math":
		if _, isFunc := object.(*types.Func); isFunc && transcendental[name] {
			instead := "use dmath." + name + " from " + dmathPath + ", which is bit-identical everywhere"
			if !inDmath[name] {
				instead = dmathPath + " has no " + name + " yet: build it from dmath's Exp, Log, Pow, Sin, Atan and exact arithmetic, or add it there"
			}
			c.report(ident, categoryMath, "math."+name+": its result may differ in the last bit between amd64, arm64 and wasm (assembly on some targets, fused multiply-add on others), and replicas diverge; "+instead)
		}
	}
}

func (c *checker) checkTime(ident *ast.Ident, name string) {
	switch {
	case allowedTime[name]:
	case name == "Now" || name == "Since" || name == "Until":
		c.report(ident, categoryTime, "time."+name+" reads the local wall clock, which differs on every replica; use the session time that the reflector stamps on each message (island.Context.Now, in ms)")
	case timers[name]:
		c.report(ident, categoryTime, "time."+name+" waits in real time, which passes differently on every replica; schedule a future message in session time instead (island.Context.Future)")
	default:
		c.report(ident, categoryTime, "time."+name+" depends on wall-clock time, time zones or the local clock, which differ between replicas; keep time as session milliseconds (an integer) and time.Duration")
	}
}
