package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/metronome-sync/metronome/internal/testcert"
	"github.com/metronome-sync/metronome/store/memstore"
)

// --- servers and clients (certificates: internal/testcert) ---

// startTLSServer starts a server with the certificate files and returns
// it with the files it reloads.
func startTLSServer(t testing.TB, certificate testcert.Certificate, config Config) (*Server, *CertificateFiles) {
	t.Helper()
	files, err := LoadCertificateFiles(certificate.CertFile, certificate.KeyFile)
	if err != nil {
		t.Fatalf("LoadCertificateFiles: %v", err)
	}
	config.TLS = files.TLSConfig()
	return startServer(t, config), files
}

// dialTLSSession connects the test client over wss://, trusting pool.
func dialTLSSession(t testing.TB, addr string, pool *x509.CertPool, sessionID, viewID string) *client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dialTimeout)
	defer cancel()
	dialer := ws.Dialer{TLSConfig: &tls.Config{RootCAs: pool}}
	url := "wss://" + addr + "/reflector/" + sessionID
	conn, reader, _, err := dialer.Dial(ctx, url)
	if err != nil {
		t.Fatalf("dialing %s: %v", url, err)
	}
	if _, ok := conn.(*tls.Conn); !ok {
		t.Fatalf("dialing %s gave a %T, want a *tls.Conn", url, conn)
	}
	if reader == nil {
		reader = bufio.NewReader(conn)
	}
	t.Cleanup(func() { conn.Close() })
	return &client{t: t, conn: conn, reader: reader, maxTime: -1, sessionID: sessionID, viewID: viewID}
}

// httpsClient trusts pool only.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{Timeout: frameTimeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// --- tests ---

// TestTLSClientsExchangeMessages: two clients over wss:// join one
// session and see each other's messages in one order, before and after an
// idle pause longer than a plain connection's reader waits before parking
// (readerParkAfterIdleMax), and a frame too large for an inline flush.
// Any byte written to a TLS connection's socket directly would break the
// client's TLS stream.
func TestTLSClientsExchangeMessages(t *testing.T) {
	certificate := testcert.New(t, t.TempDir(), 1)
	server, _ := startTLSServer(t, certificate, Config{})
	if want := "https://" + server.Addr() + "/"; server.URL() != want {
		t.Errorf("URL() = %q, want %q", server.URL(), want)
	}
	pool := testcert.Pool(t, certificate)
	sessionID := newSessionID(t)
	a := dialTLSSession(t, server.Addr(), pool, sessionID, "viewA")
	syncA := a.join()
	b := dialTLSSession(t, server.Addr(), pool, sessionID, "viewB")
	if syncB := b.join(); syncB.Timeline != syncA.Timeline {
		t.Errorf("second SYNC has timeline %q, want %q", syncB.Timeline, syncA.Timeline)
	}

	var payloads []string
	send := func(from *client, round string, count int) {
		for i := 0; i < count; i++ {
			payload := fmt.Sprintf("%s-%s-%d", from.viewID, round, i)
			payloads = append(payloads, payload)
			from.sendMessage(payload)
		}
	}
	send(a, "first", 5)
	send(b, "first", 5)
	a.awaitAll(payloads)
	b.awaitAll(payloads)

	time.Sleep(readerParkAfterIdleMax + 500*time.Millisecond)
	send(b, "after-idle", 5)
	large := strings.Repeat("x", inlineWriteBytesMax+1024) // written by the writer goroutine
	payloads = append(payloads, large)
	a.sendMessage(large)
	send(a, "after-idle", 5)
	a.awaitAll(payloads)
	b.awaitAll(payloads)
	for a.lastSeq != b.lastSeq {
		behind := a
		if seqAfter(b.lastSeq, a.lastSeq) {
			behind = b
		}
		behind.readUntil("RECV", func(frame serverFrame) bool { return frame.Action == "RECV" })
	}
	if len(a.messages) != len(b.messages) {
		t.Fatalf("A saw %d messages, B %d, up to the same seq %d", len(a.messages), len(b.messages), a.lastSeq)
	}
	for i := range a.messages {
		if !bytes.Equal(a.messages[i].Raw, b.messages[i].Raw) {
			t.Fatalf("message %d differs: A %s, B %s", i, shorten(a.messages[i].Raw), shorten(b.messages[i].Raw))
		}
	}
	a.ping("still-there")
}

// TestTLSConnectionsHaveNoRawSocket: a connection accepted over TLS never
// gets the raw socket (non-blocking writes and the read poller work on the
// socket's bytes, which are TLS records); a plain TCP connection does.
func TestTLSConnectionsHaveNoRawSocket(t *testing.T) {
	certificate := testcert.New(t, t.TempDir(), 1)
	files, err := LoadCertificateFiles(certificate.CertFile, certificate.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			accepted <- conn
		}
	}()
	server := &Server{config: Config{TLS: files.TLSConfig()}}

	plainClient, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer plainClient.Close()
	plain := <-accepted
	defer plain.Close()
	if socketOf(plain) == nil {
		t.Errorf("a plain TCP connection (%T) has no raw socket", plain)
	}
	emptyBuffer := bufio.NewReadWriter(bufio.NewReader(plain), bufio.NewWriter(plain))
	if c := newConn(server, 1, plain, emptyBuffer, "test"); c.rawConn == nil {
		t.Errorf("newConn of a plain TCP connection: no raw socket")
	}

	tcpClient, err := net.Dial("tcp", listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tcpClient.Close()
	serverSide := tls.Server(<-accepted, server.listenerTLSConfig()) // what tls.NewListener accepts
	defer serverSide.Close()
	if socketOf(serverSide) != nil {
		t.Errorf("a *tls.Conn has a raw socket: its ciphertext would be read and written as WebSocket frames")
	}
	if c := newConn(server, 2, serverSide, bufio.NewReadWriter(bufio.NewReader(serverSide), bufio.NewWriter(serverSide)), "test"); c.rawConn != nil {
		t.Errorf("newConn of a *tls.Conn: raw socket set")
	}
}

// TestTLSFiles: uploads and downloads over https; a plain HTTP request on
// the TLS port gets 400.
func TestTLSFiles(t *testing.T) {
	certificate := testcert.New(t, t.TempDir(), 1)
	server, _ := startTLSServer(t, certificate, Config{})
	client := httpsClient(testcert.Pool(t, certificate))
	fileURL := server.URL() + "files/" + jsSnapshotPath
	content := []byte("CRQ1 encrypted snapshot over TLS")

	request, err := http.NewRequest(http.MethodPut, fileURL, bytes.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	response, err := client.Do(request)
	if err != nil {
		t.Fatalf("PUT %s: %v", fileURL, err)
	}
	response.Body.Close()
	if response.StatusCode != http.StatusCreated {
		t.Fatalf("PUT %s: status %d, want 201", fileURL, response.StatusCode)
	}
	if response.TLS == nil || response.TLS.Version < tls.VersionTLS12 || response.TLS.NegotiatedProtocol == "h2" {
		t.Errorf("PUT over TLS: connection state %+v, want TLS 1.2 or later and HTTP/1.1", response.TLS)
	}
	response, err = client.Get(fileURL)
	if err != nil {
		t.Fatalf("GET %s: %v", fileURL, err)
	}
	body, _ := io.ReadAll(response.Body)
	response.Body.Close()
	if response.StatusCode != http.StatusOK || !bytes.Equal(body, content) {
		t.Errorf("GET %s: %d %q, want 200 %q", fileURL, response.StatusCode, body, content)
	}

	status, body2 := fileRequest(t, http.MethodGet, "http://"+server.Addr()+"/healthz", nil)
	if status != http.StatusBadRequest || !strings.Contains(body2, "HTTPS") {
		t.Errorf("plain HTTP on the TLS port: %d %q, want 400 naming HTTPS", status, body2)
	}
}

// TestTLSCertificateReload: after Reload new handshakes see the new
// certificate; a bad file keeps the one in use.
func TestTLSCertificateReload(t *testing.T) {
	dir := t.TempDir()
	first := testcert.New(t, dir, 1)
	server, files := startTLSServer(t, first, Config{})
	second := testcert.New(t, t.TempDir(), 2)
	pool := testcert.Pool(t, first, second)
	presented := func() int64 {
		t.Helper()
		conn, err := tls.Dial("tcp", server.Addr(), &tls.Config{RootCAs: pool, ServerName: "localhost"})
		if err != nil {
			t.Fatalf("TLS handshake: %v", err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
	}
	if serial := presented(); serial != 1 {
		t.Fatalf("presented certificate %d, want 1", serial)
	}

	// The files are replaced (as a certificate renewal does): the old one
	// stays in use until Reload.
	if err := second.Save(first.CertFile, first.KeyFile); err != nil {
		t.Fatal(err)
	}
	if serial := presented(); serial != 1 {
		t.Errorf("before Reload: presented certificate %d, want 1", serial)
	}
	if err := files.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if serial := presented(); serial != 2 {
		t.Errorf("after Reload: presented certificate %d, want 2", serial)
	}

	// A broken renewal: the key no longer matches. The second stays.
	if err := os.WriteFile(first.KeyFile, first.KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	err := files.Reload()
	if err == nil || !strings.Contains(err.Error(), first.CertFile) {
		t.Errorf("Reload with a key of another certificate: %v, want an error naming %s", err, first.CertFile)
	}
	if serial := presented(); serial != 2 {
		t.Errorf("after a failed Reload: presented certificate %d, want 2", serial)
	}
	if leaf := files.Leaf(); leaf.SerialNumber.Int64() != 2 {
		t.Errorf("Leaf() serial %d, want 2", leaf.SerialNumber.Int64())
	}
}

// TestTLSBadCertificateFiles: unreadable, malformed or mismatched files
// are refused with the file named.
func TestTLSBadCertificateFiles(t *testing.T) {
	dir := t.TempDir()
	good := testcert.New(t, dir, 1)
	other := testcert.New(t, t.TempDir(), 2)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not a certificate\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name, certFile, keyFile, want string
	}{
		{"missing certificate", missing, good.KeyFile, missing},
		{"missing key", good.CertFile, missing, missing},
		{"not PEM", garbage, good.KeyFile, garbage},
		{"key of another certificate", good.CertFile, other.KeyFile, good.CertFile},
	} {
		files, err := LoadCertificateFiles(tc.certFile, tc.keyFile)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: LoadCertificateFiles = %v, %v; want an error naming %s", tc.name, files, err, tc.want)
		}
	}
}

// TestTLSConfig: a TLS config needs a certificate and TLS 1.2 at least;
// a redirect needs TLS.
func TestTLSConfig(t *testing.T) {
	certificate := testcert.New(t, t.TempDir(), 1)
	files, err := LoadCertificateFiles(certificate.CertFile, certificate.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	old := files.TLSConfig()
	old.MinVersion = tls.VersionTLS10
	for _, tc := range []struct {
		name   string
		config Config
		want   string
	}{
		{"no certificate", Config{TLS: &tls.Config{}}, "TLS has no certificate"},
		{"TLS 1.0", Config{TLS: old}, "MinVersion must be at least TLS 1.2"},
		{"redirect without TLS", Config{HTTPRedirectAddr: "127.0.0.1:0"}, "HTTPRedirectAddr"},
	} {
		tc.config.Store = memstore.New()
		_, err := New(tc.config)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	// Served: at least TLS 1.2, HTTP/1.1 only.
	server := &Server{config: Config{TLS: files.TLSConfig()}}
	served := server.listenerTLSConfig()
	if served.MinVersion != tls.VersionTLS12 || len(served.NextProtos) != 1 || served.NextProtos[0] != "http/1.1" {
		t.Errorf("listener TLS config: MinVersion %#x, NextProtos %q; want TLS 1.2 and [http/1.1]", served.MinVersion, served.NextProtos)
	}
}

// TestTLSRedirect: the plain-HTTP address answers every request with 308
// to the same path and query over https, on the requested host and the
// TLS port.
func TestTLSRedirect(t *testing.T) {
	certificate := testcert.New(t, t.TempDir(), 1)
	server, _ := startTLSServer(t, certificate, Config{HTTPRedirectAddr: "127.0.0.1:0"})
	_, port, _ := net.SplitHostPort(server.Addr())
	noFollow := &http.Client{Timeout: frameTimeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for _, tc := range []struct {
		method, host, path, want string
	}{
		{http.MethodGet, "", "/", server.URL()},
		{http.MethodGet, "", "/k/tok/files/a?b=c", server.URL() + "k/tok/files/a?b=c"},
		{http.MethodPut, "sync.example.com", "/files/x", "https://sync.example.com:" + port + "/files/x"},
		{http.MethodGet, "sync.example.com:80", "/healthz", "https://sync.example.com:" + port + "/healthz"},
		{http.MethodGet, "[::1]:80", "/", "https://[::1]:" + port + "/"},
	} {
		request, err := http.NewRequest(tc.method, "http://"+server.RedirectAddr()+tc.path, strings.NewReader("body"))
		if err != nil {
			t.Fatal(err)
		}
		if tc.host != "" {
			request.Host = tc.host
		}
		response, err := noFollow.Do(request)
		if err != nil {
			t.Fatalf("%s %s: %v", tc.method, tc.path, err)
		}
		response.Body.Close()
		if location := response.Header.Get("Location"); response.StatusCode != http.StatusPermanentRedirect || location != tc.want {
			t.Errorf("%s %s (Host %q): %d to %q, want 308 to %q", tc.method, tc.path, tc.host, response.StatusCode, location, tc.want)
		}
	}
	// On port 443 the port is left out.
	target := httpsRedirect{port: "443"}.target(&http.Request{Host: "sync.example.com", URL: &url.URL{Path: "/x", RawQuery: "y"}})
	if target != "https://sync.example.com/x?y" {
		t.Errorf("redirect to port 443: %q, want https://sync.example.com/x?y", target)
	}
}
