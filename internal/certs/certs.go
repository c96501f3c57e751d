package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// File names in a certificate directory.
const (
	CertFile = "tls.crt"
	KeyFile  = "tls.key"
	CAFile   = "ca.crt"
)

// Lifetimes. The CA lives long so that the API server's wiring, which
// embeds it, rarely changes; the serving certificate is renewed when less
// than RenewBefore of it is left.
const (
	CALifetime      = 10 * 365 * 24 * time.Hour
	ServingLifetime = 365 * 24 * time.Hour
	RenewBefore     = 30 * 24 * time.Hour
)

// Ensure makes sure dir holds a CA and a serving certificate for hosts that
// is valid for at least RenewBefore, reusing what is there when it can, and
// returns the CA in PEM. A CA that is kept keeps the wiring rendered from it
// valid across restarts.
func Ensure(dir string, hosts []string, now time.Time) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caPEM, caKeyPEM, err := loadOrCreateCA(dir, now)
	if err != nil {
		return nil, err
	}
	if servingValid(dir, caPEM, hosts, now) {
		return caPEM, nil
	}
	certPEM, keyPEM, err := issue(caPEM, caKeyPEM, hosts, now)
	if err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, KeyFile), keyPEM); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, CertFile), certPEM); err != nil {
		return nil, err
	}
	return caPEM, nil
}

const caKeyFile = "ca.key"

func loadOrCreateCA(dir string, now time.Time) ([]byte, []byte, error) {
	caPEM, err1 := os.ReadFile(filepath.Join(dir, CAFile))
	keyPEM, err2 := os.ReadFile(filepath.Join(dir, caKeyFile))
	if err1 == nil && err2 == nil {
		if c, err := parseCert(caPEM); err == nil && now.Add(RenewBefore).Before(c.NotAfter) {
			return caPEM, keyPEM, nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "portcullis-webhook-ca"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(CALifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	caPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	if err := writeFile(filepath.Join(dir, caKeyFile), keyPEM); err != nil {
		return nil, nil, err
	}
	if err := writeFile(filepath.Join(dir, CAFile), caPEM); err != nil {
		return nil, nil, err
	}
	// A new CA invalidates the serving certificate.
	_ = os.Remove(filepath.Join(dir, CertFile))
	return caPEM, keyPEM, nil
}

func servingValid(dir string, caPEM []byte, hosts []string, now time.Time) bool {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CertFile), filepath.Join(dir, KeyFile))
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !now.Add(RenewBefore).Before(leaf.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	for _, h := range hosts {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: h, Roots: pool, CurrentTime: now}); err != nil {
			return false
		}
	}
	return true
}

func issue(caPEM, caKeyPEM []byte, hosts []string, now time.Time) ([]byte, []byte, error) {
	ca, err := parseCert(caPEM)
	if err != nil {
		return nil, nil, err
	}
	block, _ := pem.Decode(caKeyPEM)
	if block == nil {
		return nil, nil, errors.New("CA key is not PEM")
	}
	caKey, err := x509.ParseECPrivateKey(block.Bytes)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "portcullis-webhook"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServingLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func parseCert(p []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(bytes.TrimSpace(p))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("not a PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

// writeFile replaces a file atomically, so certwatcher never reads half a
// certificate.
func writeFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
