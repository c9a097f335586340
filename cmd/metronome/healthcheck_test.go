package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestHealthcheck: exit 0 and the answer for 200; 1 with the status and
// reason for 503 and for a server that does not answer; 2 for a bad URL.
func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		if status == http.StatusOK {
			w.Write([]byte("ok\n"))
		} else {
			w.Write([]byte("storage fails: writing the journal: no space left on device\n"))
		}
	}))
	defer server.Close()
	run := func(args ...string) (int, string, string) {
		var stdout, stderr bytes.Buffer
		code := healthcheckCommand(args, &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	if code, out, _ := run("--url", server.URL+"/healthz"); code != 0 || out != "ok\n" {
		t.Errorf("healthy: exit %d, %q", code, out)
	}
	status = http.StatusServiceUnavailable
	if code, _, errOut := run("--url", server.URL+"/healthz"); code != 1 || !strings.Contains(errOut, "503") || !strings.Contains(errOut, "no space left") {
		t.Errorf("storage failing: exit %d, %q", code, errOut)
	}
	server.Close()
	if code, _, errOut := run("--url", server.URL+"/healthz", "--timeout", "1s"); code != 1 || !strings.Contains(errOut, "unhealthy") {
		t.Errorf("no server: exit %d, %q", code, errOut)
	}
	if code, _, _ := run("--url", "ftp://x"); code != 2 {
		t.Errorf("bad url: exit %d, want 2", code)
	}
}
