package auth

import "errors"

// Kinds of refusal. Every error of this package wraps one of them
// (errors.Is), and its text says exactly what was wrong, without ever
// quoting the token itself (a token is a credential: it must not end up
// in logs or close reasons).
var (
	// ErrMissing: there is no token (the request's path has no /k/<token>/
	// prefix).
	ErrMissing = errors.New("no token")
	// ErrMalformed: the text is not a token of the known format, or its
	// claims break a rule.
	ErrMalformed = errors.New("malformed token")
	// ErrUnknownToken: not a signed token, and not one of the static tokens.
	ErrUnknownToken = errors.New("unknown token")
	// ErrUnknownKey: the token names a key id the verifier does not hold.
	ErrUnknownKey = errors.New("unknown key id")
	// ErrBadSignature: the signature does not match the claims and the key.
	ErrBadSignature = errors.New("bad signature")
	// ErrExpired: the token was valid until a moment that has passed.
	ErrExpired = errors.New("token expired")
	// ErrRightMissing: the token is valid but does not grant the right the
	// request needs.
	ErrRightMissing = errors.New("right not granted")
	// ErrAppNotAllowed: the token is valid but not for this app.
	ErrAppNotAllowed = errors.New("app not allowed")
	// ErrBadKeysFile: the keys file breaks a rule (the error names the
	// line and the field).
	ErrBadKeysFile = errors.New("bad keys file")
	// ErrBadKey: a private or public key cannot be used.
	ErrBadKey = errors.New("bad key")
)

// Error is a refusal: Kind is one of the Err values above, Text the whole
// explanation.
type Error struct {
	Kind error
	Text string
}

func (e *Error) Error() string { return e.Text }
func (e *Error) Unwrap() error { return e.Kind }

func newError(kind error, text string) *Error { return &Error{Kind: kind, Text: text} }
