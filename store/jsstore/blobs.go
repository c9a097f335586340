package jsstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/metronome-sync/metronome/store"
)

// PutPointer stores value under key in the pointers bucket (key encoded as
// one base64url token: pointer keys may hold characters KV keys cannot).
func (s *Store) PutPointer(ctx context.Context, key string, value []byte) error {
	if err := s.begin(ctx, store.ValidatePath(key)); err != nil {
		return err
	}
	if _, err := s.pointers.Put(ctx, encodeToken(key), bytes.Clone(value)); err != nil {
		return fmt.Errorf("pointer %q: %w", key, err)
	}
	return nil
}

// GetPointer returns the value under key, or store.ErrNotFound.
func (s *Store) GetPointer(ctx context.Context, key string) ([]byte, error) {
	if err := s.begin(ctx, store.ValidatePath(key)); err != nil {
		return nil, err
	}
	entry, err := s.pointers.Get(ctx, encodeToken(key))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, fmt.Errorf("pointer %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pointer %q: %w", key, err)
	}
	return bytes.Clone(entry.Value()), nil
}

// PutFile reads the whole body (at most maxBytes) and then stores it in the
// files object store, which replaces the object's metadata only once all of
// its chunks are stored.
func (s *Store) PutFile(ctx context.Context, path string, r io.Reader, maxBytes int64) error {
	if err := s.begin(ctx, store.ValidatePath(path)); err != nil {
		return err
	}
	if maxBytes < 0 {
		return fmt.Errorf("file %q: size limit is %d bytes, must not be negative", path, maxBytes)
	}
	body, err := io.ReadAll(io.LimitReader(r, maxBytes+1))
	if err != nil {
		return fmt.Errorf("file %q: reading body: %w", path, err)
	}
	if int64(len(body)) > maxBytes {
		return fmt.Errorf("file %q: body exceeds %d bytes: %w", path, maxBytes, store.ErrTooLarge)
	}
	if err := s.begin(ctx, nil); err != nil {
		return err
	}
	if _, err := s.files.PutBytes(ctx, path, body); err != nil {
		return fmt.Errorf("file %q: %w", path, err)
	}
	return nil
}

// OpenFile reads the whole file and returns a reader over it, so that a
// later replacement cannot change what the reader sees.
func (s *Store) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	if err := s.begin(ctx, store.ValidatePath(path)); err != nil {
		return nil, 0, err
	}
	content, err := s.files.GetBytes(ctx, path)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, 0, fmt.Errorf("file %q: %w", path, store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("file %q: %w", path, err)
	}
	return io.NopCloser(bytes.NewReader(content)), int64(len(content)), nil
}
