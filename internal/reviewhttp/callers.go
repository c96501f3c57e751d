package reviewhttp

import (
	"crypto/x509"
	"encoding/pem"
	"net/http"
	"os"
	"sync"
	"time"
)

// Callers admits only callers that present a client certificate issued by
// the CA in CAFile with the common name CommonName: the API server's, from
// the rendered webhook kubeconfigs. It guards /authenticate and /authorize,
// which would otherwise tell anyone who can reach them whether a token is
// valid and what the policies allow. The server asks every client for a
// certificate (tls.RequestClientCert) and this check verifies it, so that
// callers of the other paths (admission) need none.
type Callers struct {
	// CAFile is the PEM CA that issues the API server's client
	// certificate; read again when it changes, so a new CA is picked up
	// without a restart.
	CAFile string
	// CommonName is the subject common name the API server's certificate
	// carries.
	CommonName string

	mu      sync.Mutex
	modTime time.Time
	pool    *x509.CertPool
}

// roots returns the CA pool, re-read when the file's modification time
// changes; nil when the file cannot be read.
func (c *Callers) roots() *x509.CertPool {
	st, err := os.Stat(c.CAFile)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pool != nil && st.ModTime().Equal(c.modTime) {
		return c.pool
	}
	data, err := os.ReadFile(c.CAFile)
	if err != nil {
		return nil
	}
	pool := x509.NewCertPool()
	for block, rest := pem.Decode(data); block != nil; block, rest = pem.Decode(rest) {
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			pool.AddCert(cert)
		}
	}
	c.pool, c.modTime = pool, st.ModTime()
	return pool
}

// Wrap answers 401 to a caller without a verified client certificate of
// CommonName, and passes the others to next.
func (c *Callers) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if msg := c.refuse(r); msg != "" {
			http.Error(rw, msg, http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(rw, r)
	})
}

// refuse says why r's caller is not admitted, or "".
func (c *Callers) refuse(r *http.Request) string {
	if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
		return "a client certificate is required: only the API server may call this webhook"
	}
	roots := c.roots()
	if roots == nil {
		return "the client CA cannot be read"
	}
	leaf := r.TLS.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, ic := range r.TLS.PeerCertificates[1:] {
		inter.AddCert(ic)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return "the client certificate is not the API server's: " + err.Error()
	}
	if leaf.Subject.CommonName != c.CommonName {
		return "the client certificate is not the API server's"
	}
	return ""
}
