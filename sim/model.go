package sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/protocol"
)

// model is the small deterministic model every simulated client runs. Its
// state is a hash chain over every message it applied and every future
// message it ran, so two replicas agree exactly when they applied the same
// messages at the same times; it drops re-sent inputs by their tag (the
// exactly-once rule of package link), and its future messages make the
// state depend on session time, not only on the message sequence.
type model struct {
	Hash     uint64 `json:"hash"`
	Time     int64  `json:"time"`
	Seq      uint32 `json:"seq"`
	HasSeq   bool   `json:"hasSeq"`
	Messages int    `json:"messages"`
	// Inputs are the applied input numbers per view.
	Inputs     map[string]*appliedInputs `json:"inputs"`
	Futures    []future                  `json:"futures"`
	FutureSeq  uint64                    `json:"futureSeq"`
	FuturesRun int                       `json:"futuresRun"`
	Duplicates int                       `json:"duplicates"`

	// bugNoDedup applies re-sent inputs again (BugNoInputDedup).
	bugNoDedup bool
}

// appliedInputs is a set of input numbers: all up to Watermark, plus Above.
type appliedInputs struct {
	Watermark uint64   `json:"watermark"`
	Above     []uint64 `json:"above,omitempty"`
	// Applications counts how often inputs of the view took effect.
	Applications uint64 `json:"applications"`
}

func (a *appliedInputs) has(n uint64) bool {
	if n <= a.Watermark {
		return true
	}
	_, found := slices.BinarySearch(a.Above, n)
	return found
}

func (a *appliedInputs) add(n uint64) {
	i, _ := slices.BinarySearch(a.Above, n)
	a.Above = slices.Insert(a.Above, i, n)
	for len(a.Above) > 0 && a.Above[0] == a.Watermark+1 {
		a.Watermark++
		a.Above = a.Above[1:]
	}
	if len(a.Above) == 0 {
		a.Above = nil
	}
}

// future is a message the model sent to its own future (Croquet's
// future()): it runs when session time reaches At.
type future struct {
	At    int64  `json:"at"`
	Order uint64 `json:"order"`
	Value uint64 `json:"value"`
}

// futureDelayMaxMs bounds how far ahead the model schedules.
const futureDelayMaxMs = 3000

func newModel() *model { return &model{Hash: 0x6d6574726f6e6f6d, Inputs: map[string]*appliedInputs{}} }

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

// advance runs the future messages due by t and moves time to t.
func (m *model) advance(t int64) {
	for len(m.Futures) > 0 && m.Futures[0].At <= t {
		f := m.Futures[0]
		m.Futures = m.Futures[1:]
		m.Hash = mix(mix(m.Hash, uint64(f.At)), f.Value)
		m.FuturesRun++
		if m.Time < f.At {
			m.Time = f.At
		}
	}
	if len(m.Futures) == 0 {
		m.Futures = nil
	}
	if t > m.Time {
		m.Time = t
	}
}

// apply applies the next message.
func (m *model) apply(message protocol.StampedMessage, input link.InputTag, isInput bool) {
	m.advance(message.Time)
	m.Seq, m.HasSeq = message.Seq, true
	if isInput {
		applied := m.Inputs[input.ViewID]
		if applied == nil {
			applied = &appliedInputs{}
			m.Inputs[input.ViewID] = applied
		}
		if applied.has(input.Seq) && !m.bugNoDedup {
			m.Duplicates++
			return
		}
		if !applied.has(input.Seq) {
			applied.add(input.Seq)
		}
		applied.Applications++
	}
	d := digest(message.Payload)
	m.Hash = mix(mix(mix(m.Hash, uint64(message.Seq)), uint64(message.Time)), d)
	m.Messages++
	if d%4 == 0 {
		m.FutureSeq++
		f := future{At: m.Time + int64(d%futureDelayMaxMs) + 1, Order: m.FutureSeq, Value: d}
		i, _ := slices.BinarySearchFunc(m.Futures, f, func(a, b future) int {
			if a.At != b.At {
				return int(a.At - b.At)
			}
			return int(a.Order - b.Order)
		})
		m.Futures = slices.Insert(m.Futures, i, f)
	}
}

// encode returns the snapshot of the model (encoding/json sorts map keys,
// so equal states encode to equal bytes).
func (m *model) encode() []byte {
	data, err := json.Marshal(m)
	if err != nil {
		panic(fmt.Sprintf("sim: model does not encode: %v", err))
	}
	return data
}

func decodeModel(data []byte) (*model, error) {
	m := newModel()
	if err := json.Unmarshal(data, m); err != nil {
		return nil, err
	}
	if m.Inputs == nil {
		m.Inputs = map[string]*appliedInputs{}
	}
	return m, nil
}

func (m *model) hashText() string { return strconv.FormatUint(m.Hash, 16) }
