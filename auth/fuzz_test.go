package auth

import (
	"errors"
	"strings"
	"testing"
)

// authErrorKinds are the kinds every refusal wraps.
var authErrorKinds = []error{ErrMissing, ErrMalformed, ErrUnknownToken, ErrUnknownKey, ErrBadSignature, ErrExpired}

// FuzzVerify: any text is either refused with an *Error of a known kind
// that never quotes the token, or accepted with claims that pass every
// rule. A token is a stranger's URL segment: nothing may panic.
func FuzzVerify(f *testing.F) {
	_, private := testKey(1)
	_, other := testKey(2)
	good, _ := Mint(private, testClaims())
	foreign, _ := Mint(other, testClaims())
	for _, seed := range []string{"", good, foreign, testStaticSecret, "mt1..", "mt1.e30.", "mt2.a.b", good + ".", good[:len(good)-3],
		signedWith(private, `{"kid":"main","apps":["a.b"],"rights":["join"],"exp":1}`)} {
		f.Add(seed)
	}
	verifier := testVerifier(f)
	f.Fuzz(func(t *testing.T, token string) {
		claims, err := verifier.Verify(token, testNow)
		if err != nil {
			var authError *Error
			if !errors.As(err, &authError) || !isKnownKind(err) {
				t.Fatalf("Verify(%q): %v (%T) is not an *Error of a known kind", token, err, err)
			}
			if len(token) >= 8 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error quotes the token: %v", err)
			}
			return
		}
		if claims.KeyID == StaticKeyID {
			if token != testStaticSecret {
				t.Fatalf("Verify(%q) accepted a static token that is not the secret", token)
			}
			return
		}
		if err := claims.Validate(); err != nil {
			t.Fatalf("Verify(%q) accepted claims that break a rule: %v", token, err)
		}
		if !urlSafeToken.MatchString(token) {
			t.Fatalf("Verify accepted %q, which is not mt1.<base64url>.<base64url>", token)
		}
	})
}

func isKnownKind(err error) bool {
	for _, kind := range authErrorKinds {
		if errors.Is(err, kind) {
			return true
		}
	}
	return false
}

// FuzzParseKeys: any file is either refused with ErrBadKeysFile, or gives
// a verifier with at least one key or static token.
func FuzzParseKeys(f *testing.F) {
	public, _ := testKey(1)
	for _, seed := range []string{
		KeyLine("main", public),
		"# comment\n" + KeyLine("a", public) + "\nstatic " + testStaticSecret + " apps=* rights=join,read sub=x\n",
		"static " + testStaticSecret + " apps=a.b.* rights=upload",
		"main ed25519 AAAA", "static", "\n\n\r\n", "a b c d",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		verifier, err := ParseKeys(data)
		if err != nil {
			if !errors.Is(err, ErrBadKeysFile) {
				t.Fatalf("ParseKeys: %v does not wrap ErrBadKeysFile", err)
			}
			return
		}
		if len(verifier.KeyIDs())+verifier.StaticTokens() == 0 {
			t.Fatalf("ParseKeys accepted a file without keys")
		}
	})
}
