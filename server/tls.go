package server

// # HTTPS and WSS
//
// With Config.TLS the listener on Addr speaks TLS only: the web root,
// /files/, /healthz and the reflector are served as https:// and wss://
// (a plain-HTTP request on it gets net/http's 400 "Client sent an HTTP
// request to an HTTPS server"). HTTP/2 is not offered: WebSocket upgrades
// hijack an HTTP/1.1 connection, and a browser that saw h2 on the origin
// could try RFC 8441 WebSockets over it.
//
// A TLS connection is a *tls.Conn: its socket carries ciphertext, so it
// never gets the raw-descriptor fast paths of plain connections
// (non-blocking writes, conn_write_unix.go; the read poller,
// conn_readpoll_linux.go). See socketOf in conn.go.
//
// CertificateFiles keeps a certificate read from PEM files and hands it to
// every handshake through tls.Config.GetCertificate, so that Reload (on
// SIGHUP, cmd/metronome) replaces it for new connections without a
// restart. Config.HTTPRedirectAddr adds a plain-HTTP listener that sends
// every request to the https:// URL on Addr.

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

// tlsVersionMin is the oldest TLS version accepted: TLS 1.0 and 1.1 are
// deprecated (RFC 8996), and every browser and Node.js version that runs
// the Croquet client speaks 1.2.
const tlsVersionMin = tls.VersionTLS12

// certificateFileBytesMax bounds a certificate or key file: a chain of a
// few certificates is a few KiB.
const certificateFileBytesMax = 1 << 20

// CertificateFiles is a certificate chain and its private key read from
// PEM files (as written by Let's Encrypt clients: fullchain.pem,
// privkey.pem). Reload reads them again; handshakes that start afterwards
// present the new certificate. Safe for concurrent use.
type CertificateFiles struct {
	certFile, keyFile string
	current           atomic.Pointer[tls.Certificate]
}

// LoadCertificateFiles reads a PEM certificate chain and its private key.
// The error names the file that could not be used.
func LoadCertificateFiles(certFile, keyFile string) (*CertificateFiles, error) {
	files := &CertificateFiles{certFile: certFile, keyFile: keyFile}
	if err := files.Reload(); err != nil {
		return nil, err
	}
	return files, nil
}

// Reload reads the files again. On an error the previous certificate
// stays in use.
func (f *CertificateFiles) Reload() error {
	certPEM, err := readBounded(f.certFile, "TLS certificate")
	if err != nil {
		return err
	}
	keyPEM, err := readBounded(f.keyFile, "TLS key")
	if err != nil {
		return err
	}
	certificate, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return fmt.Errorf("TLS certificate %s with key %s: %w", f.certFile, f.keyFile, err)
	}
	if certificate.Leaf == nil {
		if certificate.Leaf, err = x509.ParseCertificate(certificate.Certificate[0]); err != nil {
			return fmt.Errorf("TLS certificate %s: %w", f.certFile, err)
		}
	}
	f.current.Store(&certificate)
	return nil
}

// readBounded reads a file of at most certificateFileBytesMax bytes.
func readBounded(path, what string) ([]byte, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer file.Close()
	data, err := io.ReadAll(io.LimitReader(file, certificateFileBytesMax+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	if len(data) > certificateFileBytesMax {
		return nil, fmt.Errorf("%s %s: larger than %d bytes (certificateFileBytesMax)", what, path, certificateFileBytesMax)
	}
	return data, nil
}

// Leaf is the certificate in use (for logs: its names and expiry).
func (f *CertificateFiles) Leaf() *x509.Certificate { return f.current.Load().Leaf }

// Describe returns log attributes of the certificate in use: its files,
// the names it is valid for and when it expires.
func (f *CertificateFiles) Describe() []any {
	leaf := f.Leaf()
	names := append([]string(nil), leaf.DNSNames...) // the leaf is shared: never append to its slice
	for _, address := range leaf.IPAddresses {
		names = append(names, address.String())
	}
	return []any{"cert_file", f.certFile, "key_file", f.keyFile, "names", names,
		"not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
}

// GetCertificate is for tls.Config.GetCertificate: the current certificate.
func (f *CertificateFiles) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return f.current.Load(), nil
}

// TLSConfig returns a config for Config.TLS that presents the current
// certificate.
func (f *CertificateFiles) TLSConfig() *tls.Config {
	return &tls.Config{MinVersion: tlsVersionMin, GetCertificate: f.GetCertificate}
}

// validateTLS reports a TLS config without a certificate or below TLS
// 1.2, and a redirect without TLS.
func (c *Config) validateTLS() error {
	if c.TLS == nil {
		if c.HTTPRedirectAddr != "" {
			return errors.New("server config: HTTPRedirectAddr redirects to https on Addr and needs TLS")
		}
		return nil
	}
	if len(c.TLS.Certificates) == 0 && c.TLS.GetCertificate == nil && c.TLS.GetConfigForClient == nil {
		return errors.New("server config: TLS has no certificate (Certificates, GetCertificate or GetConfigForClient)")
	}
	if c.TLS.MinVersion != 0 && c.TLS.MinVersion < tlsVersionMin {
		return fmt.Errorf("server config: TLS.MinVersion must be at least TLS 1.2 (%#x), got %#x", tlsVersionMin, c.TLS.MinVersion)
	}
	return nil
}

// listenerTLSConfig is Config.TLS as the listener uses it: at least TLS
// 1.2, HTTP/1.1 only (see the top of this file).
func (s *Server) listenerTLSConfig() *tls.Config {
	config := s.config.TLS.Clone()
	if config.MinVersion == 0 {
		config.MinVersion = tlsVersionMin
	}
	config.NextProtos = []string{"http/1.1"}
	return config
}

// URL returns the server's base URL: "http://HOST:PORT/", or
// "https://HOST:PORT/" with TLS (the box URL of a client on this machine;
// the reflector is at ws:// or wss:// under it).
func (s *Server) URL() string {
	if s.config.TLS != nil {
		return "https://" + s.Addr() + "/"
	}
	return "http://" + s.Addr() + "/"
}

// startRedirect listens on Config.HTTPRedirectAddr, if set, and answers
// every request there with a redirect to https on Addr.
func (s *Server) startRedirect() error {
	if s.config.HTTPRedirectAddr == "" {
		return nil
	}
	listener, err := net.Listen("tcp", s.config.HTTPRedirectAddr)
	if err != nil {
		return fmt.Errorf("listening on %s (HTTPRedirectAddr): %w", s.config.HTTPRedirectAddr, err)
	}
	_, httpsPort, _ := net.SplitHostPort(s.Addr())
	s.redirectListener = listener
	s.redirectServer = &http.Server{
		Handler:           httpsRedirect{port: httpsPort, fallbackHost: s.Addr()},
		ReadHeaderTimeout: httpReadHeaderTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          s.httpServer.ErrorLog,
	}
	go s.redirectServer.Serve(listener)
	return nil
}

// RedirectAddr returns the address of the HTTP redirect listener, "" when
// there is none.
func (s *Server) RedirectAddr() string {
	if s.redirectListener == nil {
		return ""
	}
	return s.redirectListener.Addr().String()
}

// httpsRedirect answers every request with 308 Permanent Redirect (the
// method and body are kept) to the same path and query over https, on
// the host the client asked for and the port of Addr.
type httpsRedirect struct {
	port string
	// fallbackHost is Addr, for a request without a Host header.
	fallbackHost string
}

func (h httpsRedirect) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Server", "metronome")
	http.Redirect(w, r, h.target(r), http.StatusPermanentRedirect)
}

func (h httpsRedirect) target(r *http.Request) string {
	host := r.Host
	if host == "" {
		host = h.fallbackHost
	}
	if name, _, err := net.SplitHostPort(host); err == nil {
		host = name
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	authority := net.JoinHostPort(host, h.port)
	if h.port == "443" {
		authority = host
		if strings.Contains(host, ":") {
			authority = "[" + host + "]"
		}
	}
	return "https://" + authority + r.URL.RequestURI()
}
