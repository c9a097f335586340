package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// encoding is base64url without padding (RFC 4648 §5), strict: one text
// per byte string, so a token has exactly one spelling.
var encoding = base64.RawURLEncoding.Strict()

// Mint signs claims with an Ed25519 private key and returns the token. The
// claims must pass Validate; Expires is required. Mint is deterministic.
func Mint(key ed25519.PrivateKey, claims Claims) (string, error) {
	if len(key) != ed25519.PrivateKeySize {
		return "", newError(ErrBadKey, fmt.Sprintf("private key: must be %d bytes (Ed25519), got %d", ed25519.PrivateKeySize, len(key)))
	}
	if err := claims.Validate(); err != nil {
		return "", newError(ErrMalformed, "claims: "+err.Error())
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding claims: %w", err)
	}
	signed := version + "." + encoding.EncodeToString(payload)
	token := signed + "." + encoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
	if len(token) > TokenBytesMax {
		return "", newError(ErrMalformed, fmt.Sprintf("the token would be %d bytes, more than TokenBytesMax (%d): name fewer or shorter apps", len(token), TokenBytesMax))
	}
	return token, nil
}

// Verifier checks tokens: signed ones against its public keys, by key id,
// and static ones against its static tokens. It is immutable and safe for
// concurrent use; build it with NewVerifier or ParseKeys.
type Verifier struct {
	keys    map[string]ed25519.PublicKey
	statics []staticToken
}

// staticToken is a static token as the verifier keeps it: only the
// SHA-256 of the secret, compared in constant time.
type staticToken struct {
	digest [sha256.Size]byte
	claims Claims
}

// PublicKey is a public key under its key id.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// StaticToken is a fixed secret that grants Claims.Apps and Claims.Rights
// and never expires (Claims.KeyID and Claims.Expires are ignored). The
// secret is StaticSecretBytesMin to StaticSecretBytesMax base64url
// characters (A-Z a-z 0-9 _ -), so that it can stand in a URL as it is.
type StaticToken struct {
	Secret string
	Claims Claims
}

// NewVerifier returns a verifier of these keys and static tokens. At least
// one of either is required: a verifier without them would refuse every
// token.
func NewVerifier(keys []PublicKey, statics []StaticToken) (*Verifier, error) {
	switch {
	case len(keys) == 0 && len(statics) == 0:
		return nil, newError(ErrBadKeysFile, "no public key and no static token: every token would be refused")
	case len(keys) > KeysMax:
		return nil, newError(ErrBadKeysFile, fmt.Sprintf("%d public keys, more than KeysMax (%d)", len(keys), KeysMax))
	case len(statics) > StaticTokensMax:
		return nil, newError(ErrBadKeysFile, fmt.Sprintf("%d static tokens, more than StaticTokensMax (%d)", len(statics), StaticTokensMax))
	}
	verifier := &Verifier{keys: make(map[string]ed25519.PublicKey, len(keys))}
	for _, key := range keys {
		if err := validateKeyID(key.ID); err != nil {
			return nil, err
		}
		if key.ID == StaticKeyID {
			return nil, newError(ErrBadKeysFile, fmt.Sprintf("key id %q is reserved for static tokens", StaticKeyID))
		}
		if len(key.Key) != ed25519.PublicKeySize {
			return nil, newError(ErrBadKey, fmt.Sprintf("public key %q: must be %d bytes (Ed25519), got %d", key.ID, ed25519.PublicKeySize, len(key.Key)))
		}
		if verifier.keys[key.ID] != nil {
			return nil, newError(ErrBadKeysFile, fmt.Sprintf("key id %q appears twice", key.ID))
		}
		verifier.keys[key.ID] = append(ed25519.PublicKey(nil), key.Key...)
	}
	for index, static := range statics {
		parsed, err := newStaticToken(static)
		if err != nil {
			return nil, fmt.Errorf("static token %d: %w", index+1, err)
		}
		for _, earlier := range verifier.statics {
			if earlier.digest == parsed.digest {
				return nil, newError(ErrBadKeysFile, fmt.Sprintf("static token %d repeats an earlier one", index+1))
			}
		}
		verifier.statics = append(verifier.statics, parsed)
	}
	return verifier, nil
}

func newStaticToken(static StaticToken) (staticToken, error) {
	if err := validateStaticSecret(static.Secret); err != nil {
		return staticToken{}, err
	}
	claims := Claims{KeyID: StaticKeyID, Apps: static.Claims.Apps, Rights: static.Claims.Rights, Subject: static.Claims.Subject}
	if err := claims.validateGrants(); err != nil {
		return staticToken{}, err
	}
	digest := sha256.Sum256([]byte(static.Secret))
	if claims.Subject == "" {
		// Something to log that identifies the token without revealing it.
		claims.Subject = fmt.Sprintf("static-%x", digest[:4])
	}
	return staticToken{digest: digest, claims: claims}, nil
}

// validateStaticSecret checks a static token's secret without ever
// quoting it.
func validateStaticSecret(secret string) error {
	if len(secret) < StaticSecretBytesMin || len(secret) > StaticSecretBytesMax || !base64URLCharacters(secret) {
		return newError(ErrMalformed, fmt.Sprintf("secret: must be %d to %d characters of A-Z a-z 0-9 _ - (StaticSecretBytesMin, StaticSecretBytesMax), got %d characters%s",
			StaticSecretBytesMin, StaticSecretBytesMax, len(secret), notBase64URL(secret)))
	}
	return nil
}

func notBase64URL(secret string) string {
	if base64URLCharacters(secret) {
		return ""
	}
	return " with others among them"
}

func base64URLCharacters(s string) bool {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// KeyIDs returns the ids of the verifier's public keys.
func (v *Verifier) KeyIDs() []string {
	ids := make([]string, 0, len(v.keys))
	for id := range v.keys {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// StaticTokens returns how many static tokens the verifier accepts.
func (v *Verifier) StaticTokens() int { return len(v.statics) }

// Verify returns the claims of a token that is valid at now: well formed,
// signed by one of the verifier's keys (or one of its static tokens), and
// not expired. The error says exactly why a token is refused.
func (v *Verifier) Verify(token string, now time.Time) (Claims, error) {
	claims, err := v.Authentic(token)
	if err != nil {
		return Claims{}, err
	}
	if err := claims.CheckExpiry(now); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// Authentic is Verify without the expiry check: the token is well formed
// and genuine, whenever it expires. It is for uses in which the token only
// names something its holder was allowed to create, such as the URL of a
// file that a client uploaded and others download long after (see
// docs/operations.md, "Access control").
func (v *Verifier) Authentic(token string) (Claims, error) {
	switch {
	case token == "":
		return Claims{}, newError(ErrMissing, "no token")
	case len(token) > TokenBytesMax:
		return Claims{}, newError(ErrMalformed, fmt.Sprintf("token of %d bytes exceeds TokenBytesMax (%d)", len(token), TokenBytesMax))
	case !strings.HasPrefix(token, version+"."):
		return v.static(token)
	}
	payloadText, signatureText, ok := strings.Cut(token[len(version)+1:], ".")
	if !ok || strings.Contains(signatureText, ".") {
		return Claims{}, newError(ErrMalformed, "malformed token: want mt1.<claims>.<signature>, three parts separated by \".\"")
	}
	payload, err := encoding.DecodeString(payloadText)
	if err != nil {
		return Claims{}, newError(ErrMalformed, "malformed token: the claims are not base64url without padding")
	}
	claims, err := decodeClaims(payload)
	if err != nil {
		return Claims{}, err
	}
	key := v.keys[claims.KeyID]
	if key == nil {
		return Claims{}, newError(ErrUnknownKey, fmt.Sprintf("token signed with key id %q, which this server does not know", claims.KeyID))
	}
	signature, err := encoding.DecodeString(signatureText)
	if err != nil || len(signature) != ed25519.SignatureSize {
		return Claims{}, newError(ErrMalformed, fmt.Sprintf("malformed token: the signature must be %d bytes in base64url without padding", ed25519.SignatureSize))
	}
	if !ed25519.Verify(key, []byte(token[:len(version)+1+len(payloadText)]), signature) {
		return Claims{}, newError(ErrBadSignature, fmt.Sprintf("bad signature: the token was not signed by key %q", claims.KeyID))
	}
	return claims, nil
}

// static returns the claims of a static token, comparing the token's
// digest with every static token's in constant time.
func (v *Verifier) static(token string) (Claims, error) {
	digest := sha256.Sum256([]byte(token))
	found := -1
	for index := range v.statics {
		if subtle.ConstantTimeCompare(digest[:], v.statics[index].digest[:]) == 1 {
			found = index
		}
	}
	if found >= 0 {
		claims := v.statics[found].claims
		claims.Apps = append([]string(nil), claims.Apps...)
		claims.Rights = append([]Right(nil), claims.Rights...)
		return claims, nil
	}
	if other, _, ok := strings.Cut(token, "."); ok && len(other) > 2 && other[:2] == "mt" && allDigits(other[2:]) {
		return Claims{}, newError(ErrMalformed, fmt.Sprintf("token format %s is unknown: this server reads %s tokens", shorten(other), version))
	}
	return Claims{}, newError(ErrUnknownToken, "not a signed token (mt1.…) and not one of the server's static tokens")
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 0
}

// decodeClaims decodes and validates the JSON claims of a signed token. A
// field this package does not know is refused, so that a restriction added
// by a later format is never silently ignored.
func decodeClaims(payload []byte) (Claims, error) {
	decoder := json.NewDecoder(bytes.NewReader(payload))
	decoder.DisallowUnknownFields()
	var claims Claims
	if err := decoder.Decode(&claims); err != nil {
		return Claims{}, newError(ErrMalformed, "malformed token: claims: "+jsonErrorText(err))
	}
	if _, err := decoder.Token(); !errors.Is(err, io.EOF) {
		return Claims{}, newError(ErrMalformed, "malformed token: claims: more than one JSON value")
	}
	if err := claims.Validate(); err != nil {
		return Claims{}, newError(ErrMalformed, "malformed token: claims: "+err.Error())
	}
	return claims, nil
}

// jsonErrorText is encoding/json's error without its "json: " prefix.
func jsonErrorText(err error) string {
	return strings.TrimPrefix(err.Error(), "json: ")
}
