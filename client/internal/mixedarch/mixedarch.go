// Package mixedarch is the model of the client package's mixed-architecture
// self-healing test (TestMixedArchitectureSessionRecovers): a model that
// breaks determinism rule 3 on purpose, computing math.Exp (whose last bit
// differs between amd64, arm64 and wasm) instead of dmath.Exp. Two native
// replicas and one built for another target (package replica, run under
// Node.js or qemu) share a session: the odd one out computes other bits,
// loses the next snapshot vote, and must recover from the majority's
// snapshot.
package mixedarch

import (
	"math"

	"github.com/metronome-sync/metronome/client/island"
)

// Model holds the results of math.Exp.
type Model struct {
	Values []float64
}

// EventExp carries the inputs of math.Exp ([]float64); the model emits
// EventExp with their number once it has computed them.
const EventExp = "exp"

// App is the session's application (client.App; package island, which
// defines it, so that package client's tests can import this one).
var App = island.App[Model]{
	ID: "io.metronome.test.mixedarch", Version: "1", SnapshotIntervalMs: island.SnapshotIntervalMsMin,
	Events: map[string]island.Handler[Model]{
		EventExp: func(m *Model, ctx *island.Context, e island.Event) {
			var inputs []float64
			if e.Decode(&inputs) != nil {
				return
			}
			for _, x := range inputs {
				m.Values = append(m.Values, math.Exp(x)) //metronome:allow the test needs replicas that compute different bits
			}
			ctx.Emit(EventExp, len(inputs))
		},
	},
}

// Inputs returns the inputs the odd replica publishes: 1,000 points of
// [-50, 50), of which about one in six gives a different last bit on
// amd64 (with FMA) than on wasm, and more than on arm64.
func Inputs() []float64 {
	inputs := make([]float64, 1000)
	for k := range inputs {
		inputs[k] = float64(float64(k)*0.1) - 50 // rounded product: the same bits everywhere
	}
	return inputs
}
