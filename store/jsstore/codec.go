package jsstore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/metronome-sync/metronome/store"
)

// One stream message of a session's subject is a batch or a checkpoint:
//
//	kind      1 byte: kindBatch or kindCheckpoint
//	flags     1 byte: flagRecord if a record follows
//	record    uvarint length, bytes (if flagRecord)
//	dropFront uvarint (always 0 in a checkpoint)
//	count     uvarint
//	count ×   seq (4 bytes big-endian), uvarint length, bytes
//
// A batch is applied like store.Batch (Append, DropFront, Record); a
// checkpoint replaces the whole state (record and messages), so a reader
// that starts anywhere before the last checkpoint ends with the same state.
const (
	kindBatch      byte = 'b'
	kindCheckpoint byte = 'c'
	flagRecord     byte = 1
)

var errMalformed = errors.New("jsstore: malformed session message")

// sessionState is a session as of one message of its subject.
type sessionState struct {
	// lastSequence is the stream sequence of the session's last message
	// (what the next append expects), 0 if the session does not exist.
	lastSequence uint64
	record       []byte
	messages     []store.Message
	// liveBytes is what a checkpoint of the state would hold.
	liveBytes int64
	// storedBytes is what the subject holds since its first message
	// (payloads plus messageOverheadBytes each).
	storedBytes int64
}

func encodeBatch(batch *store.Batch) []byte {
	return encode(kindBatch, batch.Record, batch.DropFront, batch.Append)
}

func encodeCheckpoint(state *sessionState) []byte {
	return encode(kindCheckpoint, state.record, 0, state.messages)
}

func encode(kind byte, record []byte, dropFront int, messages []store.Message) []byte {
	size := 2 + 3*binary.MaxVarintLen64 + len(record)
	for _, message := range messages {
		size += 4 + binary.MaxVarintLen64 + len(message.Data)
	}
	out := make([]byte, 0, size)
	var flags byte
	if record != nil {
		flags |= flagRecord
	}
	out = append(out, kind, flags)
	if record != nil {
		out = binary.AppendUvarint(out, uint64(len(record)))
		out = append(out, record...)
	}
	out = binary.AppendUvarint(out, uint64(dropFront))
	out = binary.AppendUvarint(out, uint64(len(messages)))
	for _, message := range messages {
		out = binary.BigEndian.AppendUint32(out, message.Seq)
		out = binary.AppendUvarint(out, uint64(len(message.Data)))
		out = append(out, message.Data...)
	}
	return out
}

// apply applies one stored message (payload) to state. The state keeps
// sub-slices of payload, which must not change afterwards.
func (state *sessionState) apply(payload []byte) error {
	if len(payload) < 2 || (payload[0] != kindBatch && payload[0] != kindCheckpoint) {
		return fmt.Errorf("%w: %d bytes, kind byte not 'b' or 'c'", errMalformed, len(payload))
	}
	kind, flags, rest := payload[0], payload[1], payload[2:]
	var record []byte
	if flags&flagRecord != 0 {
		var ok bool
		if record, rest, ok = readBytes(rest); !ok {
			return fmt.Errorf("%w: record truncated", errMalformed)
		}
	}
	dropFront, rest, ok := readUvarint(rest)
	if !ok {
		return fmt.Errorf("%w: drop count truncated", errMalformed)
	}
	count, rest, ok := readUvarint(rest)
	if !ok || count > uint64(len(rest)) {
		return fmt.Errorf("%w: message count truncated or too large", errMalformed)
	}
	if kind == kindCheckpoint {
		state.record, state.messages, state.liveBytes, state.storedBytes = nil, nil, 0, 0
	}
	for range count {
		if len(rest) < 4 {
			return fmt.Errorf("%w: message truncated", errMalformed)
		}
		seq := binary.BigEndian.Uint32(rest)
		var data []byte
		if data, rest, ok = readBytes(rest[4:]); !ok {
			return fmt.Errorf("%w: message data truncated", errMalformed)
		}
		state.messages = append(state.messages, store.Message{Seq: seq, Data: data})
		state.liveBytes += int64(len(data))
	}
	if dropFront > uint64(len(state.messages)) {
		return fmt.Errorf("%w: drops %d of %d messages", errMalformed, dropFront, len(state.messages))
	}
	state.dropFront(int(dropFront))
	if record != nil {
		state.liveBytes += int64(len(record)) - int64(len(state.record))
		state.record = record
	}
	state.storedBytes += int64(len(payload)) + messageOverheadBytes
	return nil
}

// dropFront removes the n oldest messages.
func (state *sessionState) dropFront(n int) {
	for _, message := range state.messages[:n] {
		state.liveBytes -= int64(len(message.Data))
	}
	state.messages = state.messages[n:]
	if len(state.messages) == 0 {
		state.messages = nil
	}
}

func readUvarint(b []byte) (uint64, []byte, bool) {
	value, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, b, false
	}
	return value, b[n:], true
}

func readBytes(b []byte) ([]byte, []byte, bool) {
	length, rest, ok := readUvarint(b)
	if !ok || length > uint64(len(rest)) {
		return nil, b, false
	}
	return rest[:length:length], rest[length:], true
}
