//go:build !(js && wasm)

package client

import "net/http"

// defaultTransport returns the transport of the session's default HTTP
// client: net/http's (see fetch_js.go for GOOS=js).
func defaultTransport() http.RoundTripper { return nil }
