package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeTestCertificate writes a self-signed certificate for 127.0.0.1
// with the given serial number, and its key, into dir.
func writeTestCertificate(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "metronome cmd test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSFlags: --tls-cert and --tls-key go together, a redirect needs
// them, and a certificate that cannot be read stops serve before it
// listens, with the file named.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeTestCertificate(t, dir, 1)
	missing := filepath.Join(dir, "missing.pem")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"certificate without key", []string{"--tls-cert", certFile}, "--tls-cert needs --tls-key"},
		{"key without certificate", []string{"--tls-key", keyFile}, "--tls-key needs --tls-cert"},
		{"redirect without TLS", []string{"--http-redirect-addr", "127.0.0.1:0"}, "--http-redirect-addr redirects to https"},
		{"missing certificate", []string{"--tls-cert", missing, "--tls-key", keyFile}, missing},
		{"certificate as key", []string{"--tls-cert", certFile, "--tls-key", certFile}, certFile},
	} {
		var stdout, stderr bytes.Buffer
		args := append([]string{"serve", "--addr", "127.0.0.1:0", "--data-dir", ""}, tc.args...)
		code := run(args, &stdout, &stderr)
		if code != 2 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%s: exit %d, stderr %q; want 2 and %q", tc.name, code, stderr.String(), tc.want)
		}
		if stdout.Len() > 0 {
			t.Errorf("%s: serve printed %q: it must not have started", tc.name, stdout.String())
		}
	}
}

// TestReloadCertificate: a reload logs the new certificate; a broken one
// is logged as an error and the previous certificate stays.
func TestReloadCertificate(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeTestCertificate(t, dir, 1)
	certificates, err := tlsSettings(tlsFlags{certFile: certFile, keyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	writeTestCertificate(t, dir, 2) // a renewal replaces both files
	reloadCertificate(logger, certificates)
	if serial := certificates.Leaf().SerialNumber.Int64(); serial != 2 || !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("after a renewal: serial %d, logs %q; want 2 and the reload logged", serial, logs.String())
	}

	logs.Reset()
	if err := os.WriteFile(keyFile, []byte("truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	reloadCertificate(logger, certificates)
	if serial := certificates.Leaf().SerialNumber.Int64(); serial != 2 {
		t.Errorf("after a broken renewal: serial %d, want the previous certificate (2)", serial)
	}
	if log := logs.String(); !strings.Contains(log, "level=ERROR") || !strings.Contains(log, "previous certificate stays") || !strings.Contains(log, keyFile) {
		t.Errorf("a broken renewal logged %q; want an ERROR naming %s", log, keyFile)
	}
}
