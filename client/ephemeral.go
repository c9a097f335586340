package client

import (
	"encoding/json"
	"fmt"

	"github.com/metronome-sync/metronome/client/island"
	"github.com/metronome-sync/metronome/protocol"
)

// The ephemeral channel (docs/sdk.md, "Ephemeral channel"; docs/protocol.md
// §22): view-to-view data that the reflector relays to the other views of
// the session that asked for it (Options.OnEphemeral), without stamping,
// storing or replaying it. It never reaches a model.

// EphemeralBytesMax bounds a broadcast's name and data together: sealed
// (CBOR, AES-GCM, base64url), they fit the reflector's limit on one EPHM
// payload, protocol.EphemeralPayloadBytesMax (16 KiB).
const EphemeralBytesMax = 12_000

// ephemeralMessage is what a broadcast seals: its name and data.
type ephemeralMessage struct {
	_    struct{} `cbor:",toarray"`
	Name string
	Data []byte
}

// Broadcast sends data under name to the other views of the session that
// set Options.OnEphemeral, through the reflector but outside the model:
// it is not stamped, not stored, not replayed to later joiners, never
// applied to a model and never part of a snapshot. It is encrypted with
// the session key like inputs. Broadcasts are paced (30 a second, in
// bursts of 5: link.EphemeralSendRatePerSecondDefault); while one waits,
// a newer one under the same name replaces it, so the latest value of
// each name goes out. Broadcasts made while the session is not connected
// are dropped, and a view whose connection is behind may miss some: use
// it for data whose latest value is all that matters (pointers, drags,
// cursors), and repeat it now and then if a view that joins later should
// see it. data may be reused once Broadcast returns.
func (s *Session[M]) Broadcast(name string, data []byte) error {
	if size := len(name) + len(data); size > EphemeralBytesMax {
		return fmt.Errorf("client: Broadcast(%q): name and data are %d bytes, more than %d (EphemeralBytesMax)", name, size, EphemeralBytesMax)
	}
	plaintext, err := island.Encode(ephemeralMessage{Name: name, Data: data})
	if err != nil {
		return fmt.Errorf("client: Broadcast(%q): %w", name, err)
	}
	payload := json.RawMessage(`"` + s.sealer.sealString(purposeEphemeral, plaintext) + `"`)
	if len(payload) > protocol.EphemeralPayloadBytesMax {
		return fmt.Errorf("client: Broadcast(%q): the sealed broadcast is %d bytes, more than %d (protocol.EphemeralPayloadBytesMax)",
			name, len(payload), protocol.EphemeralPayloadBytesMax)
	}
	var rejected error
	err = s.do(func() { rejected = s.replica.Broadcast(s.now(), name, payload) })
	if err != nil {
		return err
	}
	return rejected
}

// Ephemeral makes sessionObserver the replica's replica.EphemeralObserver:
// it opens another view's broadcast and hands it to OnEphemeral.
func (o *sessionObserver[M]) Ephemeral(from string, payload json.RawMessage) {
	onEphemeral := o.options.OnEphemeral
	if onEphemeral == nil {
		return
	}
	message, err := o.openEphemeral(payload)
	if err != nil {
		o.ephemeralUnusable++
		o.logger.Debug("unusable broadcast; dropped", "from", from, "err", err)
		return
	}
	o.callback(func() { onEphemeral(from, message.Name, message.Data) })
}

func (o *sessionObserver[M]) openEphemeral(payload json.RawMessage) (ephemeralMessage, error) {
	var message ephemeralMessage
	var text string
	if err := json.Unmarshal(payload, &text); err != nil {
		return message, err
	}
	plaintext, err := o.sealer.openString(purposeEphemeral, text)
	if err != nil {
		return message, err
	}
	err = island.Decode(plaintext, &message)
	return message, err
}
