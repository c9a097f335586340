package server

import (
	"io"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestConnectionsPerIP: one client address (here revealed by a trusted
// proxy's X-Forwarded-For) may hold ConnectionsPerIPMax connections; one
// more is refused with 429 and counted, another address is not affected,
// and a connection that ends frees its place.
func TestConnectionsPerIP(t *testing.T) {
	server := startServer(t, Config{ConnectionsPerIPMax: 2, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	upgrade := func(client string) *http.Response {
		t.Helper()
		request, err := http.NewRequest(http.MethodGet, "http://"+server.Addr()+"/reflector/s1", nil)
		if err != nil {
			t.Fatal(err)
		}
		request.Header = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
			"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}, "X-Forwarded-For": {client}}
		response, err := http.DefaultClient.Do(request)
		if err != nil {
			t.Fatal(err)
		}
		return response
	}
	first, second := upgrade("203.0.113.7"), upgrade("203.0.113.7")
	for _, response := range []*http.Response{first, second} {
		if response.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade within the limit: %d", response.StatusCode)
		}
	}
	third := upgrade("203.0.113.7")
	body, _ := io.ReadAll(third.Body)
	third.Body.Close()
	if third.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(body), "ConnectionsPerIPMax=2") {
		t.Errorf("a third connection from one address: %d %q, want 429 naming the limit", third.StatusCode, body)
	}
	if got := server.metrics.rejectedPerIP.Load(); got != 1 {
		t.Errorf("metronome_connections_rejected_per_ip_total %d, want 1", got)
	}
	other := upgrade("198.51.100.1")
	if other.StatusCode != http.StatusSwitchingProtocols {
		t.Errorf("another address: %d, want 101", other.StatusCode)
	}
	other.Body.Close()
	first.Body.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		again := upgrade("203.0.113.7")
		again.Body.Close()
		if again.StatusCode == http.StatusSwitchingProtocols {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the place of a closed connection was not freed: %d", again.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
	second.Body.Close()
}
