package server

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
)

// Which web pages may use this server from a browser (Config.AllowedOrigins,
// --allowed-origins). The one list decides two things: the CORS headers
// of /files/ (files.go) and the Origin check of WebSocket upgrades
// (server.go). A browser always names the page's origin in the Origin
// header of a WebSocket upgrade and of a cross-origin or non-GET fetch;
// native programs and Node.js clients send none, and are never refused for
// that: the list keeps other people's pages from using the server through
// their visitors' browsers, it does not authenticate anyone.

// AnyOrigin, as the only entry of Config.AllowedOrigins (or the value of
// --allowed-origins), lets pages of every origin use the server: CORS
// answers "*" and every WebSocket Origin is accepted.
const AnyOrigin = "*"

// originPolicy is Config.AllowedOrigins, ready for lookups.
type originPolicy struct {
	anyOrigin bool
	// allowed holds the normalised origins (normalizeOrigin).
	allowed map[string]bool
}

// newOriginPolicy builds the policy of a validated list: empty or
// [AnyOrigin] allows every origin.
func newOriginPolicy(origins []string) originPolicy {
	if len(origins) == 0 || (len(origins) == 1 && origins[0] == AnyOrigin) {
		return originPolicy{anyOrigin: true}
	}
	policy := originPolicy{allowed: make(map[string]bool, len(origins))}
	for _, origin := range origins {
		normalized, err := normalizeOrigin(origin)
		if err != nil {
			panic(fmt.Sprintf("origin policy built from an unvalidated list: %v", err))
		}
		policy.allowed[normalized] = true
	}
	return policy
}

// allows reports whether a request with this Origin header may go on. A
// request without the header is not from a web page's script and is
// always allowed.
func (p originPolicy) allows(origin string) bool {
	if origin == "" || p.anyOrigin {
		return true
	}
	normalized, err := normalizeOrigin(origin)
	return err == nil && p.allowed[normalized]
}

// writeFilesCORS sets the CORS headers of a /files/ response and reports
// whether the request's origin is allowed (docs/operations.md, "Uploaded
// files and browsers"). With every origin allowed the headers are the
// same for everyone (Access-Control-Allow-Origin: *). With a list, an
// allowed Origin is echoed, any other gets no CORS headers (the browser
// then hides the answer from the page), and the answer varies by Origin.
func (p originPolicy) writeFilesCORS(header http.Header, origin string) bool {
	allowed := p.allows(origin)
	switch {
	case p.anyOrigin:
		header.Set("Access-Control-Allow-Origin", "*")
	case !allowed || origin == "":
		header.Add("Vary", "Origin")
		return allowed
	default:
		header.Add("Vary", "Origin")
		header.Set("Access-Control-Allow-Origin", origin)
	}
	header.Set("Access-Control-Allow-Methods", "GET, PUT, OPTIONS")
	header.Set("Access-Control-Allow-Headers", "Content-Type, Cache-Control, Range, X-Croquet-App, X-Croquet-Id, X-Croquet-Session, X-Croquet-Version, X-Croquet-Path")
	header.Set("Access-Control-Expose-Headers", "Content-Length, Content-Range")
	return allowed
}

// ParseAllowedOrigins parses --allowed-origins: AnyOrigin ("*"), or a
// comma-separated list of origins such as
// "https://app.example.com, http://localhost:5173". The result is for
// Config.AllowedOrigins.
func ParseAllowedOrigins(list string) ([]string, error) {
	var origins []string
	for _, item := range strings.Split(list, ",") {
		if item = strings.TrimSpace(item); item != "" {
			origins = append(origins, item)
		}
	}
	if len(origins) == 0 {
		return nil, fmt.Errorf("the list %q is empty; give %q for any origin, or origins such as https://app.example.com", list, AnyOrigin)
	}
	if err := validateOrigins(origins); err != nil {
		return nil, err
	}
	return origins, nil
}

// validateOrigins checks a list for Config.AllowedOrigins: AnyOrigin
// alone, or origins that normalizeOrigin accepts.
func validateOrigins(origins []string) error {
	for index, origin := range origins {
		if origin == AnyOrigin {
			if len(origins) > 1 {
				return fmt.Errorf("%q (entry %d) allows every origin and cannot be combined with others", AnyOrigin, index+1)
			}
			continue
		}
		if _, err := normalizeOrigin(origin); err != nil {
			return fmt.Errorf("entry %d: %w", index+1, err)
		}
	}
	return nil
}

// defaultPorts are the ports that a browser leaves out of an origin.
var defaultPorts = map[string]string{"http": "80", "https": "443"}

// normalizeOrigin returns an origin as browsers write it in the Origin
// header, scheme://host[:port], in lower case and without a default port;
// a trailing "/" is tolerated. Anything else (a path, a query, user
// information, "null") is an error that names the value.
func normalizeOrigin(origin string) (string, error) {
	parsed, err := url.Parse(origin)
	if err != nil {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port]): %v", origin, err)
	}
	switch {
	case parsed.Scheme == "" || parsed.Host == "" || parsed.Opaque != "":
		return "", fmt.Errorf("%q is not an origin: want scheme://host[:port], e.g. https://app.example.com", origin)
	case parsed.User != nil, parsed.Path != "" && parsed.Path != "/", parsed.RawQuery != "", parsed.ForceQuery, parsed.Fragment != "":
		return "", fmt.Errorf("%q is not an origin: only scheme://host[:port], without user, path, query or fragment", origin)
	}
	scheme, host := strings.ToLower(parsed.Scheme), strings.ToLower(parsed.Hostname())
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // an IPv6 address
	}
	if port := parsed.Port(); port != "" && port != defaultPorts[scheme] {
		host += ":" + port
	}
	return scheme + "://" + host, nil
}
