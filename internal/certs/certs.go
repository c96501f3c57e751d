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

	"github.com/portcullis-io/portcullis/internal/atomicfile"
)

// File names in a certificate directory.
const (
	CertFile  = "tls.crt"
	KeyFile   = "tls.key"
	CAFile    = "ca.crt"
	caKeyFile = "ca.key"
)

// Lifetimes. The CA lives long so that the API server's wiring, which
// embeds it, rarely changes; the serving certificate is renewed when less
// than RenewBefore of it is left.
const (
	CALifetime      = 10 * 365 * 24 * time.Hour
	ServingLifetime = 365 * 24 * time.Hour
	RenewBefore     = 30 * 24 * time.Hour
)

// Bundle is a CA and a serving certificate, PEM-encoded: the content of the
// certificate directory and of the certificate Secret.
type Bundle struct {
	CA, CAKey, Cert, Key []byte
}

// Renew makes b valid for hosts at now, reusing what it can: a new CA when
// it is missing or within RenewBefore of its end (which also renews the
// serving certificate), a new serving certificate when it is missing, not
// signed by the CA, not valid for every host, within RenewBefore of its
// end, or when force is set. It reports whether anything changed. Keeping
// the CA keeps every caBundle and API-server kubeconfig made from it valid.
func (b *Bundle) Renew(hosts []string, now time.Time, force bool) (bool, error) {
	changed := false
	if c, err := parseCert(b.CA); err != nil || len(b.CAKey) == 0 || !now.Add(RenewBefore).Before(c.NotAfter) {
		ca, key, err := newCA(now)
		if err != nil {
			return false, err
		}
		b.CA, b.CAKey, b.Cert, b.Key = ca, key, nil, nil
		changed = true
	}
	if force || !servingValid(b, hosts, now) {
		cert, key, err := issue(b.CA, b.CAKey, hosts, now)
		if err != nil {
			return false, err
		}
		b.Cert, b.Key = cert, key
		changed = true
	}
	return changed, nil
}

// Layout names the four files of a bundle in a directory.
type Layout struct{ CA, CAKey, Cert, Key string }

// DefaultLayout is controller-runtime's webhook server layout (tls.crt,
// tls.key) plus the CA and its key.
var DefaultLayout = Layout{CA: CAFile, CAKey: caKeyFile, Cert: CertFile, Key: KeyFile}

// ReadDir reads a bundle from a certificate directory in DefaultLayout;
// missing files are empty.
func ReadDir(dir string) Bundle { return DefaultLayout.Read(dir) }

// WriteDir writes the bundle into dir in DefaultLayout.
func (b Bundle) WriteDir(dir string) error { return DefaultLayout.Write(dir, b) }

// Read reads a bundle laid out as l in dir; missing files are empty.
func (l Layout) Read(dir string) Bundle {
	read := func(name string) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, name))
		return b
	}
	return Bundle{CA: read(l.CA), CAKey: read(l.CAKey), Cert: read(l.Cert), Key: read(l.Key)}
}

// Write writes b into dir as l, each file (mode 0600) replaced
// atomically, the key before the certificate and the CA first: certwatcher
// reloads on the certificate's change and retries a pair that does not
// match, and a reader that sees the new certificate finds its CA.
func (l Layout) Write(dir string, b Bundle) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{l.CAKey, b.CAKey}, {l.CA, b.CA}, {l.Key, b.Key}, {l.Cert, b.Cert}} {
		if len(f.data) == 0 {
			continue
		}
		if err := atomicfile.Write(filepath.Join(dir, f.name), f.data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// Ensure makes sure dir holds a CA and a serving certificate for hosts that
// is valid for at least RenewBefore, reusing what is there when it can, and
// returns the CA in PEM.
func Ensure(dir string, hosts []string, now time.Time) ([]byte, error) {
	b := ReadDir(dir)
	changed, err := b.Renew(hosts, now, false)
	if err != nil {
		return nil, err
	}
	if changed {
		if err := b.WriteDir(dir); err != nil {
			return nil, err
		}
	}
	return b.CA, nil
}

func newCA(now time.Time) ([]byte, []byte, error) {
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
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

func servingValid(b *Bundle, hosts []string, now time.Time) bool {
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil || !now.Add(RenewBefore).Before(leaf.NotAfter) {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b.CA) {
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
	return sign(caPEM, caKeyPEM, tmpl)
}

// IssueClient issues a client certificate for commonName under the CA,
// valid for ServingLifetime: the certificate the API server presents to
// the webhooks that only it may call.
func IssueClient(caPEM, caKeyPEM []byte, commonName string, now time.Time) (cert, key []byte, err error) {
	return sign(caPEM, caKeyPEM, &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: commonName},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(ServingLifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
}

// ClientValid reports whether cert and key are a client certificate for
// commonName, issued by the CA in caPEM, with more than RenewBefore left
// at now: otherwise it is time to issue another with IssueClient.
func ClientValid(caPEM, cert, key []byte, commonName string, now time.Time) bool {
	leaf, err := VerifyClient(caPEM, cert, key, commonName, now)
	return err == nil && now.Add(RenewBefore).Before(leaf.NotAfter)
}

// VerifyClient checks that cert and key are a pair and that cert is a
// client certificate for commonName, issued by the CA in caPEM and valid
// at now, and returns it; the error says what is wrong.
func VerifyClient(caPEM, cert, key []byte, commonName string, now time.Time) (*x509.Certificate, error) {
	pair, err := tls.X509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, err
	}
	if leaf.Subject.CommonName != commonName {
		return nil, fmt.Errorf("its common name is %q, not %q", leaf.Subject.CommonName, commonName)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, errors.New("no CA certificate to verify it with")
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return nil, err
	}
	return leaf, nil
}

// sign signs tmpl with a new P-256 key under the CA.
func sign(caPEM, caKeyPEM []byte, tmpl *x509.Certificate) ([]byte, []byte, error) {
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
