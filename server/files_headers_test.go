package server

import (
	"net/http"
	"strings"
	"testing"
)

// An uploaded page is served as opaque bytes that a browser neither sniffs
// nor renders with any power: PUT /files/evil.html must never become a page
// of the server's origin.
func TestUploadedHTMLIsNeverServedAsAPage(t *testing.T) {
	server, _ := filesServer(t)
	url := "http://" + server.Addr() + "/files/evil.html"
	page := "<!doctype html><html><body><script>alert(document.cookie)</script></body></html>"
	request, err := http.NewRequest(http.MethodPut, url, strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	request.Header.Set("Content-Type", "text/html")
	response, err := http.DefaultClient.Do(request)
	if err != nil {
		t.Fatal(err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusCreated {
		t.Fatalf("PUT: status %d, want 201", response.StatusCode)
	}
	for _, method := range []string{http.MethodGet, http.MethodHead} {
		response, body := doRequest(t, method, url, nil, -1)
		if response.StatusCode != http.StatusOK {
			t.Fatalf("%s: status %d, want 200", method, response.StatusCode)
		}
		if method == http.MethodGet && string(body) != page {
			t.Errorf("GET: %q, want the bytes put", shorten(body))
		}
		expectInertFileHeaders(t, method+" evil.html", response.Header)
		if got := response.Header.Get("Content-Type"); got != "application/octet-stream" {
			t.Errorf("%s: Content-Type %q, want application/octet-stream", method, got)
		}
		if got := response.Header.Get("Content-Disposition"); got != "attachment" {
			t.Errorf("%s: Content-Disposition %q, want attachment", method, got)
		}
	}
	// Error answers carry the headers too.
	response, _ = doRequest(t, http.MethodGet, "http://"+server.Addr()+"/files/missing.html", nil, -1)
	expectInertFileHeaders(t, "404", response.Header)
}

func expectInertFileHeaders(t *testing.T, what string, header http.Header) {
	t.Helper()
	if got := header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options %q, want nosniff", what, got)
	}
	policy := header.Get("Content-Security-Policy")
	if !strings.Contains(policy, "sandbox") || !strings.Contains(policy, "default-src 'none'") {
		t.Errorf("%s: Content-Security-Policy %q, want sandbox and default-src 'none'", what, policy)
	}
	if strings.HasPrefix(header.Get("Content-Type"), "text/html") {
		t.Errorf("%s: Content-Type %q", what, header.Get("Content-Type"))
	}
}
