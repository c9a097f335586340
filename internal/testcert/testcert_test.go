package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"testing"
	"time"
)

// TestNew: the files hold a key pair that crypto/tls loads; the
// certificate is its own root for 127.0.0.1, ::1 and localhost, with the
// serial number asked for and a name of its own.
func TestNew(t *testing.T) {
	dir := t.TempDir()
	first := New(t, dir, 1)
	second := New(t, t.TempDir(), 2)
	pair, err := tls.LoadX509KeyPair(first.CertFile, first.KeyFile)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	leaf := pair.Leaf
	if leaf.SerialNumber.Int64() != 1 || first.Serial != 1 {
		t.Errorf("serial %d (field %d), want 1", leaf.SerialNumber.Int64(), first.Serial)
	}
	pool := Pool(t, first, second)
	for _, name := range []string{"127.0.0.1", "::1", "localhost"} {
		options := x509.VerifyOptions{Roots: pool, DNSName: name, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		if _, err := leaf.Verify(options); err != nil {
			t.Errorf("verifying for %s: %v", name, err)
		}
	}
	if now := time.Now(); now.Before(leaf.NotBefore) || now.Add(Validity-time.Minute).After(leaf.NotAfter) {
		t.Errorf("valid from %s to %s, want now and for %s", leaf.NotBefore, leaf.NotAfter, Validity)
	}
	secondPair, err := tls.X509KeyPair(second.CertPEM, second.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	if secondPair.Leaf.Subject.CommonName == leaf.Subject.CommonName {
		t.Errorf("two certificates are named %q: a client trusting both would check against the wrong key", leaf.Subject.CommonName)
	}

	// A renewal in the same directory replaces both files.
	renewed := New(t, dir, 3)
	if renewed.CertFile != first.CertFile || renewed.KeyFile != first.KeyFile {
		t.Fatalf("files %s, %s; want %s, %s", renewed.CertFile, renewed.KeyFile, first.CertFile, first.KeyFile)
	}
	pair, err = tls.LoadX509KeyPair(first.CertFile, first.KeyFile)
	if err != nil || pair.Leaf.SerialNumber.Int64() != 3 {
		t.Errorf("after a renewal: %v, want serial 3", err)
	}
}
