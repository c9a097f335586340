package client

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/client/link"
	"github.com/metronome-sync/metronome/client/replica"
	"github.com/metronome-sync/metronome/protocol"
)

// This file is what the session shell supplies to its replica (package
// client/replica): WebSocket connections, HTTP snapshot transfers,
// AES-GCM encryption, and the views' callbacks. The replica calls them on
// the session goroutine; whatever blocks runs in another goroutine and
// comes back through the inbox.

// sessionTransport is the replica's Transport: the session's WebSockets.
type sessionTransport[M any] Session[M]

func (t *sessionTransport[M]) Dial(conn link.ConnID) { (*Session[M])(t).dial(conn) }

func (t *sessionTransport[M]) Send(conn link.ConnID, frame []byte) {
	s := (*Session[M])(t)
	c := s.conns[conn]
	if c == nil {
		return
	}
	select {
	case c.writes <- frame:
	default:
		s.logger.Warn("outbound queue full; dropping the connection", "frames", cap(c.writes))
		c.cancel()
	}
}

func (t *sessionTransport[M]) Close(conn link.ConnID, code int, reason string) {
	if c := t.conns[conn]; c != nil {
		delete(t.conns, conn)
		c.closeWith(code, reason)
	}
}

// sessionFiles is the replica's Files: snapshots over HTTP, in the
// background; the outcome comes back as a replica event.
type sessionFiles[M any] Session[M]

func (f *sessionFiles[M]) Download(target string) {
	s := (*Session[M])(f)
	go func() {
		data, err := s.get(target)
		s.post(inboxItem{event: replica.SnapshotLoaded{URL: target, Data: data, Err: err}})
	}()
}

func (f *sessionFiles[M]) Upload(upload island.Upload, sealed []byte) {
	s := (*Session[M])(f)
	target := fmt.Sprintf("%s/snapshots/%s/%010d_%d-%s.snap", s.filesBase, s.id, upload.Time, upload.Seq, upload.Hash[:16])
	go func() {
		if err := s.put(target, sealed); err != nil {
			s.uploadsFailed.Add(1)
			s.logger.Warn("snapshot upload failed; late joiners start from an older snapshot until another succeeds", "err", err)
			return
		}
		s.uploaded.Add(1)
		s.post(inboxItem{event: replica.SnapshotStored{Time: upload.Time, Seq: upload.Seq, Hash: upload.Hash, URL: target}})
	}()
}

// get downloads a snapshot, bounded by SnapshotBytesMax.
func (s *Session[M]) get(target string) ([]byte, error) {
	// A server that cannot read the file for a moment (503: a disk error
	// it retries, a cluster electing a leader) or a connection that broke
	// is tried again, as the JavaScript client does: a replica that cannot
	// load its snapshot cannot join.
	var data []byte
	var err error
	for attempt := range downloadAttempts {
		if attempt > 0 {
			time.Sleep(min(downloadRetryWait<<(attempt-1), downloadRetryWaitMax))
		}
		var retry bool
		if data, retry, err = s.getOnce(target); err == nil || !retry {
			return data, err
		}
	}
	return nil, err
}

// downloadAttempts bounds the tries of one snapshot download, the first
// retry waiting downloadRetryWait and each next one twice as long, at most
// downloadRetryWaitMax: about 8 s in all, longer than a cluster takes to
// elect new JetStream leaders after a partition heals.
const (
	downloadAttempts     = 7
	downloadRetryWait    = 250 * time.Millisecond
	downloadRetryWaitMax = 2 * time.Second
)

// getOnce downloads target once; retry says whether the failure may pass.
func (s *Session[M]) getOnce(target string) (data []byte, retry bool, err error) {
	response, err := s.http.Get(target)
	if err != nil {
		return nil, true, err
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		passing := response.StatusCode >= 500 || response.StatusCode == http.StatusTooManyRequests
		return nil, passing, fmt.Errorf("GET %s: %s", target, response.Status)
	}
	data, err = io.ReadAll(io.LimitReader(response.Body, SnapshotBytesMax+1))
	if err != nil {
		return nil, true, err
	}
	if len(data) > SnapshotBytesMax {
		return nil, false, fmt.Errorf("the snapshot exceeds %d bytes (SnapshotBytesMax)", SnapshotBytesMax)
	}
	return data, false, nil
}

// put uploads a snapshot.
func (s *Session[M]) put(target string, data []byte) error {
	request, err := http.NewRequest(http.MethodPut, target, bytes.NewReader(data))
	if err != nil {
		return err
	}
	response, err := s.http.Do(request)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, response.Body)
	response.Body.Close()
	if response.StatusCode/100 != 2 {
		return fmt.Errorf("PUT %s: %s", target, response.Status)
	}
	return nil
}

// sessionCodec is the replica's Codec: CBOR envelopes, sealed with the
// session's key (crypto.go).
type sessionCodec[M any] Session[M]

func (c *sessionCodec[M]) Seal(envelope island.Envelope) (json.RawMessage, error) {
	plaintext, err := island.Encode(envelope)
	if err != nil {
		return nil, err
	}
	return json.RawMessage(`"` + c.sealer.sealString(purposePayload, plaintext) + `"`), nil
}

func (c *sessionCodec[M]) Open(payload json.RawMessage) (island.Envelope, error) {
	var envelope island.Envelope
	var text string
	if err := json.Unmarshal(payload, &text); err != nil {
		return envelope, err
	}
	plain, err := c.sealer.openString(purposePayload, text)
	if err != nil {
		return envelope, err
	}
	err = island.Decode(plain, &envelope)
	return envelope, err
}

func (c *sessionCodec[M]) SealSnapshot(data []byte) []byte {
	return c.sealer.seal(purposeSnapshot, data)
}

func (c *sessionCodec[M]) OpenSnapshot(sealed []byte) ([]byte, error) {
	return c.sealer.open(purposeSnapshot, sealed)
}

func (c *sessionCodec[M]) CheckTove(tove string) error {
	if tove == "" {
		return nil
	}
	if plain, err := c.sealer.openString(purposeTove, tove); err != nil || string(plain) != c.id {
		return fmt.Errorf("%w for session %q of app %q: its members encrypt with a different key, "+
			"so Options.Password is not theirs (or they run a client that derives the key differently, such as another version of this SDK)",
			ErrWrongPassword, c.options.Name, c.app.ID)
	}
	return nil
}

// sessionObserver is the replica's Observer: the views' callbacks, the
// log, and the end of the session.
type sessionObserver[M any] Session[M]

func (o *sessionObserver[M]) Reset(sync *protocol.ServerSync, restored bool) error {
	o.snapshotURL = ""
	if restored {
		o.snapshotURL = sync.URL
	}
	return nil
}

func (o *sessionObserver[M]) Applied(string, uint32, func() string) error { return nil }

func (o *sessionObserver[M]) Unusable(seq uint32, err error) error {
	o.logger.Warn("unusable message; applied as empty", "seq", seq, "err", err)
	return nil
}

func (o *sessionObserver[M]) Voted(time int64, hash string) {
	if onVote := o.options.OnVote; onVote != nil {
		o.callback(func() { onVote(time, hash) })
	}
}

func (o *sessionObserver[M]) Emitted(name string, data []byte) {
	if fns := o.subscribers[name]; len(fns) > 0 {
		o.callback(func() {
			for _, fn := range fns {
				fn(data)
			}
		})
	}
}

func (o *sessionObserver[M]) Diverged(d island.Divergence) error {
	if onDivergence := o.options.OnDivergence; onDivergence != nil {
		o.callback(func() { onDivergence(d) })
	} else if d.Recovered {
		o.logger.Warn("divergence repaired: reloaded the majority's snapshot", "err", d.Error())
	} else {
		o.logger.Error("divergence", "err", d.Error(), "this replica diverged", d.Local)
	}
	return nil
}

// callback hands a view callback to the callback goroutine.
func (o *sessionObserver[M]) callback(f func()) {
	if !o.callbacks.push(f) {
		if dropped := o.callbacks.droppedCount(); dropped == 1 || dropped%1000 == 0 {
			o.logger.Warn("callbacks dropped: the views are CallbacksQueuedMax behind", "dropped", dropped)
		}
	}
}

func (o *sessionObserver[M]) ModelError(err error) error {
	o.logger.Error("model error", "err", err)
	return nil
}

func (o *sessionObserver[M]) Joined() {
	o.logger.Info("joined", "session id", o.id)
	select {
	case <-o.joinedOnce:
	default:
		close(o.joinedOnce)
	}
}

func (o *sessionObserver[M]) Note(text string) { o.logger.Debug(text) }

func (o *sessionObserver[M]) Failed(err error) {
	o.logger.Error("session failed", "err", err)
	(*Session[M])(o).finish(err)
}
