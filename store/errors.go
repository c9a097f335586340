package store

import "errors"

// ErrBadSessionID is returned for session ids that cannot name a directory:
// see ValidateSessionID.
var ErrBadSessionID = errors.New("store: bad session id")

// ErrClosed is returned by every call made after Close.
var ErrClosed = errors.New("store: closed")
