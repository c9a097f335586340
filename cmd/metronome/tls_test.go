package main

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/metronome-sync/metronome/internal/testcert"
)

// TestTLSFlags: --tls-cert and --tls-key go together, a redirect needs
// them, and a certificate that cannot be read stops serve before it
// listens, with the file named.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	certificate := testcert.New(t, dir, 1)
	certFile, keyFile := certificate.CertFile, certificate.KeyFile
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
	certificate := testcert.New(t, dir, 1)
	certFile, keyFile := certificate.CertFile, certificate.KeyFile
	certificates, err := tlsSettings(tlsFlags{certFile: certFile, keyFile: keyFile})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))

	testcert.New(t, dir, 2) // a renewal replaces both files
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
