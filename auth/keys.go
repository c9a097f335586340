package auth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"strings"
)

// The keys file tells a server which tokens to accept (metronome serve
// --auth-keys FILE). It is text, one entry per line; blank lines and lines
// starting with # are ignored; fields are separated by spaces or tabs:
//
//	# <key id> ed25519 <public key>: tokens signed with this key
//	2026-01 ed25519 pEcAxo8G7dQAmfsuPCwM0yIcCWBnDgtjj4o3aXU2GFY
//	# static <secret> apps=<apps> rights=<rights> [sub=<name>]: a fixed token
//	static 3q2-7wKjxOh7Vmjo0mVN_8wLo3Nk9xPu apps=com.example.chat rights=join,upload,read sub=kiosk
//
// A public key is 32 bytes in base64 (base64url or standard, with or
// without padding), as "metronome token keygen" prints the line. Apps and
// rights are comma-separated lists as in the claims (Claims.Apps,
// Claims.Rights). The file may hold several keys: to rotate, add the new
// key, mint with it, and remove the old line once its tokens have expired.

// ParseKeys reads a keys file. Errors wrap ErrBadKeysFile (or the error of
// the broken claim) and name the line; they never quote a static secret.
func ParseKeys(data []byte) (*Verifier, error) {
	if len(data) > KeysFileBytesMax {
		return nil, newError(ErrBadKeysFile, fmt.Sprintf("keys file of %d bytes exceeds KeysFileBytesMax (%d)", len(data), KeysFileBytesMax))
	}
	var keys []PublicKey
	var statics []StaticToken
	for index, line := range bytes.Split(data, []byte("\n")) {
		number := index + 1
		if len(line) > KeysFileLineBytesMax {
			return nil, lineError(number, fmt.Sprintf("%d bytes, more than KeysFileLineBytesMax (%d)", len(line), KeysFileLineBytesMax))
		}
		text := strings.TrimSpace(string(line))
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.Fields(text)
		if fields[0] == StaticKeyID {
			static, err := parseStaticLine(fields[1:])
			if err != nil {
				return nil, lineError(number, err.Error())
			}
			statics = append(statics, static)
			continue
		}
		key, err := parseKeyLine(fields)
		if err != nil {
			return nil, lineError(number, err.Error())
		}
		keys = append(keys, key)
	}
	verifier, err := NewVerifier(keys, statics)
	if err != nil {
		return nil, newError(ErrBadKeysFile, "keys file: "+err.Error())
	}
	return verifier, nil
}

func lineError(number int, text string) *Error {
	return newError(ErrBadKeysFile, fmt.Sprintf("keys file line %d: %s", number, text))
}

// keyAlgorithm is the only algorithm of a key line.
const keyAlgorithm = "ed25519"

func parseKeyLine(fields []string) (PublicKey, error) {
	if len(fields) != 3 {
		return PublicKey{}, fmt.Errorf(`want "<key id> %s <public key>" or "%s <secret> apps=... rights=...", got %d fields`, keyAlgorithm, StaticKeyID, len(fields))
	}
	if err := validateKeyID(fields[0]); err != nil {
		return PublicKey{}, err
	}
	if fields[1] != keyAlgorithm {
		return PublicKey{}, fmt.Errorf("key %q: algorithm must be %s, got %s", fields[0], keyAlgorithm, shorten(fields[1]))
	}
	key, err := ParsePublicKey(fields[2])
	if err != nil {
		return PublicKey{}, fmt.Errorf("key %q: %w", fields[0], err)
	}
	return PublicKey{ID: fields[0], Key: key}, nil
}

func parseStaticLine(fields []string) (StaticToken, error) {
	if len(fields) == 0 {
		return StaticToken{}, fmt.Errorf(`want "%s <secret> apps=... rights=... [sub=...]", got no secret`, StaticKeyID)
	}
	static := StaticToken{Secret: fields[0]}
	if err := validateStaticSecret(static.Secret); err != nil {
		return StaticToken{}, fmt.Errorf("static token: %w", err)
	}
	seen := map[string]bool{}
	for _, field := range fields[1:] {
		name, value, ok := strings.Cut(field, "=")
		if !ok || seen[name] {
			return StaticToken{}, fmt.Errorf("static token: want apps=..., rights=... and optionally sub=..., each once, got %s", shorten(field))
		}
		seen[name] = true
		var err error
		switch name {
		case "apps":
			static.Claims.Apps, err = ParseApps(value)
		case "rights":
			static.Claims.Rights, err = ParseRights(value)
		case "sub":
			static.Claims.Subject = value
		default:
			err = fmt.Errorf("unknown attribute %s (want apps, rights, sub)", shorten(name))
		}
		if err != nil {
			return StaticToken{}, fmt.Errorf("static token: %w", err)
		}
	}
	if !seen["apps"] || !seen["rights"] {
		return StaticToken{}, fmt.Errorf("static token: apps=... and rights=... are required")
	}
	return static, nil
}

// ParsePublicKey decodes an Ed25519 public key written in base64 (url or
// standard alphabet, with or without padding).
func ParsePublicKey(text string) (ed25519.PublicKey, error) {
	for _, encoding := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if key, err := encoding.DecodeString(text); err == nil {
			if len(key) != ed25519.PublicKeySize {
				return nil, newError(ErrBadKey, fmt.Sprintf("public key: must be %d bytes (Ed25519), got %d", ed25519.PublicKeySize, len(key)))
			}
			return ed25519.PublicKey(key), nil
		}
	}
	return nil, newError(ErrBadKey, "public key: not base64")
}

// KeyLine returns the keys-file line of a public key.
func KeyLine(id string, key ed25519.PublicKey) string {
	return id + " " + keyAlgorithm + " " + base64.RawURLEncoding.EncodeToString(key)
}

// DefaultKeyID derives a key id from a public key: "k" and the first 10
// characters of the base64url SHA-256 of the key. Two keys practically
// never share it, and the same key always gets it.
func DefaultKeyID(key ed25519.PublicKey) string {
	digest := sha256.Sum256(key)
	return "k" + base64.RawURLEncoding.EncodeToString(digest[:])[:10]
}

// privateKeyPEMType is the PEM block of a PKCS #8 private key, which
// OpenSSL, Node.js (crypto.createPrivateKey), Python and Go all read.
const privateKeyPEMType = "PRIVATE KEY"

// MarshalPrivateKey encodes an Ed25519 private key as PEM (PKCS #8).
func MarshalPrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, newError(ErrBadKey, fmt.Sprintf("private key: must be %d bytes (Ed25519), got %d", ed25519.PrivateKeySize, len(key)))
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, newError(ErrBadKey, "private key: "+err.Error())
	}
	return pem.EncodeToMemory(&pem.Block{Type: privateKeyPEMType, Bytes: der}), nil
}

// ParsePrivateKey decodes a PEM (PKCS #8) Ed25519 private key, as
// MarshalPrivateKey, "metronome token keygen" or
// "openssl genpkey -algorithm ed25519" write it.
func ParsePrivateKey(data []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != privateKeyPEMType {
		return nil, newError(ErrBadKey, fmt.Sprintf(`private key: want a PEM block "-----BEGIN %s-----" (PKCS #8)`, privateKeyPEMType))
	}
	parsed, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, newError(ErrBadKey, "private key: not PKCS #8: "+err.Error())
	}
	key, ok := parsed.(ed25519.PrivateKey)
	if !ok {
		return nil, newError(ErrBadKey, fmt.Sprintf("private key: must be Ed25519, got %T", parsed))
	}
	return key, nil
}
