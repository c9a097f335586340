package diskstore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/metronome-sync/metronome/store"
)

// pointerNameBytesMax bounds the last segment of a pointer key, which names
// the file <segment>.json.
const pointerNameBytesMax = store.PathSegmentBytesMax - len(pointerFileSuffix)

// PutPointer replaces pointers/<key>.json atomically.
func (s *Store) PutPointer(ctx context.Context, key string, value []byte) error {
	if err := check(ctx, validatePointerKey(key)); err != nil {
		return err
	}
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	err = s.replaceFile(s.pointersDirectory, key+pointerFileSuffix, s.durable, func(w io.Writer) error {
		_, err := w.Write(value)
		return err
	})
	if err != nil {
		return fmt.Errorf("diskstore: writing pointer %q: %w", key, err)
	}
	return nil
}

// GetPointer reads pointers/<key>.json, or returns store.ErrNotFound.
func (s *Store) GetPointer(ctx context.Context, key string) ([]byte, error) {
	if err := check(ctx, validatePointerKey(key)); err != nil {
		return nil, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, err
	}
	defer end()
	value, err := readRegularFile(s.pointersDirectory, key+pointerFileSuffix)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("pointer %q: %w", key, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("diskstore: reading pointer %q: %w", key, err)
	}
	return value, nil
}

// validatePointerKey checks a key with store.ValidatePath and leaves room
// for the file name suffix in its last segment.
func validatePointerKey(key string) error {
	if err := store.ValidatePath(key); err != nil {
		return err
	}
	if _, name := splitLast(key); len(name) > pointerNameBytesMax {
		return fmt.Errorf("%w: the last segment of pointer key %q is %d bytes, limit is %d (PathSegmentBytesMax minus %q)",
			store.ErrBadPath, key, len(name), pointerNameBytesMax, pointerFileSuffix)
	}
	return nil
}

// PutFile writes the body to a new file under tmp/ and renames it to
// files/<path> once it is complete and within maxBytes, so readers see the
// old or the new content and a failed upload leaves the old one.
func (s *Store) PutFile(ctx context.Context, path string, r io.Reader, maxBytes int64) error {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return err
	}
	if maxBytes < 0 {
		return fmt.Errorf("diskstore: file %q: size limit is %d bytes, must not be negative", path, maxBytes)
	}
	end, err := s.begin()
	if err != nil {
		return err
	}
	defer end()
	err = s.replaceFile(s.filesDirectory, path, s.durable, func(w io.Writer) error {
		written, err := io.Copy(w, io.LimitReader(contextReader{ctx, r}, maxBytes+1))
		if err != nil {
			return err
		}
		if written > maxBytes {
			return fmt.Errorf("body exceeds %d bytes: %w", maxBytes, store.ErrTooLarge)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("diskstore: writing file %q: %w", path, err)
	}
	return nil
}

// OpenFile opens files/<path> for reading, or returns store.ErrNotFound. A
// later PutFile of the same path does not change what the reader reads.
func (s *Store) OpenFile(ctx context.Context, path string) (io.ReadCloser, int64, error) {
	if err := check(ctx, store.ValidatePath(path)); err != nil {
		return nil, 0, err
	}
	end, err := s.begin()
	if err != nil {
		return nil, 0, err
	}
	defer end()
	file, size, err := openRegularFile(s.filesDirectory, path)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, fmt.Errorf("file %q: %w", path, store.ErrNotFound)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("diskstore: opening file %q: %w", path, err)
	}
	return file, size, nil
}

// contextReader fails reads once its context is done, so an upload stops
// when its request is canceled.
type contextReader struct {
	ctx    context.Context
	reader io.Reader
}

func (r contextReader) Read(buffer []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.reader.Read(buffer)
}
