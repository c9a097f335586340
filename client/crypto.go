package client

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// End-to-end encryption. Every payload a view sends, the tove and every
// snapshot are sealed with AES-256-GCM under a key derived from the
// session password; the reflector and the file server only ever see
// ciphertext. (The reference client derives its key with PBKDF2-SHA1, one
// iteration and no salt, and uses unauthenticated CBC plus a separate
// HMAC; we use a real work factor, a per-session salt and an AEAD.)
const (
	// KeyIterations is the PBKDF2-HMAC-SHA256 work factor. It costs ~0.1 s
	// natively and under a second in a browser's WebAssembly, once per
	// join; it makes guessing passwords from captured traffic slow.
	KeyIterations = 200_000
	keyBytes      = 32
	nonceBytes    = 12
)

// ErrWrongPassword means that the session exists and its members use
// another password: Join cannot decrypt what they send. The error Join
// returns wraps it (errors.Is) and names the session and the app.
var ErrWrongPassword = errors.New("client: wrong password")

// sessionID derives a Go session's id from the app id, the model version
// and the session name: sessions of another app or model version are
// other sessions.
func sessionID(appID, version, name string) string {
	sum := sha256.Sum256([]byte("metronome/session/v1\x00" + appID + "\x00" + version + "\x00" + name))
	return hex.EncodeToString(sum[:20])
}

// sealer encrypts and decrypts with one session's key.
type sealer struct {
	aead      cipher.AEAD
	sessionID string
}

func newSealer(password, appID, name, sessionID string) (*sealer, error) {
	salt := []byte("metronome/key/v1\x00" + appID + "\x00" + name)
	key, err := pbkdf2.Key(sha256.New, password, salt, KeyIterations, keyBytes)
	if err != nil {
		return nil, fmt.Errorf("client: deriving the session key: %w", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead, sessionID: sessionID}, nil
}

// seal encrypts plaintext bound to purpose (the additional data, with the
// session id): a ciphertext of one purpose or session does not open as
// another.
func (s *sealer) seal(purpose string, plaintext []byte) []byte {
	out := make([]byte, nonceBytes, nonceBytes+len(plaintext)+s.aead.Overhead())
	if _, err := rand.Read(out); err != nil {
		panic(fmt.Sprintf("client: no randomness for a nonce: %v", err))
	}
	return s.aead.Seal(out, out, plaintext, []byte(s.sessionID+"\x00"+purpose))
}

func (s *sealer) open(purpose string, sealed []byte) ([]byte, error) {
	if len(sealed) < nonceBytes+s.aead.Overhead() {
		return nil, fmt.Errorf("client: %s ciphertext of %d bytes is too short", purpose, len(sealed))
	}
	plaintext, err := s.aead.Open(nil, sealed[:nonceBytes], sealed[nonceBytes:], []byte(s.sessionID+"\x00"+purpose))
	if err != nil {
		return nil, fmt.Errorf("client: %s does not decrypt with the session key", purpose)
	}
	return plaintext, nil
}

// sealString returns the sealed plaintext as base64url text (for JSON
// payloads and the tove).
func (s *sealer) sealString(purpose string, plaintext []byte) string {
	return base64.RawURLEncoding.EncodeToString(s.seal(purpose, plaintext))
}

func (s *sealer) openString(purpose, text string) ([]byte, error) {
	sealed, err := base64.RawURLEncoding.DecodeString(text)
	if err != nil {
		return nil, fmt.Errorf("client: %s is not base64url: %w", purpose, err)
	}
	return s.open(purpose, sealed)
}

// Purposes (additional data) of sealed values.
const (
	purposePayload  = "payload"
	purposeTove     = "tove"
	purposeSnapshot = "snapshot"
	// purposeEphemeral seals broadcasts (ephemeral.go): one never opens
	// as an input, nor an input as one.
	purposeEphemeral = "ephemeral"
)
