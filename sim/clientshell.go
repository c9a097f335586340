package sim

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// What a simulated client supplies to its replica (package
// client/replica), as the Go SDK supplies WebSockets, HTTP and encryption:
// the simulated network, the simulated file server, a plain codec, and
// the checkers.

// clientTransport is the replica's Transport on the simulated network.
type clientTransport client

func (t *clientTransport) Dial(id link.ConnID) {
	c := (*client)(t)
	k := c.w.newConn(c, uint64(id), c.session)
	c.conns[uint64(id)] = k
	c.current = k
	c.w.send(k.toServer, packet{kind: packetOpen})
}

func (t *clientTransport) Send(id link.ConnID, frame []byte) {
	if k := t.conns[uint64(id)]; k != nil && k.clientOpen && !k.clientClosed {
		t.w.send(k.toServer, packet{kind: packetFrame, data: frame})
	}
}

func (t *clientTransport) Close(id link.ConnID, code int, reason string) {
	if k := t.conns[uint64(id)]; k != nil && !k.clientClosed {
		k.clientClosed = true
		if k.clientOpen {
			t.w.send(k.toServer, packet{kind: packetClose, code: code, reason: reason})
		}
	}
}

// fileLatencyMaxMs bounds the simulated time of one snapshot download or
// upload.
const fileLatencyMaxMs = 200

// clientFiles is the replica's Files: the simulated file server, which
// survives everything. Transfers take a while and come back as events.
type clientFiles client

// The file is read when the download ends, as late as a real GET could
// find it gone (the server opens the file when the request arrives).
func (f *clientFiles) Download(url string) {
	c := (*client)(f)
	w := c.w
	c.later(w.rand.Between(0, fileLatencyMaxMs), func() {
		data, ok := w.files[url]
		var err error
		if deleted, wasDeleted := w.deletedFiles[url]; !ok && wasDeleted {
			w.violate(InvariantJoin, fmt.Sprintf("%s: SYNC names snapshot %s, which the reflector deleted at %d ms (%s)", c.viewID, url, deleted.atMs, deleted.why))
			err = errViolation
		} else if !ok {
			w.violate(InvariantJoin, fmt.Sprintf("%s: SYNC names snapshot %s, which was never uploaded", c.viewID, url))
			err = errViolation
		}
		c.step(replica.SnapshotLoaded{URL: url, Data: data, Err: err})
	})
}

func (f *clientFiles) Upload(upload island.Upload, sealed []byte) {
	c := (*client)(f)
	w := c.w
	seq := upload.Seq
	if w.options.Bug == BugSnapshotWrongSeq {
		seq++
	}
	url := fmt.Sprintf("sim://snapshots/%s/%010d_%d-%s.snap", c.session, upload.Time, seq, upload.Hash[:16])
	c.later(w.rand.Between(0, fileLatencyMaxMs), func() {
		w.files[url] = sealed
		w.fileStoredAt[url] = w.now
		w.stats.Snapshots++
		w.count(FaultSnapshot)
		w.tracef("%s: uploads the snapshot at time %d seq %d", c.viewID, upload.Time, seq)
		c.step(replica.SnapshotStored{Time: upload.Time, Seq: seq, Hash: upload.Hash, URL: url})
		if w.scenario.Persist {
			persisted := fmt.Sprintf("sim://persisted/%s/%010d", c.session, upload.Time)
			w.files[persisted] = sealed
			w.fileStoredAt[persisted] = w.now
			w.count(FaultPersist)
			c.step(link.Save{PersistTime: upload.Time, URL: persisted})
		}
	})
}

// later runs f after delayMs if this process is still alive.
func (c *client) later(delayMs int64, f func()) {
	incarnation := c.incarnation
	c.w.queue.schedule(c.w.now+delayMs, func() {
		if c.alive && c.incarnation == incarnation {
			f()
		}
	})
}

// simCodec is the replica's Codec: plain CBOR envelopes in base64 (the
// simulator checks ordering, not encryption), snapshots as they are.
type simCodec struct{}

func (simCodec) Seal(envelope island.Envelope) (json.RawMessage, error) {
	return encodePayload(envelope), nil
}

func (simCodec) Open(payload json.RawMessage) (island.Envelope, error) {
	envelope, err := decodePayload(payload)
	if err != nil {
		return island.Envelope{}, err
	}
	return *envelope, nil
}

func (simCodec) SealSnapshot(data []byte) []byte            { return data }
func (simCodec) OpenSnapshot(sealed []byte) ([]byte, error) { return sealed, nil }
func (simCodec) CheckTove(string) error                     { return nil }

// errViolation stops a replica after its observer reported a violation.
var errViolation = errors.New("sim: invariant violated")

// clientObserver is the replica's Observer: the checkers, the trace and
// the statistics.
type clientObserver client

func (o *clientObserver) Reset(sync *protocol.ServerSync, restored bool) error {
	c := (*client)(o)
	w := c.w
	switch {
	case restored:
		if seq, _ := c.model().Seq(); seq != sync.SnapshotSeq && w.options.Bug != BugSnapshotWrongSeq {
			w.violate(InvariantJoin, fmt.Sprintf("%s: SYNC says snapshot seq %d, the snapshot holds seq %d", c.viewID, sync.SnapshotSeq, seq))
			return errViolation
		}
		w.tracef("%s: model restored from snapshot %s (time %d)", c.viewID, sync.URL, c.model().Time())
	case sync.Persisted:
		// The models of this simulation keep no persisted state: the data
		// must exist, and the model starts fresh.
		if _, ok := w.files[sync.URL]; !ok {
			w.violate(InvariantJoin, fmt.Sprintf("%s: SYNC names persisted data %s, which was never saved", c.viewID, sync.URL))
			return errViolation
		}
		w.tracef("%s: model starts fresh from persisted data %s on timeline %s", c.viewID, sync.URL, sync.Timeline)
	default:
		w.tracef("%s: model starts fresh on timeline %s", c.viewID, sync.Timeline)
	}
	return nil
}

func (o *clientObserver) Applied(timeline string, seq uint32, hash func() string) error {
	c := (*client)(o)
	c.w.stats.Applied++
	if !c.w.checker.applied(c, timeline, seq, hash()) {
		return errViolation
	}
	return nil
}

func (o *clientObserver) Unusable(seq uint32, err error) error {
	o.w.violate(InvariantOrder, fmt.Sprintf("%s: seq %d has a payload no client sent: %v", o.viewID, seq, err))
	return errViolation
}

func (o *clientObserver) Voted(int64, string)    {}
func (o *clientObserver) Emitted(string, []byte) {}

func (o *clientObserver) Diverged(d island.Divergence) error {
	o.w.violate(InvariantConvergence, fmt.Sprintf("%s: the snapshot vote shows %v", o.viewID, d))
	return errViolation
}

func (o *clientObserver) ModelError(err error) error {
	o.w.violate(InvariantConvergence, fmt.Sprintf("%s: model error: %v", o.viewID, err))
	return errViolation
}

func (o *clientObserver) Joined() {
	o.joined = true
	o.w.tracef("%s: joined", o.viewID)
}

func (o *clientObserver) Note(text string) { o.w.tracef("%s: %s", o.viewID, text) }

func (o *clientObserver) Failed(err error) {
	if !errors.Is(err, errViolation) {
		o.w.violate(InvariantLiveness, fmt.Sprintf("%s, a well-behaved client, was refused for good: %v", o.viewID, err))
	}
}
