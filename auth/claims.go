package auth

import (
	"fmt"
	"strings"
	"time"
)

// Right is something a token allows.
type Right string

// The rights. Each allows exactly one kind of request.
const (
	// RightJoin: open a WebSocket to the reflector and JOIN a session of
	// one of the token's apps.
	RightJoin Right = "join"
	// RightUpload: PUT a file under /files/ (snapshots, persisted data,
	// Data-API blobs).
	RightUpload Right = "upload"
	// RightRead: GET or HEAD a file under /files/.
	RightRead Right = "read"
)

// AllRights are the rights in their canonical order, which is what a
// Croquet or Multisynq client needs: it joins, uploads snapshots and
// persisted data, and downloads them.
var AllRights = []Right{RightJoin, RightUpload, RightRead}

// AnyApp, as an app entry, allows every app.
const AnyApp = "*"

// appPrefixSuffix ends an app entry that allows every app under a prefix:
// "com.example.*" allows "com.example.chat" and "com.example.chat.beta",
// not "com.example" itself.
const appPrefixSuffix = ".*"

// Claims are what a token says: who signed it, what it is for, and until
// when. The JSON names are the token's wire format.
type Claims struct {
	// KeyID names the public key that verifies the signature (StaticKeyID
	// for a static token).
	KeyID string `json:"kid"`
	// Apps are the apps the token is for: exact appIds, prefixes ending in
	// ".*", or AnyApp. A JOIN's appId must match one; so must the appId in
	// a file path apps/<appId>/...
	Apps []string `json:"apps"`
	// Rights are the kinds of request the token allows.
	Rights []Right `json:"rights"`
	// Expires is the Unix time (seconds) from which the token is no longer
	// valid. Zero only in the claims of a static token, which never expires.
	Expires int64 `json:"exp"`
	// Subject optionally says whom the token was issued to; the server logs
	// it with every refusal and connection.
	Subject string `json:"sub,omitempty"`
}

// Grants reports whether the claims include right.
func (c Claims) Grants(right Right) bool {
	for _, granted := range c.Rights {
		if granted == right {
			return true
		}
	}
	return false
}

// AllowsApp reports whether one of the app entries matches appID.
func (c Claims) AllowsApp(appID string) bool {
	for _, entry := range c.Apps {
		if appMatches(entry, appID) {
			return true
		}
	}
	return false
}

func appMatches(entry, appID string) bool {
	switch {
	case entry == AnyApp:
		return true
	case strings.HasSuffix(entry, appPrefixSuffix):
		prefix := strings.TrimSuffix(entry, "*")
		return len(appID) > len(prefix) && strings.HasPrefix(appID, prefix)
	}
	return entry == appID
}

// Authorize returns nil if the claims grant right, and, unless appID is
// empty, allow appID; otherwise an error (ErrRightMissing,
// ErrAppNotAllowed) that names what is missing and what the token grants.
func (c Claims) Authorize(right Right, appID string) error {
	if !c.Grants(right) {
		return newError(ErrRightMissing, fmt.Sprintf("token does not grant the %s right (it grants %s)", right, joinRights(c.Rights)))
	}
	if appID != "" && !c.AllowsApp(appID) {
		return newError(ErrAppNotAllowed, fmt.Sprintf("token is not for app %s (it is for %s)", quoteIfOdd(appID), strings.Join(c.Apps, ", ")))
	}
	return nil
}

// CheckExpiry returns ErrExpired if the claims have expired at now. With
// claims that Authentic returned it is Verify without checking the
// signature again.
func (c Claims) CheckExpiry(now time.Time) error {
	if c.Expires != 0 && now.Unix() >= c.Expires {
		return newError(ErrExpired, "token expired at "+c.ExpiresAt().Format(time.RFC3339))
	}
	return nil
}

// ExpiresAt returns the expiry as a time (the zero time for a static
// token).
func (c Claims) ExpiresAt() time.Time {
	if c.Expires == 0 {
		return time.Time{}
	}
	return time.Unix(c.Expires, 0).UTC()
}

// Validate checks the claims of a signed token against every rule; the
// error (ErrMalformed) names the field, the rule and the value.
func (c Claims) Validate() error {
	if err := validateKeyID(c.KeyID); err != nil {
		return err
	}
	if c.KeyID == StaticKeyID {
		return malformed("kid", "not "+StaticKeyID+" (reserved for static tokens)", c.KeyID)
	}
	if err := c.validateGrants(); err != nil {
		return err
	}
	if c.Expires <= 0 || c.Expires > ExpiresMax {
		return malformed("exp", fmt.Sprintf("Unix seconds in [1, %d] (ExpiresMax)", int64(ExpiresMax)), fmt.Sprint(c.Expires))
	}
	return nil
}

// validateGrants checks apps, rights and subject: the part of the claims
// that static tokens have too.
func (c Claims) validateGrants() error {
	if len(c.Apps) == 0 || len(c.Apps) > AppsMax {
		return malformed("apps", fmt.Sprintf("1 to %d entries (AppsMax)", AppsMax), fmt.Sprintf("%d entries", len(c.Apps)))
	}
	for index, app := range c.Apps {
		if err := validateApp(fmt.Sprintf("apps[%d]", index), app); err != nil {
			return err
		}
	}
	if len(c.Rights) == 0 {
		return malformed("rights", "at least one of "+joinRights(AllRights), "none")
	}
	for index, right := range c.Rights {
		if !knownRight(right) {
			return malformed(fmt.Sprintf("rights[%d]", index), "one of "+joinRights(AllRights), string(right))
		}
		for _, earlier := range c.Rights[:index] {
			if earlier == right {
				return malformed(fmt.Sprintf("rights[%d]", index), "each right once", string(right))
			}
		}
	}
	if len(c.Subject) > SubjectBytesMax || !printable(c.Subject) {
		return malformed("sub", fmt.Sprintf("at most %d bytes (SubjectBytesMax) of printable ASCII", SubjectBytesMax), shorten(c.Subject))
	}
	return nil
}

func knownRight(right Right) bool {
	for _, known := range AllRights {
		if right == known {
			return true
		}
	}
	return false
}

// ParseRights parses a comma-separated list of rights ("join,upload,read").
func ParseRights(list string) ([]Right, error) {
	var rights []Right
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			rights = append(rights, Right(item))
		}
	}
	claims := Claims{Apps: []string{AnyApp}, Rights: rights}
	if err := claims.validateGrants(); err != nil {
		return nil, err
	}
	return rights, nil
}

// ParseApps parses a comma-separated list of app entries
// ("com.example.chat,com.example.games.*").
func ParseApps(list string) ([]string, error) {
	var apps []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			apps = append(apps, item)
		}
	}
	claims := Claims{Apps: apps, Rights: AllRights}
	if err := claims.validateGrants(); err != nil {
		return nil, err
	}
	return apps, nil
}

// validateApp checks one app entry: AnyApp, an appId, or an appId prefix
// followed by ".*". Characters are those of reverse domain names (letters,
// digits, ".", "_", "-"), which covers every appId the Croquet client
// accepts.
func validateApp(field, app string) error {
	if app == AnyApp {
		return nil
	}
	name := strings.TrimSuffix(app, appPrefixSuffix)
	rule := fmt.Sprintf(`an appId or a prefix ending in ".*", or "*"; at most %d bytes (AppBytesMax) of letters, digits, ".", "_", "-"`, AppBytesMax)
	if len(app) > AppBytesMax || name == "" || !appCharacters(name) || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") {
		return malformed(field, rule, shorten(app))
	}
	return nil
}

func appCharacters(s string) bool {
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9', b == '.', b == '_', b == '-':
		default:
			return false
		}
	}
	return true
}

// validateKeyID checks a key id: 1 to KeyIDBytesMax letters, digits, ".",
// "_" or "-".
func validateKeyID(id string) error {
	if id == "" || len(id) > KeyIDBytesMax || !appCharacters(id) {
		return malformed("kid", fmt.Sprintf(`1 to %d bytes (KeyIDBytesMax) of letters, digits, ".", "_", "-"`, KeyIDBytesMax), shorten(id))
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func joinRights(rights []Right) string {
	if len(rights) == 0 {
		return "nothing"
	}
	names := make([]string, len(rights))
	for i, right := range rights {
		names[i] = string(right)
	}
	return strings.Join(names, ", ")
}

// displayBytesMax bounds how much of an offending value an error quotes.
const displayBytesMax = 40

// shorten quotes a value for an error message, cut to displayBytesMax.
func shorten(value string) string {
	if len(value) > displayBytesMax {
		return fmt.Sprintf("%q...(%d bytes)", value[:displayBytesMax], len(value))
	}
	return fmt.Sprintf("%q", value)
}

// quoteIfOdd prints a plain appId as it is, anything else quoted.
func quoteIfOdd(appID string) string {
	if len(appID) <= AppBytesMax && appID != "" && appCharacters(appID) {
		return appID
	}
	return shorten(appID)
}

func malformed(field, rule, value string) *Error {
	return newError(ErrMalformed, fmt.Sprintf("%s: must be %s, got %s", field, rule, value))
}
