package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/island/internal/crossrun/model"
)

// hashIntervalMessages: the state hash is printed after every this many
// reflected messages.
const hashIntervalMessages = 500

// replica is one island and the digest of the effects it produced.
type replica struct {
	name    string
	island  *island.Island[model.World]
	effects island.Effects
	// emits and votes digest the events for views and the hashes voted at
	// snapshot polls, in order.
	emits, votes hash.Hash
}

func newReplica(name string) *replica {
	return &replica{name: name, emits: sha256.New(), votes: sha256.New()}
}

// collect digests the effects of one call and fails on model errors.
func (r *replica) collect() (stepDigest [sha256.Size]byte, err error) {
	defer r.effects.Reset()
	if len(r.effects.Errors) > 0 {
		return stepDigest, fmt.Errorf("%s: %w", r.name, errors.Join(r.effects.Errors...))
	}
	step := sha256.New()
	for _, emit := range r.effects.Emits {
		fmt.Fprintf(step, "emit %q %x\n", emit.Name, emit.Data)
	}
	for _, vote := range r.effects.Votes {
		var payload struct{ Hash string }
		if err := json.Unmarshal([]byte(vote.Payload), &payload); err != nil {
			return stepDigest, fmt.Errorf("%s: vote payload %q: %w", r.name, vote.Payload, err)
		}
		fmt.Fprintf(step, "vote %d %s\n", vote.SendTime, payload.Hash)
		fmt.Fprintf(r.votes, "%d %s\n", vote.SendTime, payload.Hash)
	}
	for _, emit := range r.effects.Emits {
		fmt.Fprintf(r.emits, "%q %x\n", emit.Name, emit.Data)
	}
	step.Sum(stepDigest[:0])
	return stepDigest, nil
}

// replay runs the trace through a new island (replica a); after half of
// the messages it snapshots a, restores replica b from the snapshot, and
// runs the rest on both. It writes the state hash after every
// hashIntervalMessages messages, the snapshot's hash, digests of the
// effects, a summary of the model and the final hash. The replicas must
// agree after every step on their effects and at every printed hash on
// their state; an error says where they did not.
func replay(steps []step, w io.Writer) error {
	total := 0
	for _, s := range steps {
		if !s.tick {
			total++
		}
	}
	if total < 2 {
		return fmt.Errorf("the trace has %d messages; at least 2 are needed", total)
	}
	half := total / 2
	fmt.Fprintf(w, "trace %d messages %d ticks\n", total, len(steps)-total)

	a := newReplica("replica a")
	a.island = island.New(model.App, "a", &a.effects)
	if _, err := a.collect(); err != nil {
		return err
	}
	var b *replica
	messages := 0
	for index, s := range steps {
		replicas := []*replica{a}
		if b != nil {
			replicas = append(replicas, b)
		}
		var digests [][sha256.Size]byte
		for _, r := range replicas {
			if s.tick {
				r.island.Advance(s.time, &r.effects)
			} else {
				r.island.Apply(s.message, &r.effects)
			}
			digest, err := r.collect()
			if err != nil {
				return fmt.Errorf("trace step %d (time %d): %w", index, s.time, err)
			}
			digests = append(digests, digest)
		}
		if len(digests) == 2 && digests[0] != digests[1] {
			return fmt.Errorf("trace step %d (time %d): the replicas' effects differ", index, s.time)
		}
		if s.tick {
			continue
		}
		messages++
		if messages%hashIntervalMessages == 0 {
			hash, err := agree(a, b)
			if err != nil {
				return fmt.Errorf("after message %d: %w", messages, err)
			}
			fmt.Fprintf(w, "hash %d %s\n", messages, hash)
		}
		if messages == half {
			data, hash := a.island.Snapshot()
			restored, err := island.Restore(model.App, "b", data)
			if err != nil {
				return err
			}
			b = newReplica("replica b")
			b.island = restored
			if restoredHash := b.island.Hash(); restoredHash != hash {
				return fmt.Errorf("snapshot after message %d: hash %s, restored %s", messages, hash, restoredHash)
			}
			fmt.Fprintf(w, "snapshot %d %d bytes %s\n", messages, len(data), hash)
		}
	}
	final, err := agree(a, b)
	if err != nil {
		return fmt.Errorf("at the end: %w", err)
	}
	world := a.island.Model()
	fmt.Fprintf(w, "model steps %d waves %d collisions %d removed %d bodies %d players %d cells %d\n",
		world.Steps, world.Waves, world.Collisions, world.Removed, len(world.Bodies), len(world.Players), len(world.Grid))
	fmt.Fprintf(w, "emits %x\n", a.emits.Sum(nil))
	fmt.Fprintf(w, "votes %x\n", a.votes.Sum(nil))
	fmt.Fprintf(w, "final %s\n", final)
	return nil
}

// agree returns a's state hash, and an error if b exists and its state
// differs (with both encodings' first differing byte, to start a hunt).
func agree(a, b *replica) (string, error) {
	dataA, hashA := a.island.Snapshot()
	if b == nil {
		return hashA, nil
	}
	dataB, hashB := b.island.Snapshot()
	if hashA == hashB {
		return hashA, nil
	}
	at := 0
	for at < len(dataA) && at < len(dataB) && dataA[at] == dataB[at] {
		at++
	}
	return "", fmt.Errorf("the replicas' states differ: %s vs %s (%d and %d bytes, first difference at byte %d: %x vs %x)",
		hashA, hashB, len(dataA), len(dataB), at, window(dataA, at), window(dataB, at))
}

func window(data []byte, at int) []byte {
	return bytes.Clone(data[at:min(len(data), at+16)])
}
