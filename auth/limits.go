package auth

// Limits. Every token, claim and keys-file entry is bounded, so that a
// stranger's URL costs the server a bounded amount of work, and so that a
// token always fits in a URL path segment. TestLimitsFit checks that the
// largest valid claims still make a token of at most TokenBytesMax.
const (
	// TokenBytesMax bounds a token (signed or static) as it appears in the
	// URL. Longer tokens are refused before any decoding.
	TokenBytesMax = 4096
	// KeyIDBytesMax bounds a key id ("kid").
	KeyIDBytesMax = 64
	// AppsMax bounds the app entries of one token.
	AppsMax = 16
	// AppBytesMax bounds one app entry: an appId (the Croquet client
	// allows 128 characters) or a prefix pattern.
	AppBytesMax = 128
	// SubjectBytesMax bounds the optional subject ("sub"), which the
	// server logs.
	SubjectBytesMax = 128
	// ExpiresMax is the latest expiry, in Unix seconds
	// (9999-12-31T23:59:59Z), so that every expiry can be printed.
	ExpiresMax = 253402300799

	// StaticSecretBytesMin is the shortest static token: 22 base64url
	// characters carry 128 bits, if they are random.
	StaticSecretBytesMin = 22
	// StaticSecretBytesMax bounds a static token.
	StaticSecretBytesMax = 256

	// KeysMax bounds the public keys of a keys file (or a Verifier).
	KeysMax = 64
	// StaticTokensMax bounds the static tokens of a keys file.
	StaticTokensMax = 64
	// KeysFileBytesMax bounds a keys file.
	KeysFileBytesMax = 256 << 10
	// KeysFileLineBytesMax bounds one line of a keys file.
	KeysFileLineBytesMax = 4096
)

// version is the token format's prefix; a token of another version is
// refused with a message that says so.
const version = "mt1"

// StaticKeyID is the key id of the claims of a static token; no key line
// can use it, because a line that starts with it declares a static token.
const StaticKeyID = "static"
