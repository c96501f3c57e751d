package controlplane

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
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

	"k8s.io/client-go/util/keyutil"
)

const (
	// servingCertValidity is how long the API server's serving certificate
	// and its CA are valid. envtest's are valid for a week, which a
	// persisted dev state directory outlives; a year is long enough that
	// regeneration is rare, and short enough to be an obviously local CA.
	servingCertValidity = 365 * 24 * time.Hour
	// servingCertRenewBefore regenerates the serving certificate at start
	// when it expires within this window, so that a long-running dev session
	// never meets an expired certificate.
	servingCertRenewBefore = 30 * 24 * time.Hour
	// certClockSkew backdates NotBefore so that a client whose clock is a
	// little behind still accepts a certificate minted just now.
	certClockSkew = time.Hour

	// Files in the API server's cert dir. apiserver.crt/.key and
	// sa-signer.crt/.key are the names envtest's APIServer passes to
	// kube-apiserver (--cert-dir and --service-account-*-file); when
	// apiserver.crt exists envtest leaves the directory alone, which is how
	// we supply our own long-lived certificates.
	servingCAFile   = "serving-ca.crt"
	servingCertFile = "apiserver.crt"
	servingKeyFile  = "apiserver.key"
	saPublicFile    = "sa-signer.crt"
	saKeyFile       = "sa-signer.key"

	// certFileMode keeps keys and certificates private to the user running
	// the control plane.
	certFileMode = 0o600
)

// servingHosts are the names and addresses in the serving certificate: the
// loopback the API server listens on, and the in-cluster names of the
// kubernetes Service (10.0.0.1 is the first address of envtest's
// service-cluster-ip-range 10.0.0.0/24).
var servingHosts = []string{
	"127.0.0.1", "localhost",
	"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
	"10.0.0.1",
}

// ensureCerts makes certDir hold a serving CA, a serving certificate it
// signed that is valid for at least servingCertRenewBefore, and a
// service-account signing key pair, reusing what is there. It returns the
// serving CA in PEM. The signing key is kept even when the serving
// certificate is renewed, so that service-account tokens stay valid.
func ensureCerts(certDir string, now time.Time) ([]byte, error) {
	caPEM, err := currentServingCA(certDir, now)
	if err != nil {
		if caPEM, err = newServingCert(certDir, now); err != nil {
			return nil, fmt.Errorf("serving certificate: %w", err)
		}
	}
	if err := ensureServiceAccountKey(certDir); err != nil {
		return nil, fmt.Errorf("service-account signing key: %w", err)
	}
	return caPEM, nil
}

// currentServingCA returns the persisted serving CA if it and the serving
// certificate are present, match, and are not about to expire.
func currentServingCA(certDir string, now time.Time) ([]byte, error) {
	caPEM, err := os.ReadFile(filepath.Join(certDir, servingCAFile))
	if err != nil {
		return nil, err
	}
	ca, err := parseCertificatePEM(caPEM)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(certDir, servingCertFile))
	if err != nil {
		return nil, err
	}
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	if err := cert.CheckSignatureFrom(ca); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(certDir, servingKeyFile)); err != nil {
		return nil, err
	}
	if deadline := now.Add(servingCertRenewBefore); cert.NotAfter.Before(deadline) || ca.NotAfter.Before(deadline) {
		return nil, errors.New("serving certificate expires soon")
	}
	return caPEM, nil
}

// newServingCert mints a CA and a serving certificate for servingHosts and
// writes them to certDir. The CA's key is not kept: the next renewal mints
// a new CA.
func newServingCert(certDir string, now time.Time) ([]byte, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "portcullis-control-plane-ca"},
		NotBefore:             now.Add(-certClockSkew),
		NotAfter:              now.Add(servingCertValidity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, ca, err := createCertificate(caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return nil, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:   now.Add(-certClockSkew),
		NotAfter:    now.Add(servingCertValidity),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range servingHosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	certDER, _, err := createCertificate(tmpl, ca, key.Public(), caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}

	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	// The CA is written last: its presence marks a complete set.
	for _, f := range []struct {
		name string
		data []byte
	}{
		{servingKeyFile, pem.EncodeToMemory(&pem.Block{Type: keyutil.ECPrivateKeyBlockType, Bytes: keyDER})},
		{servingCertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER})},
		{servingCAFile, caPEM},
	} {
		if err := os.WriteFile(filepath.Join(certDir, f.name), f.data, certFileMode); err != nil {
			return nil, err
		}
	}
	return caPEM, nil
}

// ensureServiceAccountKey keeps a parseable signing key, or mints one.
func ensureServiceAccountKey(certDir string) error {
	keyPath := filepath.Join(certDir, saKeyFile)
	if _, err := keyutil.PrivateKeyFromFile(keyPath); err == nil {
		if _, err := keyutil.PublicKeysFromFile(filepath.Join(certDir, saPublicFile)); err == nil {
			return nil
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(certDir, saPublicFile), pem.EncodeToMemory(&pem.Block{Type: keyutil.PublicKeyBlockType, Bytes: pubDER}), certFileMode); err != nil {
		return err
	}
	return os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: keyutil.ECPrivateKeyBlockType, Bytes: keyDER}), certFileMode)
}

// createCertificate signs tmpl with a random serial number.
func createCertificate(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, *x509.Certificate, error) {
	// 128 random bits, as RFC 5280 recommends at least 64 bits of entropy.
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return der, cert, err
}

func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
