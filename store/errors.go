package store

import "errors"

// ErrBadSessionID is returned for session ids that cannot name a directory:
// see ValidateSessionID.
var ErrBadSessionID = errors.New("store: bad session id")

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("store: closed")

// ErrCorrupt is returned by LoadSession when a session's stored data is
// damaged in a way the store cannot repair (a checksum failure with valid
// data after it, a log that disagrees with its journal): data that clients
// may have seen is gone. A store that returns it has moved the damaged
// files out of the way (quarantined them), so the next LoadSession finds
// nothing and the session starts again on a new timeline; the error says
// where the files went.
var ErrCorrupt = errors.New("store: stored data is damaged")

// ErrFenced is returned by Commit of a store shared by several nodes
// (store/jsstore) when another writer changed the session since this one
// loaded it: another node owns the session now. Nothing of the batch was
// stored; the caller must stop stamping the session and send its clients
// elsewhere (host.Session does: they are asked to reconnect).
var ErrFenced = errors.New("store: session was changed by another writer (fenced)")
