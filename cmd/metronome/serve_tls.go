package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/metronome-sync/metronome/server"
)

// tlsFlags are serve's TLS flags (docs/operations.md, "TLS").
type tlsFlags struct {
	// certFile and keyFile are --tls-cert and --tls-key: both or neither.
	certFile, keyFile string
	// redirectAddr is --http-redirect-addr.
	redirectAddr string
}

// tlsSettings reads the certificate of --tls-cert and --tls-key; nil
// (and no error) without them.
func tlsSettings(flags tlsFlags) (*server.CertificateFiles, error) {
	switch {
	case flags.certFile == "" && flags.keyFile == "":
		if flags.redirectAddr != "" {
			return nil, errors.New("--http-redirect-addr redirects to https on --addr: it needs --tls-cert and --tls-key")
		}
		return nil, nil
	case flags.certFile == "":
		return nil, errors.New("--tls-key needs --tls-cert (the certificate chain, PEM): give both or neither")
	case flags.keyFile == "":
		return nil, errors.New("--tls-cert needs --tls-key (its private key, PEM): give both or neither")
	}
	certificates, err := server.LoadCertificateFiles(flags.certFile, flags.keyFile)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	return certificates, nil
}

// tlsConfig is server.Config.TLS for the certificate files: nil without TLS.
func tlsConfig(certificates *server.CertificateFiles) *tls.Config {
	if certificates == nil {
		return nil
	}
	return certificates.TLSConfig()
}

// logTLS says at start-up which certificate is served, and warns when it
// has expired (clients refuse it).
func logTLS(logger *slog.Logger, certificates *server.CertificateFiles, srv *server.Server) {
	if certificates == nil {
		return
	}
	logger.Info("TLS: serving https and wss; SIGHUP re-reads the certificate", certificates.Describe()...)
	warnIfExpired(logger, certificates)
	if redirect := srv.RedirectAddr(); redirect != "" {
		logger.Info("redirecting plain HTTP to https", "addr", redirect, "to", srv.URL())
	}
}

func warnIfExpired(logger *slog.Logger, certificates *server.CertificateFiles) {
	if leaf := certificates.Leaf(); time.Now().After(leaf.NotAfter) {
		logger.Warn("the TLS certificate has expired: clients refuse it", certificates.Describe()...)
	}
}

// reloadCertificate re-reads the certificate files on SIGHUP: new
// handshakes present the new certificate; a file that cannot be used
// keeps the previous one.
func reloadCertificate(logger *slog.Logger, certificates *server.CertificateFiles) {
	if err := certificates.Reload(); err != nil {
		logger.Error("SIGHUP: TLS certificate not reloaded; the previous certificate stays in use", "err", err)
		return
	}
	logger.Info("SIGHUP: TLS certificate reloaded", certificates.Describe()...)
	warnIfExpired(logger, certificates)
}

// reflectorURL is the WebSocket URL pattern of the reflector under the
// server's base URL: ws:// or wss://.
func reflectorURL(srv *server.Server) string {
	return "ws" + strings.TrimPrefix(srv.URL(), "http") + "reflector/<sessionId>"
}
