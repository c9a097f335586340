package auth

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
)

func TestParseKeys(t *testing.T) {
	public1, private1 := testKey(1)
	public2, private2 := testKey(2)
	file := strings.Join([]string{
		"# keys of the example deployment",
		"",
		KeyLine("2026-01", public1),
		"  2026-07\ted25519   " + base64.StdEncoding.EncodeToString(public2) + "  \r",
		"static " + testStaticSecret + " apps=com.example.kiosk,com.example.tv.* rights=join,read sub=lobby-screen",
	}, "\n")
	verifier, err := ParseKeys([]byte(file))
	if err != nil {
		t.Fatalf("ParseKeys: %v", err)
	}
	if ids := verifier.KeyIDs(); strings.Join(ids, ",") != "2026-01,2026-07" || verifier.StaticTokens() != 1 {
		t.Errorf("key ids %v, %d static tokens", ids, verifier.StaticTokens())
	}
	for kid, private := range map[string][]byte{"2026-01": private1, "2026-07": private2} {
		claims := testClaims()
		claims.KeyID = kid
		if _, err := verifier.Verify(mint(t, private, claims), testNow); err != nil {
			t.Errorf("token of key %s: %v", kid, err)
		}
	}
	static, err := verifier.Verify(testStaticSecret, testNow)
	if err != nil || static.Subject != "lobby-screen" || !static.AllowsApp("com.example.tv.lobby") || static.Grants(RightUpload) {
		t.Errorf("static token: %+v, %v", static, err)
	}
}

func TestParseKeysRefusals(t *testing.T) {
	public, _ := testKey(1)
	key := base64.RawURLEncoding.EncodeToString(public)
	for _, tc := range []struct {
		name string
		file string
		text string
	}{
		{"empty", "# nothing\n", "every token would be refused"},
		{"two fields", "main ed25519", "keys file line 1: want"},
		{"algorithm", "\nmain rsa " + key, `keys file line 2: key "main": algorithm must be ed25519, got "rsa"`},
		{"not base64", "main ed25519 !!!", `key "main": public key: not base64`},
		{"short key", "main ed25519 " + key[:20], "public key: must be 32 bytes"},
		{"bad kid", "ma/in ed25519 " + key, "kid: must be 1 to 64 bytes"},
		{"duplicate kid", "a ed25519 " + key + "\na ed25519 " + key, `key id "a" appears twice`},
		{"static short secret", "static tooshort apps=* rights=join", "keys file line 1: static token: secret: must be 22 to 256 characters"},
		{"static no rights", "static " + testStaticSecret + " apps=*", "apps=... and rights=... are required"},
		{"static bad right", "static " + testStaticSecret + " apps=* rights=join,fly", "rights[1]: must be one of join, upload, read"},
		{"static bad app", "static " + testStaticSecret + " apps=com.example.,x rights=join", "apps[0]: must be an appId"},
		{"static unknown attribute", "static " + testStaticSecret + " apps=* rights=join expires=1", `unknown attribute "expires"`},
		{"static attribute twice", "static " + testStaticSecret + " apps=* apps=a.b rights=join", "each once"},
		{"static no secret", "static", "got no secret"},
		{"line too long", "# " + strings.Repeat("x", KeysFileLineBytesMax), "KeysFileLineBytesMax"},
		{"file too large", strings.Repeat("#\n", KeysFileBytesMax), "KeysFileBytesMax"},
	} {
		_, err := ParseKeys([]byte(tc.file))
		if !errors.Is(err, ErrBadKeysFile) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v, want ErrBadKeysFile saying %q", tc.name, err, tc.text)
		}
		if err != nil && strings.Contains(err.Error(), testStaticSecret) {
			t.Errorf("%s: the error quotes the static secret: %v", tc.name, err)
		}
	}
}

func TestPrivateKeyPEM(t *testing.T) {
	public, private := testKey(3)
	data, err := MarshalPrivateKey(private)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "-----BEGIN PRIVATE KEY-----\n") {
		t.Errorf("PEM %q", data)
	}
	parsed, err := ParsePrivateKey(data)
	if err != nil || !parsed.Equal(private) {
		t.Fatalf("ParsePrivateKey: %v", err)
	}
	if id := DefaultKeyID(public); len(id) != 11 || id[0] != 'k' || validateKeyID(id) != nil || id != DefaultKeyID(parsed.Public().(ed25519.PublicKey)) {
		t.Errorf("DefaultKeyID %q", id)
	}

	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	for name, tc := range map[string]struct {
		data []byte
		text string
	}{
		"not PEM":   {[]byte("hello"), `want a PEM block "-----BEGIN PRIVATE KEY-----"`},
		"public":    {pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1}}), "want a PEM block"},
		"garbage":   {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1, 2, 3}}), "not PKCS #8"},
		"ECDSA key": {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "must be Ed25519, got *ecdsa.PrivateKey"},
	} {
		if _, err := ParsePrivateKey(tc.data); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%s: %v, want ErrBadKey saying %q", name, err, tc.text)
		}
	}
}

func TestParseRightsAndApps(t *testing.T) {
	rights, err := ParseRights(" join, upload ,read")
	if err != nil || len(rights) != 3 {
		t.Errorf("ParseRights: %v, %v", rights, err)
	}
	if _, err := ParseRights(""); err == nil || !strings.Contains(err.Error(), "at least one") {
		t.Errorf("ParseRights(\"\"): %v", err)
	}
	apps, err := ParseApps("com.example.chat, org.games.*,*")
	if err != nil || len(apps) != 3 {
		t.Errorf("ParseApps: %v, %v", apps, err)
	}
	for _, bad := range []string{"", ".*", "a..*x", "com.example.", "a*", "com example"} {
		if _, err := ParseApps(bad); err == nil {
			t.Errorf("ParseApps(%q) accepted", bad)
		}
	}
}
