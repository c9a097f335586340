// Package auth decides who may use a Metronome server: it mints and
// verifies the access tokens that clients carry in their box URL
// (http://host/k/<token>/, docs/operations.md "Access control"), and reads
// the keys file that tells a server which tokens to accept.
//
// A token is
//
//	mt1.<base64url(JSON claims)>.<base64url(Ed25519 signature)>
//
// where the signature covers the ASCII text "mt1.<payload>" and the claims
// name the signing key (kid), the apps the token is for, the rights it
// grants (join, upload, read) and when it expires. The operator's backend
// signs tokens with a private key; the server holds only public keys, by
// key id, so keys can be rotated by adding a new one and removing the old
// one once its tokens have expired. A static token is a fixed secret from
// the keys file with its own apps and rights, for setups without a
// backend.
//
// The package is pure: it does no I/O, never reads the clock (the caller
// passes the time) and needs no randomness (Ed25519 signatures are
// deterministic; the caller generates keys). A Verifier is immutable and
// safe for concurrent use.
package auth
