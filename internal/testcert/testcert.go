// Package testcert makes the self-signed certificates of the TLS tests:
// those of package server and of the metronome command, and those of
// tests/js (through tests/js/fixtures/selfsigned, as Node.js cannot make
// certificates by itself).
//
// A certificate is for 127.0.0.1, ::1 and localhost, and is its own CA, so
// that a client trusts it by adding it to its roots. Its serial number is
// the one asked for (tests tell certificates apart by it, e.g. after a
// reload), and its name is its own: a client that trusts several test
// certificates finds the issuer by name, and would check against the
// wrong key if two shared one.
package testcert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Validity is how long a certificate is valid: longer than any test run.
// It is valid from an hour before it was made.
const Validity = 24 * time.Hour

// Certificate is a self-signed certificate and its private key in PEM,
// and the files New wrote them to.
type Certificate struct {
	CertFile, KeyFile string
	CertPEM, KeyPEM   []byte
	Serial            int64
}

// Make makes a self-signed ECDSA P-256 certificate with the given serial
// number. It writes no file: see Save.
func Make(serial int64) (Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Certificate{}, err
	}
	unique := make([]byte, 8)
	if _, err := rand.Read(unique); err != nil {
		return Certificate{}, err
	}
	now := time.Now()
	template := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: fmt.Sprintf("metronome test %d %x", serial, unique)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true, // its own root
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return Certificate{}, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Certificate{}, err
	}
	return Certificate{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		Serial:  serial,
	}, nil
}

// Save writes the certificate to certFile and its key to keyFile
// (replacing them, as a renewal does).
func (c Certificate) Save(certFile, keyFile string) error {
	if err := os.WriteFile(certFile, c.CertPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, c.KeyPEM, 0o600)
}

// New makes a certificate with the given serial number and writes it to
// cert.pem and key.pem in dir (replacing a certificate written there
// before). It fails the test if it cannot.
func New(t testing.TB, dir string, serial int64) Certificate {
	t.Helper()
	c, err := Make(serial)
	if err != nil {
		t.Fatalf("making a test certificate: %v", err)
	}
	c.CertFile, c.KeyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := c.Save(c.CertFile, c.KeyFile); err != nil {
		t.Fatal(err)
	}
	return c
}

// Pool returns a pool that trusts the certificates.
func Pool(t testing.TB, certificates ...Certificate) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	for _, c := range certificates {
		if !pool.AppendCertsFromPEM(c.CertPEM) {
			t.Fatal("the test certificate does not parse")
		}
	}
	return pool
}
