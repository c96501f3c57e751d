package controlplane

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"k8s.io/client-go/util/keyutil"

	"github.com/portcullis-io/portcullis/internal/atomicfile"
	"github.com/portcullis-io/portcullis/internal/certs"
)

const (
	// The serving certificate's lifetimes are internal/certs': a year,
	// renewed at start within 30 days of its end, under a CA that is kept.
	// envtest's are valid for a week, which a persisted dev state directory
	// outlives.

	// Files in the API server's cert dir. apiserver.crt/.key and
	// sa-signer.crt/.key are the names envtest's APIServer passes to
	// kube-apiserver (--cert-dir and --service-account-*-file); when
	// apiserver.crt exists envtest leaves the directory alone, which is how
	// we supply our own long-lived certificates.
	servingCAFile    = "serving-ca.crt"
	servingCAKeyFile = "serving-ca.key"
	servingCertFile  = "apiserver.crt"
	servingKeyFile   = "apiserver.key"
	saPublicFile     = "sa-signer.crt"
	saKeyFile        = "sa-signer.key"

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

// servingLayout is where the serving bundle lives in the cert dir, under
// the names envtest passes to kube-apiserver.
var servingLayout = certs.Layout{CA: servingCAFile, CAKey: servingCAKeyFile, Cert: servingCertFile, Key: servingKeyFile}

// ensureCerts makes certDir hold a serving CA, serving certificates it
// signed for the API server (servingHosts) and the controller manager
// (controllerManagerHosts) that are valid for at least certs.RenewBefore,
// and a service-account signing key pair, reusing what is there
// (internal/certs decides what to renew). It returns the serving CA in
// PEM. The signing key is kept even when the serving certificate is
// renewed, so that service-account tokens stay valid.
func ensureCerts(certDir string, now time.Time) ([]byte, error) {
	b := servingLayout.Read(certDir)
	changed, err := b.Renew(servingHosts, now, false)
	if err != nil {
		return nil, fmt.Errorf("serving certificate: %w", err)
	}
	if changed {
		if err := servingLayout.Write(certDir, b); err != nil {
			return nil, fmt.Errorf("serving certificate: %w", err)
		}
	}
	// The controller manager's serving certificate, under the CA just
	// checked (so Renew keeps the CA and issues only the certificate).
	kcm := controllerManagerLayout.Read(certDir)
	if changed, err := kcm.Renew(controllerManagerHosts, now, false); err != nil {
		return nil, fmt.Errorf("controller manager serving certificate: %w", err)
	} else if changed {
		if err := controllerManagerLayout.Write(certDir, kcm); err != nil {
			return nil, fmt.Errorf("controller manager serving certificate: %w", err)
		}
	}
	if err := ensureServiceAccountKey(certDir); err != nil {
		return nil, fmt.Errorf("service-account signing key: %w", err)
	}
	return b.CA, nil
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
	if err := atomicfile.Write(filepath.Join(certDir, saPublicFile), pem.EncodeToMemory(&pem.Block{Type: keyutil.PublicKeyBlockType, Bytes: pubDER}), certFileMode); err != nil {
		return err
	}
	return atomicfile.Write(keyPath, pem.EncodeToMemory(&pem.Block{Type: keyutil.ECPrivateKeyBlockType, Bytes: keyDER}), certFileMode)
}

func parseCertificatePEM(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}
