package e2e

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/portcullis-io/portcullis/internal/certs"
)

// /authenticate and /authorize answer the API server alone: a caller
// without its client certificate, or with one for another name, gets 401,
// one with a certificate from another CA fails the TLS handshake, while the API server (every other test)
// and a caller with its certificate are answered. Admission needs no
// client certificate.
func TestOnlyTheAPIServerMayCallAuthnAndAuthz(t *testing.T) {
	ctx := ctxFor(t, time.Minute)
	_, token := user(t, ctx, "caller-check")
	ca, err := os.ReadFile(filepath.Join(env.CertDir(), certs.CAFile))
	if err != nil {
		t.Fatal(err)
	}
	other := certs.Bundle{}
	if _, err := other.Renew([]string{"127.0.0.1"}, time.Now(), false); err != nil {
		t.Fatal(err)
	}
	strangerCert, strangerKey, err := certs.IssueClient(other.CA, other.CAKey, "portcullis-apiserver", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	stranger, _ := tls.X509KeyPair(strangerCert, strangerKey)
	b := certs.ReadDir(env.CertDir())
	wrongNameCert, wrongNameKey, err := certs.IssueClient(b.CA, b.CAKey, "someone-else", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	wrongName, _ := tls.X509KeyPair(wrongNameCert, wrongNameKey)

	post := func(path, body string, client ...tls.Certificate) int {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ca)
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12, Certificates: client}}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, env.WebhookURL+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err != nil {
			// A certificate that does not verify fails the handshake.
			t.Logf("POST %s: %v", path, err)
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	tr := `{"apiVersion":"authentication.k8s.io/v1","kind":"TokenReview","spec":{"token":"` + token + `"}}`
	sar := `{"apiVersion":"authorization.k8s.io/v1","kind":"SubjectAccessReview","spec":{"user":"caller-check","resourceAttributes":{"verb":"get","resource":"pods","namespace":"default"}}}`
	for _, tc := range []struct {
		name   string
		client []tls.Certificate
		want   int
	}{
		{"no client certificate", nil, http.StatusUnauthorized},
		{"a certificate from another CA: the handshake fails", []tls.Certificate{stranger}, 0},
		{"a certificate for another name", []tls.Certificate{wrongName}, http.StatusUnauthorized},
		{"the API server's certificate", []tls.Certificate{env.APIServerClient}, http.StatusOK},
	} {
		for path, body := range map[string]string{"/authenticate": tr, "/authorize": sar} {
			if got := post(path, body, tc.client...); got != tc.want {
				t.Errorf("%s, POST %s: %d, want %d", tc.name, path, got, tc.want)
			}
		}
	}
	// Admission asks for no client certificate: a review without one is
	// answered (here, a bad request rather than 401).
	if got := post("/validate", `{}`); got == http.StatusUnauthorized {
		t.Errorf("POST /validate without a client certificate: %d", got)
	}
}
