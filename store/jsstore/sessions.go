package jsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store"
)

// subject is the session's subject in the sessions stream.
func (s *Store) subject(sessionID string) string {
	return s.subjectPrefix + encodeToken(sessionID)
}

func (s *Store) cached(sessionID string) *sessionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[sessionID]
}

func (s *Store) remember(sessionID string, state *sessionState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.sessions == nil {
		return // closed meanwhile
	}
	if state == nil {
		delete(s.sessions, sessionID)
		return
	}
	s.sessions[sessionID] = state
}

// Forget drops what the Store remembers of the session (when its host
// closes it). The next Commit must then follow a LoadSession, or it
// expects the session not to exist.
func (s *Store) Forget(sessionID string) {
	s.remember(sessionID, nil)
}

// LoadSession reads the session from the stream and remembers its last
// sequence for the fencing of the next Commit. If that sequence is the one
// this Store appended or loaded last, the remembered state is returned
// without reading the rest.
func (s *Store) LoadSession(ctx context.Context, sessionID string) (store.Session, error) {
	if err := s.begin(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return store.Session{}, err
	}
	// A read that gets no answer (a stream electing a new leader after
	// its leader died) is tried again, as appends are: the node taking
	// over a session waits for JetStream instead of failing the clients.
	retryUntil := time.Now().Add(s.options.AppendRetryFor)
	for {
		state, err := s.read(ctx, sessionID)
		if err == nil {
			return store.Session{Record: bytes.Clone(state.record), Messages: store.CloneMessages(state.messages)}, nil
		}
		if !unanswered(err) || ctx.Err() != nil || time.Now().After(retryUntil) {
			return store.Session{}, err
		}
		s.retries.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(appendRetryInterval):
		}
	}
}

// unanswered reports whether a JetStream request failed for want of an
// answer (a timeout, no responders, a stream without a leader), which may
// pass, rather than with an answer.
func unanswered(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrDisconnected)
}

// read returns the session's current state and remembers it.
func (s *Store) read(ctx context.Context, sessionID string) (*sessionState, error) {
	ctx, cancel := context.WithTimeout(ctx, readAttemptTimeout)
	defer cancel()
	subject := s.subject(sessionID)
	last, err := s.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		s.remember(sessionID, nil)
		return nil, fmt.Errorf("session %q: %w", sessionID, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("session %q: reading its last message: %w", sessionID, err)
	}
	if state := s.cached(sessionID); state != nil && state.lastSequence == last.Sequence {
		return state, nil
	}
	state := &sessionState{}
	// From the subject's first message up to last: a checkpoint on the
	// way resets the state, so messages purged meanwhile do not matter.
	first := uint64(1)
	if len(last.Data) > 0 && last.Data[0] == kindCheckpoint {
		first = last.Sequence // the checkpoint alone is the state
	}
	for sequence := first; sequence < last.Sequence; {
		message, err := s.stream.GetMsg(ctx, sequence, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return nil, fmt.Errorf("session %q: reading from stream sequence %d: %w", sessionID, sequence, err)
		}
		if message.Sequence >= last.Sequence {
			break
		}
		if err := state.apply(message.Data); err != nil {
			return nil, fmt.Errorf("session %q: stream sequence %d: %w", sessionID, message.Sequence, err)
		}
		sequence = message.Sequence + 1
	}
	if err := state.apply(last.Data); err != nil {
		return nil, fmt.Errorf("session %q: stream sequence %d: %w", sessionID, last.Sequence, err)
	}
	state.lastSequence = last.Sequence
	s.remember(sessionID, state)
	return state, nil
}

// SessionRecord returns the session's record, or store.ErrNotFound.
func (s *Store) SessionRecord(ctx context.Context, sessionID string) ([]byte, error) {
	if err := s.begin(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return nil, err
	}
	state, err := s.read(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	if state.record == nil {
		return nil, fmt.Errorf("session %q has no record: %w", sessionID, store.ErrNotFound)
	}
	return bytes.Clone(state.record), nil
}

// Commit appends the batch as one message to the session's subject,
// expecting the subject's last sequence to be the one this Store last
// appended or loaded (0 if it has not seen the session). If another node
// appended meanwhile, nothing is stored and the error wraps ErrFenced.
// Commit returns once the stream has acknowledged the append (stored on a
// majority of its replicas).
func (s *Store) Commit(ctx context.Context, sessionID string, batch store.Batch) error {
	if err := s.begin(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return err
	}
	state := s.cached(sessionID)
	if state == nil {
		state = &sessionState{}
	}
	if batch.DropFront < 0 || batch.DropFront > len(state.messages)+len(batch.Append) {
		return fmt.Errorf("session %q: batch drops %d messages, the log has %d after appending %d",
			sessionID, batch.DropFront, len(state.messages)+len(batch.Append), len(batch.Append))
	}
	if batch.Empty() {
		return nil
	}
	payload := encodeBatch(&batch)
	sequence, err := s.append(ctx, sessionID, payload, state.lastSequence)
	if err != nil {
		return err
	}
	// The next state is built on a copy, so that a failure above leaves
	// the remembered state as it was.
	next := *state
	next.messages = append(slices.Clip(next.messages), batch.Append...)
	for _, message := range batch.Append {
		next.liveBytes += int64(len(message.Data))
	}
	next.dropFront(batch.DropFront)
	if batch.Record != nil {
		next.liveBytes += int64(len(batch.Record)) - int64(len(next.record))
		next.record = bytes.Clone(batch.Record)
	}
	next.storedBytes += int64(len(payload)) + messageOverheadBytes
	next.lastSequence = sequence
	s.remember(sessionID, &next)
	s.compact(ctx, sessionID, &next)
	return nil
}

// append publishes one message to the session's subject with the expected
// last subject sequence and returns its stream sequence.
func (s *Store) append(ctx context.Context, sessionID string, payload []byte, expected uint64) (uint64, error) {
	if len(payload) > s.payloadBytesMax {
		return 0, fmt.Errorf("session %q: batch is %d bytes encoded, the server's max_payload is %d (jsstore does not split batches yet)",
			sessionID, len(payload), s.payloadBytesMax)
	}
	// The message id makes a retry safe: if an attempt whose answer was
	// lost stored the message, JetStream answers the retry with that
	// attempt's acknowledgement (a duplicate) instead of storing it twice.
	// A random part makes it unique to this append (the expected sequence
	// alone repeats after a deleted session starts again at 0).
	id := fmt.Sprintf("%s@%d.%016x", encodeToken(sessionID), expected, rand.Uint64())
	retryUntil := time.Now().Add(s.options.AppendRetryFor)
	var ack *jetstream.PubAck
	var err error
	for attempt := 0; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, appendAttemptTimeout)
		ack, err = s.js.PublishMsg(attemptCtx, &nats.Msg{Subject: s.subject(sessionID), Data: payload},
			jetstream.WithExpectStream(s.stream.CachedInfo().Config.Name),
			jetstream.WithExpectLastSequencePerSubject(expected),
			jetstream.WithMsgID(id))
		cancel()
		if isWrongLastSequence(err) {
			// nats-server 2.15 may answer "wrong last sequence" to the only
			// writer of a subject while its previous append is still being
			// applied. Fenced only if the subject really moved on.
			sequence, ours, checkErr := s.lastOfSubject(ctx, sessionID, id)
			switch {
			case checkErr == nil && ours:
				return sequence, nil // an earlier attempt stored it
			case checkErr == nil && sequence == expected && ctx.Err() == nil && time.Now().Before(retryUntil):
				s.retries.Add(1)
				time.Sleep(appendRetryInterval / 10)
				continue
			}
			break
		}
		if err == nil || ctx.Err() != nil || time.Now().After(retryUntil) {
			break
		}
		// No answer, or JetStream busy electing a leader: the outcome is
		// unknown, and the same message id settles it.
		s.retries.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(appendRetryInterval):
		}
	}
	if isWrongLastSequence(err) {
		s.remember(sessionID, nil)
		return 0, fmt.Errorf("session %q: append expecting last sequence %d: %w (%w)", sessionID, expected, ErrFenced, err)
	}
	if err != nil {
		// The append may or may not be stored: forget the state, so that
		// the next Commit is fenced unless the session is loaded again.
		s.remember(sessionID, nil)
		return 0, fmt.Errorf("session %q: append: %w", sessionID, err)
	}
	return ack.Sequence, nil
}

// lastOfSubject returns the stream sequence of the session's last message
// (0 if it has none), read from the stream's leader, and whether that
// message is the one with message id id.
func (s *Store) lastOfSubject(ctx context.Context, sessionID, id string) (uint64, bool, error) {
	readCtx, cancel := context.WithTimeout(ctx, appendAttemptTimeout)
	defer cancel()
	last, err := s.stream.GetLastMsgForSubject(readCtx, s.subject(sessionID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return last.Sequence, last.Header.Get(jetstream.MsgIDHeader) == id, nil
}

// compact appends a checkpoint of the state and purges the subject's older
// messages, when the subject holds at least CompactBytesMin dead bytes and
// at least as many dead as live bytes. A failure is not the commit's
// failure (the batch is stored): the state stays as it was, and if the
// checkpoint was stored after all, the next Commit is fenced.
func (s *Store) compact(ctx context.Context, sessionID string, state *sessionState) {
	dead := state.storedBytes - state.liveBytes
	if dead < s.options.CompactBytesMin || dead < state.liveBytes {
		return
	}
	payload := encodeCheckpoint(state)
	if len(payload) > s.payloadBytesMax {
		return // a checkpoint in several messages is not done yet
	}
	sequence, err := s.append(ctx, sessionID, payload, state.lastSequence)
	if err != nil {
		if !errors.Is(err, ErrFenced) {
			s.remember(sessionID, state)
		}
		return
	}
	checkpoint := &sessionState{lastSequence: sequence, record: state.record, messages: slices.Clone(state.messages),
		liveBytes: state.liveBytes, storedBytes: int64(len(payload)) + messageOverheadBytes}
	s.remember(sessionID, checkpoint)
	// Not fenced, and need not be: it removes only what the checkpoint,
	// which was appended with fencing, makes redundant.
	_ = s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.subject(sessionID)), jetstream.WithPurgeSequence(sequence))
}

// DeleteSession purges the session's subject. It is not fenced: a node that
// still appends to the session afterwards gets ErrFenced.
func (s *Store) DeleteSession(ctx context.Context, sessionID string) error {
	if err := s.begin(ctx, store.ValidateSessionID(sessionID)); err != nil {
		return err
	}
	s.remember(sessionID, nil)
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.subject(sessionID))); err != nil {
		return fmt.Errorf("session %q: purging: %w", sessionID, err)
	}
	return nil
}

// Sessions lists the sessions whose subject holds messages, sorted.
func (s *Store) Sessions(ctx context.Context) ([]string, error) {
	if err := s.begin(ctx, nil); err != nil {
		return nil, err
	}
	info, err := s.stream.Info(ctx, jetstream.WithSubjectFilter(s.subjectPrefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("listing sessions: %w", err)
	}
	ids := make([]string, 0, len(info.State.Subjects))
	for subject := range info.State.Subjects {
		id, err := decodeToken(strings.TrimPrefix(subject, s.subjectPrefix))
		if err != nil {
			return nil, fmt.Errorf("listing sessions: subject %q: %w", subject, err)
		}
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

func isWrongLastSequence(err error) bool {
	var apiError *jetstream.APIError
	return errors.As(err, &apiError) &&
		(apiError.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiError.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
