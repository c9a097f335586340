package auth

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"
)

// testKey returns a deterministic key pair: the same seed, the same tokens.
func testKey(seedByte byte) (ed25519.PublicKey, ed25519.PrivateKey) {
	private := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seedByte}, ed25519.SeedSize))
	return private.Public().(ed25519.PublicKey), private
}

// testNow is the time of every test; tokens expire an hour after it.
var testNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const testStaticSecret = "c3RhdGljLXNlY3JldC1vZi10ZXN0cw"

func testClaims() Claims {
	return Claims{KeyID: "main", Apps: []string{"com.example.chat", "com.example.games.*"},
		Rights: AllRights, Expires: testNow.Add(time.Hour).Unix(), Subject: "alice"}
}

func testVerifier(t testing.TB) *Verifier {
	t.Helper()
	public, _ := testKey(1)
	verifier, err := NewVerifier([]PublicKey{{ID: "main", Key: public}},
		[]StaticToken{{Secret: testStaticSecret, Claims: Claims{Apps: []string{"com.example.kiosk"}, Rights: []Right{RightJoin}}}})
	if err != nil {
		t.Fatal(err)
	}
	return verifier
}

func mint(t testing.TB, key ed25519.PrivateKey, claims Claims) string {
	t.Helper()
	token, err := Mint(key, claims)
	if err != nil {
		t.Fatalf("Mint: %v", err)
	}
	return token
}

// urlSafeToken: a token stands in a URL path segment as it is.
var urlSafeToken = regexp.MustCompile(`^mt1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$`)

func TestMintAndVerify(t *testing.T) {
	_, private := testKey(1)
	claims := testClaims()
	token := mint(t, private, claims)
	if !urlSafeToken.MatchString(token) {
		t.Errorf("token %q is not mt1.<base64url>.<base64url>", token)
	}
	if again := mint(t, private, claims); again != token {
		t.Errorf("Mint is not deterministic: %q then %q", token, again)
	}
	got, err := testVerifier(t).Verify(token, testNow)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if want, _ := json.Marshal(claims); !bytes.Equal(mustJSON(t, got), want) {
		t.Errorf("Verify returned %s, want %s", mustJSON(t, got), want)
	}
	// The payload is the documented JSON.
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
	wantPayload := `{"kid":"main","apps":["com.example.chat","com.example.games.*"],"rights":["join","upload","read"],"exp":1796130000,"sub":"alice"}`
	if string(payload) != wantPayload {
		t.Errorf("payload %s, want %s", payload, wantPayload)
	}
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestExpiry(t *testing.T) {
	_, private := testKey(1)
	claims := testClaims()
	token := mint(t, private, claims)
	verifier := testVerifier(t)
	expires := time.Unix(claims.Expires, 0)
	if _, err := verifier.Verify(token, expires.Add(-time.Second)); err != nil {
		t.Errorf("one second before exp: %v", err)
	}
	_, err := verifier.Verify(token, expires)
	if !errors.Is(err, ErrExpired) || err.Error() != "token expired at 2026-12-01T13:00:00Z" {
		t.Errorf("at exp: %v, want ErrExpired saying when", err)
	}
	if _, err := verifier.Authentic(token); err != nil {
		t.Errorf("Authentic ignores expiry, got %v", err)
	}
}

// signedWith builds a token of arbitrary payload bytes, signed properly.
func signedWith(key ed25519.PrivateKey, payload string) string {
	signed := "mt1." + base64.RawURLEncoding.EncodeToString([]byte(payload))
	return signed + "." + base64.RawURLEncoding.EncodeToString(ed25519.Sign(key, []byte(signed)))
}

func TestVerifyRefusals(t *testing.T) {
	_, private := testKey(1)
	_, otherPrivate := testKey(2)
	good := mint(t, private, testClaims())
	parts := strings.Split(good, ".")
	expires := testClaims().Expires
	payloadWith := func(mutate func(map[string]any)) string {
		fields := map[string]any{"kid": "main", "apps": []string{"com.example.chat"}, "rights": []string{"join"}, "exp": expires}
		mutate(fields)
		data, _ := json.Marshal(fields)
		return string(data)
	}
	for _, tc := range []struct {
		name  string
		token string
		kind  error
		text  string
	}{
		{"empty", "", ErrMissing, "no token"},
		{"too long", "mt1." + strings.Repeat("a", TokenBytesMax), ErrMalformed, "exceeds TokenBytesMax (4096)"},
		{"unknown static", "not-a-token-at-all-but-long", ErrUnknownToken, "not one of the server's static tokens"},
		{"other version", "mt2.abc.def", ErrMalformed, "token format \"mt2\" is unknown"},
		{"two parts", "mt1." + parts[1], ErrMalformed, "three parts"},
		{"four parts", good + ".x", ErrMalformed, "three parts"},
		{"payload not base64", "mt1.***." + parts[2], ErrMalformed, "not base64url"},
		{"payload padded", "mt1." + parts[1] + "=." + parts[2], ErrMalformed, "not base64url"},
		{"payload not JSON", signedWith(private, "{"), ErrMalformed, "claims:"},
		{"unknown field", signedWith(private, payloadWith(func(m map[string]any) { m["nbf"] = 1 })), ErrMalformed, `unknown field "nbf"`},
		{"two JSON values", signedWith(private, payloadWith(func(map[string]any) {})+"{}"), ErrMalformed, "more than one JSON value"},
		{"no apps", signedWith(private, payloadWith(func(m map[string]any) { delete(m, "apps") })), ErrMalformed, "apps: must be 1 to 16 entries"},
		{"bad app", signedWith(private, payloadWith(func(m map[string]any) { m["apps"] = []string{"com.example", "a b"} })), ErrMalformed, `apps[1]: must be an appId`},
		{"unknown right", signedWith(private, payloadWith(func(m map[string]any) { m["rights"] = []string{"join", "admin"} })), ErrMalformed, `rights[1]: must be one of join, upload, read, got admin`},
		{"right twice", signedWith(private, payloadWith(func(m map[string]any) { m["rights"] = []string{"read", "read"} })), ErrMalformed, `rights[1]: must be each right once`},
		{"no exp", signedWith(private, payloadWith(func(m map[string]any) { delete(m, "exp") })), ErrMalformed, "exp: must be Unix seconds"},
		{"exp not integer", signedWith(private, payloadWith(func(m map[string]any) { m["exp"] = 1.5 })), ErrMalformed, "exp"},
		{"static kid", signedWith(private, payloadWith(func(m map[string]any) { m["kid"] = "static" })), ErrMalformed, "reserved for static tokens"},
		{"unknown kid", mint(t, private, Claims{KeyID: "old-2025", Apps: []string{"a.b"}, Rights: []Right{RightRead}, Expires: expires}), ErrUnknownKey, `key id "old-2025", which this server does not know`},
		{"signed by another key", mint(t, otherPrivate, testClaims()), ErrBadSignature, `not signed by key "main"`},
		{"tampered payload", "mt1." + base64.RawURLEncoding.EncodeToString([]byte(payloadWith(func(m map[string]any) { m["apps"] = []string{"*"} }))) + "." + parts[2], ErrBadSignature, "bad signature"},
		{"short signature", "mt1." + parts[1] + "." + parts[2][:20], ErrMalformed, "signature must be 64 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := testVerifier(t).Verify(tc.token, testNow)
			var authError *Error
			if !errors.Is(err, tc.kind) || !errors.As(err, &authError) || !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("Verify: %v; want %v saying %q", err, tc.kind, tc.text)
			}
			if len(tc.token) >= 8 && strings.Contains(err.Error(), tc.token) {
				t.Errorf("the error quotes the token: %v", err)
			}
		})
	}
}

func TestStaticToken(t *testing.T) {
	verifier := testVerifier(t)
	claims, err := verifier.Verify(testStaticSecret, testNow.Add(100*365*24*time.Hour))
	if err != nil {
		t.Fatalf("static token: %v", err)
	}
	if claims.KeyID != StaticKeyID || claims.Expires != 0 || !claims.AllowsApp("com.example.kiosk") || claims.Grants(RightUpload) {
		t.Errorf("static claims %+v", claims)
	}
	if !strings.HasPrefix(claims.Subject, "static-") || strings.Contains(claims.Subject, testStaticSecret[:8]) {
		t.Errorf("static subject %q: want static-<digest>, never the secret", claims.Subject)
	}
	claims.Apps[0] = "changed"
	if again, _ := verifier.Verify(testStaticSecret, testNow); again.Apps[0] != "com.example.kiosk" {
		t.Errorf("claims share memory with the verifier: %v", again.Apps)
	}
	if _, err := verifier.Verify(testStaticSecret[:len(testStaticSecret)-1]+"X", testNow); !errors.Is(err, ErrUnknownToken) {
		t.Errorf("another secret: %v, want ErrUnknownToken", err)
	}
}

func TestAuthorize(t *testing.T) {
	claims := Claims{Apps: []string{"com.example.chat", "org.games.*"}, Rights: []Right{RightJoin, RightRead}}
	for _, tc := range []struct {
		right Right
		app   string
		kind  error
		text  string
	}{
		{RightJoin, "com.example.chat", nil, ""},
		{RightJoin, "org.games.chess", nil, ""},
		{RightJoin, "org.games.chess.beta", nil, ""},
		{RightRead, "", nil, ""},
		{RightJoin, "org.games", ErrAppNotAllowed, "token is not for app org.games (it is for com.example.chat, org.games.*)"},
		{RightJoin, "org.gamesx.chess", ErrAppNotAllowed, "not for app org.gamesx.chess"},
		{RightJoin, "com.example.chat2", ErrAppNotAllowed, "not for app com.example.chat2"},
		{RightJoin, "bad app\n", ErrAppNotAllowed, `not for app "bad app\n"`},
		{RightUpload, "com.example.chat", ErrRightMissing, "token does not grant the upload right (it grants join, read)"},
	} {
		err := claims.Authorize(tc.right, tc.app)
		if tc.kind == nil {
			if err != nil {
				t.Errorf("Authorize(%s, %q): %v", tc.right, tc.app, err)
			}
			continue
		}
		if !errors.Is(err, tc.kind) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("Authorize(%s, %q) = %v, want %v saying %q", tc.right, tc.app, err, tc.kind, tc.text)
		}
	}
	anyApp := Claims{Apps: []string{AnyApp}, Rights: AllRights}
	if anyApp.Authorize(RightUpload, "anything.at.all") != nil {
		t.Errorf("%q does not allow every app", AnyApp)
	}
}

func TestMintRefusesBadInput(t *testing.T) {
	_, private := testKey(1)
	claims := testClaims()
	claims.Expires = 0
	if _, err := Mint(private, claims); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exp") {
		t.Errorf("Mint without exp: %v", err)
	}
	if _, err := Mint(private[:10], testClaims()); !errors.Is(err, ErrBadKey) {
		t.Errorf("Mint with a short key: %v", err)
	}
}

// TestLimitsFit: the largest claims that Validate accepts still make a
// token within TokenBytesMax, and a static token fits too.
func TestLimitsFit(t *testing.T) {
	_, private := testKey(1)
	claims := Claims{KeyID: strings.Repeat("k", KeyIDBytesMax), Expires: ExpiresMax, Subject: strings.Repeat("s", SubjectBytesMax), Rights: AllRights}
	for i := 0; i < AppsMax; i++ {
		claims.Apps = append(claims.Apps, strings.Repeat(string(rune('a'+i)), AppBytesMax-2)+".*")
	}
	token := mint(t, private, claims)
	t.Logf("the largest token is %d bytes (TokenBytesMax %d)", len(token), TokenBytesMax)
	if StaticSecretBytesMax > TokenBytesMax || StaticSecretBytesMin > StaticSecretBytesMax {
		t.Errorf("static secret limits [%d, %d] do not fit TokenBytesMax %d", StaticSecretBytesMin, StaticSecretBytesMax, TokenBytesMax)
	}
	if KeysFileLineBytesMax > KeysFileBytesMax {
		t.Errorf("KeysFileLineBytesMax %d > KeysFileBytesMax %d", KeysFileLineBytesMax, KeysFileBytesMax)
	}
	claims.Apps = append(claims.Apps, "one.more")
	if _, err := Mint(private, claims); !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "AppsMax") {
		t.Errorf("%d apps: %v, want an error naming AppsMax", len(claims.Apps), err)
	}
}

func TestNewVerifierRefusals(t *testing.T) {
	public, _ := testKey(1)
	for _, tc := range []struct {
		name    string
		keys    []PublicKey
		statics []StaticToken
		text    string
	}{
		{"nothing", nil, nil, "every token would be refused"},
		{"duplicate kid", []PublicKey{{"a", public}, {"a", public}}, nil, `key id "a" appears twice`},
		{"reserved kid", []PublicKey{{StaticKeyID, public}}, nil, "reserved"},
		{"short key", []PublicKey{{"a", public[:31]}}, nil, "must be 32 bytes"},
		{"bad kid", []PublicKey{{"a/b", public}}, nil, "kid: must be"},
		{"short secret", nil, []StaticToken{{Secret: "short", Claims: Claims{Apps: []string{"*"}, Rights: AllRights}}}, "got 5 characters"},
		{"secret with dots", nil, []StaticToken{{Secret: "mt1.aaaaaaaaaaaaaaaaaaaaaaaaaa", Claims: Claims{Apps: []string{"*"}, Rights: AllRights}}}, "with others among them"},
		{"static without rights", nil, []StaticToken{{Secret: testStaticSecret, Claims: Claims{Apps: []string{"*"}}}}, "rights: must be at least one"},
		{"static twice", nil, []StaticToken{{Secret: testStaticSecret, Claims: Claims{Apps: []string{"*"}, Rights: AllRights}}, {Secret: testStaticSecret, Claims: Claims{Apps: []string{"*"}, Rights: AllRights}}}, "repeats an earlier one"},
	} {
		_, err := NewVerifier(tc.keys, tc.statics)
		if err == nil || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v, want an error saying %q", tc.name, err, tc.text)
		}
		if err != nil && strings.Contains(err.Error(), testStaticSecret) {
			t.Errorf("%s: the error quotes the secret: %v", tc.name, err)
		}
	}
	keys := make([]PublicKey, KeysMax+1)
	for i := range keys {
		keys[i] = PublicKey{ID: "k" + strings.Repeat("x", i), Key: public}
	}
	if _, err := NewVerifier(keys, nil); err == nil || !strings.Contains(err.Error(), "KeysMax") {
		t.Errorf("%d keys: %v", len(keys), err)
	}
}
