package sim

import (
	"encoding/base64"
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
)

// The simulated clients run their model in the production model runtime
// (package client/island), as the Go SDK does: the island de-duplicates
// re-sent inputs by their tags, runs future messages, polls for
// snapshots, votes with state hashes (so the reflector's TUTTI tallies run
// under faults too), uploads the snapshot when the tally picks it, and
// reports divergence. The model itself is small: a hash chain over every
// input and future message it handled, and the set of input numbers
// applied per view, so exactly-once can be checked at the end.

// simModel is the simulated clients' model.
type simModel struct {
	Chain      uint64                    `cbor:"chain"`
	Inputs     int                       `cbor:"inputs"`
	FuturesRun int                       `cbor:"futuresRun"`
	Applied    map[string]*appliedInputs `cbor:"applied"`
}

// appliedInputs is the set of a view's input numbers that took effect,
// and how often inputs took effect (duplicates included, which only a bug
// lets through).
type appliedInputs struct {
	Set          island.InputSet `cbor:"set"`
	Applications uint64          `cbor:"applications"`
}

// simInput is the data of an input event: who sent it, its number among
// that view's inputs, and a digest of its payload.
type simInput struct {
	View   string `cbor:"v"`
	N      uint64 `cbor:"n"`
	Digest uint64 `cbor:"d"`
}

// futureDelayMaxMs bounds how far ahead the model schedules.
const futureDelayMaxMs = 3000

func mix(h, v uint64) uint64 {
	h ^= v + 0x9e3779b97f4a7c15 + (h << 6) + (h >> 2)
	h *= 0xbf58476d1ce4e5b9
	return h ^ (h >> 31)
}

func digest(data []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, b := range data {
		h ^= uint64(b)
		h *= 1099511628211
	}
	return h
}

// simApp is the model's application; snapshotIntervalMs comes from the
// scenario.
func simApp(snapshotIntervalMs int64) island.App[simModel] {
	return island.App[simModel]{
		ID: "io.metronome.sim", Version: "1", SnapshotIntervalMs: snapshotIntervalMs,
		Init: func(m *simModel, ctx *island.Context) {
			m.Chain = 0x6d6574726f6e6f6d
			m.Applied = map[string]*appliedInputs{}
		},
		Events: map[string]island.Handler[simModel]{
			"input": func(m *simModel, ctx *island.Context, e island.Event) {
				var in simInput
				if err := e.Decode(&in); err != nil {
					panic(fmt.Sprintf("input does not decode: %v", err))
				}
				applied := m.Applied[in.View]
				if applied == nil {
					applied = &appliedInputs{}
					m.Applied[in.View] = applied
				}
				applied.Set.Add(in.N)
				applied.Applications++
				m.Inputs++
				m.Chain = mix(mix(mix(m.Chain, uint64(ctx.Now())), in.Digest), in.N)
				if in.Digest%4 == 0 {
					ctx.Future(int64(in.Digest%futureDelayMaxMs)+1, "future", in.Digest)
				}
			},
			"future": func(m *simModel, ctx *island.Context, e island.Event) {
				var value uint64
				e.Decode(&value)
				m.FuturesRun++
				m.Chain = mix(mix(m.Chain, uint64(ctx.Now())), value)
			},
			island.EventViewJoin: func(m *simModel, ctx *island.Context, e island.Event) {
				m.Chain = mix(m.Chain, digest([]byte("join:"+e.View)))
			},
			island.EventViewExit: func(m *simModel, ctx *island.Context, e island.Event) {
				m.Chain = mix(m.Chain, digest([]byte("exit:"+e.View)))
			},
		},
	}
}

// encodePayload turns an envelope into a message payload: the simulator
// does not encrypt, so the JSON string holds base64 CBOR.
func encodePayload(envelope island.Envelope) json.RawMessage {
	data, err := island.Encode(envelope)
	if err != nil {
		panic(err)
	}
	return json.RawMessage(`"` + base64.RawURLEncoding.EncodeToString(data) + `"`)
}

func decodePayload(payload json.RawMessage) (*island.Envelope, error) {
	var text string
	if err := json.Unmarshal(payload, &text); err != nil {
		return nil, err
	}
	data, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, err
	}
	var envelope island.Envelope
	if err := island.Decode(data, &envelope); err != nil {
		return nil, err
	}
	return &envelope, nil
}
